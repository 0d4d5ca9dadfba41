/// The exit status of every program of the kit (fips, fips-plan, fips-run,
/// fips-profile, fipsd): one table, the README's "Exit status".
public enum ExitStatus {
    /// Everything asked for was done.
    public static let ok: Int32 = 0
    /// The program ran, but some inputs failed (an image that does not decode,
    /// bytes on fipsd's stdin that are no image); the others were processed.
    public static let someInputsFailed: Int32 = 1
    /// The command line is wrong: an unknown option, a bad value, options that
    /// do not go together, a flag the model cannot honour (--top-k without a head).
    public static let usage: Int32 = 2
    /// A file or device the program needs cannot be used: the model is missing
    /// or damaged, an output cannot be written, a folder or port cannot be opened.
    public static let modelOrIO: Int32 = 3
    /// The operating system refused something every run needs (signal handling,
    /// memory at start-up): not the user's input.
    public static let system: Int32 = 4
}
