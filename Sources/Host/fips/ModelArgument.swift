import ArgumentParser

/// The model a command reads: `--model PATH`, as in every other command and
/// program of the kit, or the same path as the command's one argument
/// (`fips info M`, `fips latency M`), the shorthand these commands began with.
struct ModelArgument: ParsableArguments {
    @Argument(help: ArgumentHelp("The model artifact (.fips); the same as --model.", valueName: "model"))
    var positional: String?

    @Option(name: .customLong("model"), help: "The model artifact (.fips).")
    var option: String?

    /// The path, once validate() has passed.
    var path: String { option ?? positional ?? "" }

    func validate() throws { try ModelArgument.check(positional, option, missing: "missing the model: --model PATH") }

    /// Exactly one model, or the same one both ways (also fips import's, whose help differs).
    static func check(_ positional: String?, _ option: String?, missing: String) throws {
        switch (positional, option) {
        case (nil, nil): throw ValidationError(missing)
        case (let a?, let b?) where a != b: throw ValidationError("two models: '\(a)' and --model '\(b)'")
        default: break
        }
    }
}
