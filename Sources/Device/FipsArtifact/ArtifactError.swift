import CFipsSys

/// Everything that can go wrong while opening an artifact. `message` is one
/// line that names the file and the problem.
public enum ArtifactError: Error {
    case io(path: String, errno: Int32)
    case empty(path: String)
    case notAnArtifact(path: String)
    case truncated(path: String, expected: Int, actual: Int)
    case unsupportedVersion(path: String, version: UInt32)
    case headerChecksum(path: String)
    case payloadChecksum(path: String, stored: UInt32, computed: UInt32)
    case malformed(path: String, reason: String)
    case missingTensor(path: String, name: String)
    case wrongShape(path: String, name: String, reason: String)
    /// The model is fine but this runtime cannot run it as asked (e.g. a
    /// FIPS_KERNEL the CPU lacks).
    case cannotRun(reason: String)

    public var message: String {
        switch self {
        case .io(let p, let e):
            return "\(p): cannot read model: \(errnoText(e))"
        case .empty(let p):
            return "\(p): model file is empty (0 bytes)"
        case .notAnArtifact(let p):
            return "\(p): not a .fips model (bad magic); convert it with `fips import`"
        case .truncated(let p, let expected, let actual):
            return "\(p): model file is truncated (header says \(expected) bytes, file has \(actual))"
        case .unsupportedVersion(let p, let v):
            return "\(p): model format version \(v) is not supported by this runtime (supports 1...\(ArtifactFormat.currentVersion)); update fips-run"
        case .headerChecksum(let p):
            return "\(p): model header is corrupted (header checksum mismatch)"
        case .payloadChecksum(let p, let s, let c):
            return "\(p): model data is corrupted (checksum \(hex32(c)), expected \(hex32(s)))"
        case .malformed(let p, let r):
            return "\(p): malformed model: \(r)"
        case .missingTensor(let p, let n):
            return "\(p): model lacks tensor \(n)"
        case .wrongShape(let p, let n, let r):
            return "\(p): tensor \(n) has the wrong shape: \(r)"
        case .cannotRun(let r):
            return r
        }
    }
}

public func errnoText(_ e: Int32) -> String {
    guard let s = fips_strerror(e) else { return "error \(e)" }
    return String(cString: s)
}

public func hex32(_ v: UInt32) -> String {
    let digits: [UInt8] = Array("0123456789abcdef".utf8)
    var out: [UInt8] = Array("0x".utf8)
    for i in stride(from: 28, through: 0, by: -4) { out.append(digits[Int((v >> UInt32(i)) & 0xF)]) }
    return String(decoding: out, as: UTF8.self)
}
