/// The largest input a planned model accepts, so that the process stays
/// within the plan's memory budget (fips-plan works them out, fips-run and
/// fipsd use them as their defaults). Stored in configuration words 20–23,
/// which files written before them hold as zeros: such a file has no limits.
///
///     w[20] max_pixels         decoded width x height (a JPEG counts its DCT-reduced size)
///     w[21] max_input_bytes    one encoded image: a file, an HTTP body, a stdin frame
///     w[22] max_connections    fipsd's open HTTP connections, each holding up to one body
///     w[23] budget_kib         the plan's --budget, in KiB (1024 bytes), rounded down
public struct InputLimits: Equatable {
    public var maxPixels: Int
    public var maxInputBytes: Int
    public var maxConnections: Int
    public var budgetBytes: Int

    public init(maxPixels: Int, maxInputBytes: Int, maxConnections: Int, budgetBytes: Int) {
        self.maxPixels = maxPixels; self.maxInputBytes = maxInputBytes
        self.maxConnections = maxConnections; self.budgetBytes = budgetBytes
    }

    /// The first configuration word that holds the limits.
    public static let firstWord = 20
    public static let wordCount = 4

    /// Words 20–23; every value must fit 32 bits (the budget as KiB).
    public func encode() -> [UInt32] {
        [UInt32(clamping: maxPixels), UInt32(clamping: maxInputBytes), UInt32(clamping: maxConnections),
         UInt32(clamping: budgetBytes / 1024)]
    }

    /// nil when the words are all zero (no limits recorded) or incomplete.
    public static func decode(_ w: [UInt32]) -> InputLimits? {
        let at = firstWord
        guard w.count >= at + wordCount, w[at] != 0, w[at + 1] != 0, w[at + 2] != 0 else { return nil }
        return InputLimits(maxPixels: Int(w[at]), maxInputBytes: Int(w[at + 1]), maxConnections: Int(w[at + 2]),
                           budgetBytes: Int(w[at + 3]) * 1024)
    }
}
