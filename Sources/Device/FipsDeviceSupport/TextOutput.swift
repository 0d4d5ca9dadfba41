import CFipsSys

/// Byte-level output helpers: Embedded Swift cannot format floats through
/// string interpolation, so numbers go through snprintf in CFipsSys.
public struct TextBuffer {
    public var bytes: [UInt8] = []
    public init() {}

    public mutating func append(_ s: String) { bytes.append(contentsOf: s.utf8) }

    public mutating func append(_ v: Double, precision: Int = 6) {
        if !v.isFinite { append("null"); return }
        var buf = [CChar](repeating: 0, count: 64)
        let n = Int(fips_format_general(&buf, 64, v, Int32(precision)))
        for i in 0..<min(n, 63) { bytes.append(UInt8(bitPattern: buf[i])) }
    }

    public mutating func appendFixed(_ v: Double, decimals: Int) {
        if !v.isFinite { append("null"); return }
        var buf = [CChar](repeating: 0, count: 64)
        let n = Int(fips_format_fixed(&buf, 64, v, Int32(decimals)))
        for i in 0..<min(n, 63) { bytes.append(UInt8(bitPattern: buf[i])) }
    }

    /// A JSON string literal with the escapes RFC 8259 requires.
    public mutating func appendJSONString(_ s: String) {
        bytes.append(34)
        for b in s.utf8 {
            switch b {
            case 34: bytes += [92, 34]
            case 92: bytes += [92, 92]
            case 10: bytes += [92, 110]
            case 13: bytes += [92, 114]
            case 9: bytes += [92, 116]
            case 0..<32:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes += [92, 117, 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]]
            default: bytes.append(b)
            }
        }
        bytes.append(34)
    }

    public func write(fd: Int32) {
        bytes.withUnsafeBufferPointer { p in
            p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { fips_write_fd(fd, $0, p.count) }
        }
    }
}

public func printLine(_ s: String, fd: Int32 = 1) {
    var t = TextBuffer()
    t.append(s)
    t.append("\n")
    t.write(fd: fd)
}
