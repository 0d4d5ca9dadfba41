import Foundation

// A small reader for the protobuf wire format of ONNX files: ModelProto,
// GraphProto, NodeProto, AttributeProto, TensorProto and ValueInfoProto, with
// the fields the importer needs. The file is memory-mapped; tensor payloads
// stay in the mapping as byte ranges until `floats(_:)` copies one out.

/// ONNX `TensorProto.DataType` values the importer reads.
public enum ONNXDataType {
    public static let float: Int = 1
    public static let int32: Int = 6
    public static let int64: Int = 7
    public static let float16: Int = 10
    public static let double: Int = 11
    public static let bfloat16: Int = 16

    public static func name(_ t: Int) -> String {
        switch t {
        case 1: return "float32"
        case 2: return "uint8"
        case 3: return "int8"
        case 5: return "int16"
        case 6: return "int32"
        case 7: return "int64"
        case 9: return "bool"
        case 10: return "float16"
        case 11: return "float64"
        case 16: return "bfloat16"
        default: return "type \(t)"
        }
    }
}

/// A tensor of the graph (initializer or Constant value). The payload is a
/// byte range of the mapped file (`raw_data`) or the decoded typed fields.
public struct ONNXTensor {
    public var name: String = ""
    public var dims: [Int] = []
    public var dataType: Int = 0
    /// Byte range of `raw_data` inside the mapped file.
    public var rawRange: Range<Int>? = nil
    public var floatData: [Float] = []
    public var int32Data: [Int32] = []
    public var int64Data: [Int64] = []
    public var doubleData: [Double] = []
    /// data_location == EXTERNAL (payload in another file).
    public var isExternal = false
    /// external_data entries: `location` (relative to the model file),
    /// `offset` and `length` in bytes.
    public var externalData: [String: String] = [:]

    public var elementCount: Int { dims.reduce(1, *) }
}

public enum ONNXAttribute {
    case float(Float)
    case int(Int)
    case string(String)
    case tensor(ONNXTensor)
    case floats([Float])
    case ints([Int])
    case strings([String])
    /// A kind the importer never reads (graph, sparse tensor, ...): its AttributeType value.
    case other(Int)
}

public struct ONNXNode {
    public var name: String = ""
    public var opType: String = ""
    public var domain: String = ""
    public var inputs: [String] = []
    public var outputs: [String] = []
    public var attributes: [String: ONNXAttribute] = [:]

    public func int(_ key: String) -> Int? {
        if case .int(let v)? = attributes[key] { return v }
        return nil
    }
    public func float(_ key: String) -> Float? {
        if case .float(let v)? = attributes[key] { return v }
        return nil
    }
    public func string(_ key: String) -> String? {
        if case .string(let v)? = attributes[key] { return v }
        return nil
    }
    public func ints(_ key: String) -> [Int]? {
        if case .ints(let v)? = attributes[key] { return v }
        return nil
    }
    public func tensor(_ key: String) -> ONNXTensor? {
        if case .tensor(let v)? = attributes[key] { return v }
        return nil
    }
}

public struct ONNXValueInfo {
    public var name: String = ""
    public var elementType: Int = 0
    /// Static sizes; nil for a symbolic or unknown dimension.
    public var shape: [Int?] = []
}

public struct ONNXGraph {
    public var name: String = ""
    public var nodes: [ONNXNode] = []
    public var initializers: [ONNXTensor] = []
    public var inputs: [ONNXValueInfo] = []
    public var outputs: [ONNXValueInfo] = []
}

/// A parsed ONNX model that keeps its file mapped so that tensor payloads
/// are read lazily and copied once.
public final class ONNXModel {
    public let path: String
    public let irVersion: Int
    public let opsets: [(domain: String, version: Int)]
    public let producer: String
    public let graph: ONNXGraph
    /// metadata_props (docs: README "ONNX metadata keys").
    public let metadata: [String: String]
    private let bytes: Data
    /// External-data files by location, mapped on first use.
    private var externalFiles: [String: Data] = [:]

