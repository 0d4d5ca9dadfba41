import Foundation

/// Reads little-endian float32 .npy files (C order), as the fixture scripts write them.
public enum NpyFile {
    public struct ReadError: Error, CustomStringConvertible { public var description: String }

    public static func readFloat32(_ path: String) throws -> HostTensor {
        guard let data = FileManager.default.contents(atPath: path) else { throw ReadError(description: "\(path): cannot read") }
        let b = [UInt8](data)
        guard b.count > 10, b[0] == 0x93, String(decoding: b[1..<6], as: UTF8.self) == "NUMPY" else {
            throw ReadError(description: "\(path): not a .npy file")
        }
        let major = b[6]
        let headerLen: Int
        let start: Int
        if major == 1 { headerLen = Int(b[8]) | Int(b[9]) << 8; start = 10 }
        else { headerLen = Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24; start = 12 }
        let header = String(decoding: b[start..<(start + headerLen)], as: UTF8.self)
        guard header.contains("'descr': '<f4'"), header.contains("'fortran_order': False") else {
            throw ReadError(description: "\(path): only little-endian float32 C-order arrays are supported (\(header))")
        }
        guard let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
            throw ReadError(description: "\(path): no shape in header")
        }
        let shape = header[open.upperBound..<close].split(separator: ",").compactMap {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        let count = shape.reduce(1, *)
        let offset = start + headerLen
        guard b.count - offset == 4 * count else { throw ReadError(description: "\(path): data size does not match shape \(shape)") }
        var values = [Float](repeating: 0, count: count)
        values.withUnsafeMutableBytes { dst in b.withUnsafeBytes { dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset...])) } }
        return HostTensor(shape: shape, data: values)
    }
}
