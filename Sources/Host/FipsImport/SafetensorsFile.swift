import Foundation
import FipsHostModel

/// A `.safetensors` file, memory-mapped: 8-byte little-endian header length,
/// a JSON header {name: {dtype, shape, data_offsets}}, then the data.
public final class SafetensorsFile {
    public struct Entry {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        /// Byte range in the file.
        public var range: Range<Int>
        public var elementCount: Int { shape.reduce(1, *) }
    }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let bytes: Data

    public static func elementBytes(_ dtype: String) -> Int? {
        switch dtype {
        case "F64", "I64", "U64": return 8
        case "F32", "I32", "U32": return 4
        case "F16", "BF16", "I16", "U16": return 2
        case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2": return 1
        default: return nil
        }
    }

    public init(path: String) throws {
        self.path = path
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw ImportError(path: path, "cannot read file: \(error.localizedDescription)")
        }
        bytes = data
        if data.isEmpty { throw ImportError(path: path, "file is empty (0 bytes)") }
        guard data.count >= 8 else { throw ImportError(path: path, "not a safetensors file (\(data.count) bytes, too short for a header)") }
        let n = data.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) & 0x7FFF_FFFF_FFFF) }
        guard n >= 2, n <= 100_000_000, 8 + n <= data.count else {
            throw ImportError(path: path, "not a safetensors file or truncated (header length \(n), file \(data.count) bytes)")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n)))
        } catch {
            throw ImportError(path: path, "not a safetensors file: header is not JSON")
        }
        guard let header = json as? [String: Any] else {
            throw ImportError(path: path, "not a safetensors file: header is not a JSON object")
        }
        let dataStart = 8 + n
        let dataBytes = data.count - dataStart
        var entries: [String: Entry] = [:]
        var meta: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                if let m = value as? [String: Any] { for (k, v) in m { meta[k] = "\(v)" } }
                continue
            }
            guard let e = value as? [String: Any], let dtype = e["dtype"] as? String,
                  let shape = (e["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  let offs = (e["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }), offs.count == 2 else {
                throw ImportError(path: path, "tensor \(name): malformed header entry")
            }
            guard offs[0] >= 0, offs[0] <= offs[1], offs[1] <= dataBytes else {
                throw ImportError(path: path, "tensor \(name): data offsets \(offs) outside the \(dataBytes) data bytes (truncated file?)")
            }
            if let w = SafetensorsFile.elementBytes(dtype), shape.reduce(1, *) * w != offs[1] - offs[0] {
                throw ImportError(path: path, "tensor \(name): \(offs[1] - offs[0]) bytes for \(dtype) shape \(shape)")
            }
            entries[name] = Entry(name: name, dtype: dtype, shape: shape,
                                  range: (dataStart + offs[0])..<(dataStart + offs[1]))
        }
        self.entries = entries
        self.metadata = meta
    }

    /// The tensor as float32 (F32 copied straight from the mapping; F16,
    /// BF16 and F64 converted).
    public func floats(_ name: String) throws -> [Float] {
        guard let e = entries[name] else { throw ImportError(path: path, "no tensor \(name)") }
        let n = e.elementCount
        let r = e.range
        switch e.dtype {
        case "F32", "F16", "BF16", "F64": break
        default:
            throw ImportError(path: path, "tensor \(name) has dtype \(e.dtype); only F32, F16, BF16 and F64 weights can be imported")
        }
        return bytes.withUnsafeBytes { buf -> [Float] in
            let src = buf.baseAddress! + r.lowerBound
            return [Float](unsafeUninitializedCapacity: n) { out, count in
                switch e.dtype {
                case "F32":
                    if n > 0 { memcpy(out.baseAddress!, src, 4 * n) }
                case "F16":
                    for i in 0..<n { out[i] = halfToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) }
                case "BF16":
                    for i in 0..<n { out[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) << 16) }
                default:
                    for i in 0..<n { out[i] = Float(Double(bitPattern: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self).littleEndian)) }
                }
                count = n
            }
        }
    }
}

/// Writes named float32 tensors as a `.safetensors` file (keys sorted).
public enum SafetensorsWriter {
    public static func write(_ tensors: [String: HostTensor], to path: String, metadata: [String: String] = [:]) throws {
        let names = tensors.keys.sorted()
        var header = "{"
        var first = true
        if !metadata.isEmpty {
            header += "\"__metadata__\":{" + metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }.joined(separator: ",") + "}"
            first = false
        }
        var offset = 0
        for name in names {
            let t = tensors[name]!
            let bytes = 4 * t.data.count
            header += (first ? "" : ",") + "\(jsonString(name)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            first = false
            offset += bytes
        }
        header += "}"
        var h = Array(header.utf8)
        while (8 + h.count) % 8 != 0 { h.append(0x20) }
        var out = Data(capacity: 8 + h.count + offset)
        var len = UInt64(h.count).littleEndian
        withUnsafeBytes(of: &len) { out.append(contentsOf: $0) }
        out.append(contentsOf: h)
        for name in names {
            tensors[name]!.data.withUnsafeBytes { out.append(contentsOf: $0) }   // little-endian hosts
        }
        do {
            try out.write(to: URL(fileURLWithPath: path))
        } catch {
            throw ImportError(path: path, "cannot write: \(error.localizedDescription)")
        }
    }

    static func jsonString(_ s: String) -> String {
        var o = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": o += "\\\""
            case "\\": o += "\\\\"
            case "\n": o += "\\n"
            default:
                if u.value < 0x20 { o += String(format: "\\u%04x", u.value) } else { o.unicodeScalars.append(u) }
            }
        }
        return o + "\""
    }
}
