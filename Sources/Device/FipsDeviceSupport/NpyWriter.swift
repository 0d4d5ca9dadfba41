import CFipsSys

/// Writes float32 arrays in NumPy's .npy format (version 1.0), so features
/// can be compared with Python without any other tooling.
public enum NpyWriter {
    public static func encode(_ data: UnsafePointer<Float>, shape: [Int]) -> [UInt8] {
        var dict = "{'descr': '<f4', 'fortran_order': False, 'shape': ("
        for (i, d) in shape.enumerated() { dict += (i == 0 ? "" : ", ") + "\(d)" }
        dict += shape.count == 1 ? ",), }" : "), }"
        var header = Array(dict.utf8)
        // magic(6) + version(2) + len(2) + header, padded with spaces to 64 and ending in '\n'.
        let unpadded = 10 + header.count + 1
        let padded = (unpadded + 63) / 64 * 64
        header += [UInt8](repeating: 32, count: padded - unpadded)
        header.append(10)
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        out.append(UInt8(header.count & 0xFF))
        out.append(UInt8(header.count >> 8))
        out += header
        let count = shape.reduce(1, *)
        let raw = UnsafeRawBufferPointer(start: UnsafeRawPointer(data), count: 4 * count)
        out.append(contentsOf: raw)  // aarch64 and x86-64 are little-endian
        return out
    }

    /// Returns 0 or an errno value.
    public static func write(_ data: UnsafePointer<Float>, shape: [Int], to path: String) -> Int32 {
        let bytes = encode(data, shape: shape)
        return bytes.withUnsafeBytes { fips_write_file_atomic(path, $0.baseAddress, $0.count) }
    }
}

/// The stem of a path: "dir/cat.photo.png" -> "cat.photo".
public func pathStem(_ path: String) -> String {
    var bytes = Array(path.utf8)
    while bytes.count > 1 && bytes.last == 47 { bytes.removeLast() }
    if let slash = bytes.lastIndex(of: 47) { bytes = Array(bytes[(slash + 1)...]) }
    if let dot = bytes.lastIndex(of: 46), dot > 0 { bytes = Array(bytes[..<dot]) }
    return String(decoding: bytes, as: UTF8.self)
}
