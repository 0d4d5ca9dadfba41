import FipsArtifact
import FipsImage

/// The input limits a program serves a model with: the flags given, else
/// the limits fips-plan wrote into the artifact (so a planned model cannot be
/// fed an input that breaks its budget), else the programs' old defaults. The
/// notes are one line each for stderr: a model without limits, or a flag that
/// raises a limit above the plan's (the budget no longer holds).
public struct PlannedLimits {

    public var maxPixels: Int
    public var maxInputBytes: Int
    public var maxConnections: Int
    public var notes: [String] = []

    /// The flags' values are nil when not given; `fallback` is the program's
    /// own default (its budget field unused). `connectionsFlag` only for fipsd
    /// (fips-run holds one image at a time).
    public init(model path: String, _ artifact: Artifact, maxPixels: Int?, maxInputBytes: Int?, maxConnections: Int? = nil,
                fallback: InputLimits, connectionsFlag: String? = nil, inputBytesFlag: String) {
        let plan = artifact.inputLimits
        self.maxPixels = maxPixels ?? plan?.maxPixels ?? fallback.maxPixels
        self.maxInputBytes = maxInputBytes ?? plan?.maxInputBytes ?? fallback.maxInputBytes
        self.maxConnections = maxConnections ?? plan?.maxConnections ?? fallback.maxConnections
        guard let p = plan else {
            let given = maxPixels != nil && maxInputBytes != nil && (connectionsFlag == nil || maxConnections != nil)
            if !given {
                notes.append("note: \(path) records no input limits (not made by fips-plan, or by an older one); using "
                             + "\(self.maxPixels) pixels and \(self.maxInputBytes) bytes per image"
                             + (connectionsFlag == nil ? "" : ", \(self.maxConnections) connections"))
            }
            return
        }
        var over = [String]()
        if self.maxPixels > p.maxPixels { over.append("--max-pixels \(self.maxPixels) (plan: \(p.maxPixels))") }
        if self.maxInputBytes > p.maxInputBytes { over.append("\(inputBytesFlag) \(self.maxInputBytes) (plan: \(p.maxInputBytes))") }
        if let flag = connectionsFlag, self.maxConnections > p.maxConnections {
            over.append("\(flag) \(self.maxConnections) (plan: \(p.maxConnections))")
        }
        if !over.isEmpty {
            notes.append("warning: \(over.joined(separator: ", ")) above the limits planned for \(path); "
                         + "the \(p.budgetBytes / 1024) KiB budget no longer holds")
        }
    }

    /// The decode limits for one image.
    public var decodeLimits: DecodeLimits { DecodeLimits(maxPixels: maxPixels, maxFileBytes: maxInputBytes) }

    /// The inputs' worst case for these limits (`DecodeMemory`), as fips-plan counts it.
    public func worstCaseBytes(cropSize: Int, connections: Bool) -> Int {
        DecodeMemory.processWorstCaseBytes(maxPixels: maxPixels, maxInputBytes: maxInputBytes,
                                           maxConnections: connections ? maxConnections : 1, cropSize: cropSize)
    }
}
