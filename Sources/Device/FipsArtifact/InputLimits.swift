/// The largest input a planned model accepts, so that the process stays
/// within the plan's memory budget (fips-plan works them out, fips-run and
/// fipsd use them as their defaults). Stored in configuration words 20–24,
/// which files written before them hold as zeros: such a file has no limits.
///
///     w[20] max_pixels         decoded width x height (a JPEG counts its DCT-reduced size)
///     w[21] max_input_bytes    one encoded image: a file, an HTTP body, a stdin frame
///     w[22] max_connections    fipsd's open HTTP connections, each holding up to one body
///     w[23] budget_kib         the plan's --budget, in KiB (1024 bytes), rounded down
///     w[24] camera             fipsd's planned capture size (`PlannedCamera`); files
///                              with a 24-word record (older fips-plan) have none
public struct InputLimits: Equatable {
    public var maxPixels: Int
    public var maxInputBytes: Int
    public var maxConnections: Int
    public var budgetBytes: Int
    /// The camera capture the budget counts; nil: not recorded (an older file).
    public var camera: PlannedCamera?

    public init(maxPixels: Int, maxInputBytes: Int, maxConnections: Int, budgetBytes: Int, camera: PlannedCamera? = nil) {
        self.maxPixels = maxPixels; self.maxInputBytes = maxInputBytes
        self.maxConnections = maxConnections; self.budgetBytes = budgetBytes
        self.camera = camera
    }

    /// The first configuration word that holds the limits.
    public static let firstWord = 20
    /// Words 20–24. Readers need only the first four (`decode`): word 24 came
    /// later, and a reader that predates it ignores it, as it ignores any word
    /// past the ones it knows (docs/ARTIFACT.md), so no format version is needed.
    public static let wordCount = 5

    /// Words 20–24; every value must fit 32 bits (the budget as KiB).
    public func encode() -> [UInt32] {
        [UInt32(clamping: maxPixels), UInt32(clamping: maxInputBytes), UInt32(clamping: maxConnections),
         UInt32(clamping: budgetBytes / 1024), camera?.word ?? 0]
    }

    /// nil when the words are all zero (no limits recorded) or incomplete.
    /// The camera is nil when word 24 is 0 or absent (a 24-word record).
    public static func decode(_ w: [UInt32]) -> InputLimits? {
        let at = firstWord
        guard w.count >= at + 4, w[at] != 0, w[at + 1] != 0, w[at + 2] != 0 else { return nil }
        return InputLimits(maxPixels: Int(w[at]), maxInputBytes: Int(w[at + 1]), maxConnections: Int(w[at + 2]),
                           budgetBytes: Int(w[at + 3]) * 1024,
                           camera: w.count > at + 4 ? PlannedCamera(word: w[at + 4]) : nil)
    }
}

/// The camera capture a plan's budget counts for fipsd (`fips-plan --camera`):
/// none, or the capture size, whose buffers `CameraMemory` prices.
///
/// One word: 0 not recorded, 1 none, else width | height << 16 (both 1...65535,
/// so a size is never 0 or 1).
public enum PlannedCamera: Equatable {
    case noCamera
    case size(width: Int, height: Int)

    public var word: UInt32 {
        switch self {
        case .noCamera: return 1
        case let .size(w, h): return UInt32(truncatingIfNeeded: w & 0xFFFF) | UInt32(truncatingIfNeeded: h & 0xFFFF) << 16
        }
    }

    /// nil for 0 (not recorded) and for a word that is no size (a zero side).
    public init?(word: UInt32) {
        if word == 1 { self = .noCamera; return }
        let w = Int(word & 0xFFFF), h = Int(word >> 16)
        guard w > 0, h > 0 else { return nil }
        self = .size(width: w, height: h)
    }

    /// "640x480" or "none".
    public var text: String {
        switch self {
        case .noCamera: return "none"
        case let .size(w, h): return "\(w)x\(h)"
        }
    }
}