    public convenience init(path: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw ImportError(path: path, "cannot read file: \(error.localizedDescription)")
        }
        try self.init(path: path, data: data)
    }

    public init(path: String, data: Data) throws {
        self.path = path
        self.bytes = data
        if data.isEmpty { throw ImportError(path: path, "file is empty (0 bytes)") }
        var ir = 0, prod = ""
        var ops: [(String, Int)] = []
        var meta: [String: String] = [:]
        var g: ONNXGraph? = nil
        do {
            try data.withUnsafeBytes { (buf: UnsafeRawBufferPointer) throws in
                var r = WireReader(base: buf.baseAddress!, start: 0, end: buf.count)
                while let (field, wire) = try r.nextField() {
                    switch (field, wire) {
                    case (1, 0): ir = Int(truncatingIfNeeded: try r.varint())
                    case (2, 2): prod = try r.string()
                    case (7, 2):
                        var sub = try r.sub()
                        g = try sub.graph()
                    case (8, 2):
                        var sub = try r.sub()
                        var dom = "", ver = 0
                        while let (f, w) = try sub.nextField() {
                            if f == 1 && w == 2 { dom = try sub.string() }
                            else if f == 2 && w == 0 { ver = Int(truncatingIfNeeded: try sub.varint()) }
                            else { try sub.skip(w) }
                        }
                        ops.append((dom, ver))
                    case (14, 2):
                        var sub = try r.sub()
                        let (k, v) = try sub.stringPair()
                        meta[k] = v
                    default: try r.skip(wire)
                    }
                }
            }
        } catch let e as WireError {
            throw ImportError(path: path, "not a valid ONNX model (truncated or corrupted?): \(e.message)")
        } catch {
            throw ImportError(path: path, "not a valid ONNX model: \(error)")
        }
        guard let graph = g, !graph.nodes.isEmpty else {
            throw ImportError(path: path, "not an ONNX model: no graph with nodes found")
        }
        self.irVersion = ir
        self.producer = prod
        self.opsets = ops.map { (domain: $0.0, version: $0.1) }
        self.graph = graph
        self.metadata = meta
    }

    /// The payload bytes of a tensor kept in an external file: `location`
    /// relative to the model's folder (no absolute path, no ".."), from
    /// `offset` for `length` bytes (default: to the end of the file).
    func externalRange(_ t: ONNXTensor) throws -> (Data, Range<Int>) {
        guard let loc = t.externalData["location"], !loc.isEmpty else {
            throw ImportError(path: path, "tensor \(t.name) is stored externally but names no location")
        }
        if loc.hasPrefix("/") || loc.split(separator: "/").contains("..") {
            throw ImportError(path: path, "tensor \(t.name): external data location \(loc) leaves the model's folder")
        }
        let file = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(loc).path
        let data: Data
        if let d = externalFiles[loc] {
            data = d
        } else {
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: file), options: .alwaysMapped)
            } catch {
                throw ImportError(path: path, "tensor \(t.name): cannot read external data file \(file): \(error.localizedDescription)")
            }
            externalFiles[loc] = data
        }
        let offset = Int(t.externalData["offset"] ?? "0") ?? -1
        let length = t.externalData["length"].map { Int($0) ?? -1 } ?? (data.count - offset)
        guard offset >= 0, length >= 0, offset <= data.count, length <= data.count - offset else {
            throw ImportError(path: path, "tensor \(t.name): external data \(loc) offset \(t.externalData["offset"] ?? "0") length \(t.externalData["length"] ?? "-") runs past its \(data.count) bytes")
        }
        return (data, offset..<(offset + length))
    }

    /// Where a tensor's raw bytes are: the model file's mapping or an external file's.
    func rawBytes(_ t: ONNXTensor) throws -> (Data, Range<Int>)? {
        if t.isExternal { return try externalRange(t) }
        return t.rawRange.map { (bytes, $0) }
    }

    /// The tensor's values as float32 (float32, float16, bfloat16 and
    /// float64 payloads; raw_data copied straight from the mapping).
    public func floats(_ t: ONNXTensor) throws -> [Float] {
        let n = t.elementCount
        if let (bytes, range) = try rawBytes(t) {
            let width: Int
            switch t.dataType {
            case ONNXDataType.float: width = 4
            case ONNXDataType.float16, ONNXDataType.bfloat16: width = 2
            case ONNXDataType.double: width = 8
            default:
                throw ImportError(path: path, "tensor \(t.name) has element type \(ONNXDataType.name(t.dataType)), expected a float type")
            }
            guard range.count == n * width else {
                throw ImportError(path: path, "tensor \(t.name) has \(range.count) bytes of data for shape \(t.dims)")
            }
            return bytes.withUnsafeBytes { buf -> [Float] in
                let src = buf.baseAddress! + range.lowerBound
                return [Float](unsafeUninitializedCapacity: n) { out, count in
                    switch t.dataType {
                    case ONNXDataType.float:
                        memcpy(out.baseAddress!, src, n * 4)
                    case ONNXDataType.float16:
                        for i in 0..<n { out[i] = halfToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) }
                    case ONNXDataType.bfloat16:
                        for i in 0..<n { out[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) << 16) }
                    default:
                        for i in 0..<n { out[i] = Float(Double(bitPattern: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self).littleEndian)) }
                    }
                    count = n
                }
            }
        }
        switch t.dataType {
        case ONNXDataType.float:
            guard t.floatData.count == n else { break }
            return t.floatData
        case ONNXDataType.double:
            guard t.doubleData.count == n else { break }
            return t.doubleData.map { Float($0) }
        case ONNXDataType.float16, ONNXDataType.bfloat16:
            // Stored one value per int32_data element.
            guard t.int32Data.count == n else { break }
            return t.int32Data.map {
                t.dataType == ONNXDataType.float16 ? halfToFloat(UInt16(truncatingIfNeeded: $0))
                    : Float(bitPattern: UInt32(UInt16(truncatingIfNeeded: $0)) << 16)
            }
        default:
            throw ImportError(path: path, "tensor \(t.name) has element type \(ONNXDataType.name(t.dataType)), expected a float type")
        }
        throw ImportError(path: path, "tensor \(t.name) holds no data for shape \(t.dims)")
    }

    /// The tensor's values as Int (int64 or int32 payloads).
    public func ints(_ t: ONNXTensor) throws -> [Int] {
        let n = t.elementCount
        if let (bytes, range) = try rawBytes(t) {
            let width = t.dataType == ONNXDataType.int64 ? 8 : (t.dataType == ONNXDataType.int32 ? 4 : 0)
            guard width > 0 else {
                throw ImportError(path: path, "tensor \(t.name) has element type \(ONNXDataType.name(t.dataType)), expected an integer type")
            }
            guard range.count == n * width else {
                throw ImportError(path: path, "tensor \(t.name) has \(range.count) bytes of data for shape \(t.dims)")
            }
            return bytes.withUnsafeBytes { buf -> [Int] in
                let src = buf.baseAddress! + range.lowerBound
                return (0..<n).map { i in
                    width == 8 ? Int(Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
                        : Int(Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
                }
            }
        }
        if t.dataType == ONNXDataType.int64 && t.int64Data.count == n { return t.int64Data.map { Int($0) } }
        if t.dataType == ONNXDataType.int32 && t.int32Data.count == n { return t.int32Data.map { Int($0) } }
        throw ImportError(path: path, "tensor \(t.name) holds no integer data for shape \(t.dims)")
    }
}

/// IEEE binary16 to binary32.
@inline(__always)
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = Int((h >> 10) & 0x1F)
    let man = UInt32(h & 0x3FF)
    if exp == 0 {
        if man == 0 { return Float(bitPattern: sign) }
        // Subnormal: value = man * 2^-24.
        let v = Float(man) * Float(bitPattern: 0x3380_0000)
        return sign != 0 ? -v : v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (man << 13)) }
    return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (man << 13))
}
