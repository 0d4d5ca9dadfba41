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
    private let bytes: Data

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
    }

    /// The tensor's values as float32 (float32, float16, bfloat16 and
    /// float64 payloads; raw_data copied straight from the mapping).
    public func floats(_ t: ONNXTensor) throws -> [Float] {
        let n = t.elementCount
        if t.isExternal {
            throw ImportError(path: path, "tensor \(t.name) keeps its data in an external file, which is not supported; re-export with the weights inside the .onnx")
        }
        if let range = t.rawRange {
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
        if let range = t.rawRange {
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

struct WireError: Error {
    let message: String
}

/// Cursor over protobuf bytes in [start, end) of a mapped buffer; offsets are
/// absolute so tensor payloads can be remembered as ranges of the file.
struct WireReader {
    let base: UnsafeRawPointer
    var pos: Int
    let end: Int

    init(base: UnsafeRawPointer, start: Int, end: Int) {
        self.base = base
        self.pos = start
        self.end = end
    }

    var atEnd: Bool { pos >= end }

    mutating func varint() throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard pos < end else { throw WireError(message: "varint runs past the end at byte \(pos)") }
            let b = base.load(fromByteOffset: pos, as: UInt8.self)
            pos += 1
            if shift < 64 { result |= UInt64(b & 0x7F) << shift }
            if b & 0x80 == 0 { return result }
            shift += 7
            if shift > 70 { throw WireError(message: "varint longer than 10 bytes at byte \(pos)") }
        }
    }

    /// (field number, wire type), or nil at the end of the message.
    mutating func nextField() throws(WireError) -> (Int, Int)? {
        if pos >= end { return nil }
        let at = pos
        let key = try varint()
        let field = Int(key >> 3), wire = Int(key & 7)
        if field == 0 || wire == 3 || wire == 4 || wire > 5 {
            throw WireError(message: "invalid field key \(key) at byte \(at)")
        }
        return (field, wire)
    }

    mutating func lengthDelimited() throws(WireError) -> Range<Int> {
        let at = pos
        let n = try varint()
        guard n <= UInt64(end - pos) else {
            throw WireError(message: "field of \(n) bytes at byte \(at) runs past the end (\(end - pos) bytes left)")
        }
        let r = pos..<(pos + Int(n))
        pos += Int(n)
        return r
    }

    mutating func sub() throws(WireError) -> WireReader {
        let r = try lengthDelimited()
        return WireReader(base: base, start: r.lowerBound, end: r.upperBound)
    }

    mutating func string() throws(WireError) -> String {
        let r = try lengthDelimited()
        return String(decoding: UnsafeRawBufferPointer(start: base + r.lowerBound, count: r.count), as: UTF8.self)
    }

    mutating func fixed32() throws(WireError) -> UInt32 {
        guard end - pos >= 4 else { throw WireError(message: "fixed32 runs past the end at byte \(pos)") }
        let v = base.loadUnaligned(fromByteOffset: pos, as: UInt32.self).littleEndian
        pos += 4
        return v
    }

    mutating func fixed64() throws(WireError) -> UInt64 {
        guard end - pos >= 8 else { throw WireError(message: "fixed64 runs past the end at byte \(pos)") }
        let v = base.loadUnaligned(fromByteOffset: pos, as: UInt64.self).littleEndian
        pos += 8
        return v
    }

    mutating func skip(_ wire: Int) throws(WireError) {
        switch wire {
        case 0: _ = try varint()
        case 1: _ = try fixed64()
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed32()
        default: throw WireError(message: "unsupported wire type \(wire) at byte \(pos)")
        }
    }

    // Repeated scalars, packed (wire 2) or one per key.
    mutating func appendVarints(_ wire: Int, _ out: inout [Int64]) throws(WireError) {
        if wire == 2 {
            var s = try sub()
            while !s.atEnd { out.append(Int64(bitPattern: try s.varint())) }
        } else if wire == 0 {
            out.append(Int64(bitPattern: try varint()))
        } else { try skip(wire) }
    }

    mutating func appendFloats(_ wire: Int, _ out: inout [Float]) throws(WireError) {
        if wire == 2 {
            let r = try lengthDelimited()
            guard r.count % 4 == 0 else { throw WireError(message: "packed floats of \(r.count) bytes at byte \(r.lowerBound)") }
            let n = r.count / 4
            out.reserveCapacity(out.count + n)
            for i in 0..<n {
                out.append(Float(bitPattern: base.loadUnaligned(fromByteOffset: r.lowerBound + 4 * i, as: UInt32.self).littleEndian))
            }
        } else if wire == 5 {
            out.append(Float(bitPattern: try fixed32()))
        } else { try skip(wire) }
    }

    mutating func appendDoubles(_ wire: Int, _ out: inout [Double]) throws(WireError) {
        if wire == 2 {
            let r = try lengthDelimited()
            guard r.count % 8 == 0 else { throw WireError(message: "packed doubles of \(r.count) bytes at byte \(r.lowerBound)") }
            for i in 0..<(r.count / 8) {
                out.append(Double(bitPattern: base.loadUnaligned(fromByteOffset: r.lowerBound + 8 * i, as: UInt64.self).littleEndian))
            }
        } else if wire == 1 {
            out.append(Double(bitPattern: try fixed64()))
        } else { try skip(wire) }
    }

    // MARK: messages

    mutating func graph() throws(WireError) -> ONNXGraph {
        var g = ONNXGraph()
        while let (f, w) = try nextField() {
            switch (f, w) {
            case (1, 2): var s = try sub(); g.nodes.append(try s.node())
            case (2, 2): g.name = try string()
            case (5, 2): var s = try sub(); g.initializers.append(try s.tensor())
            case (11, 2): var s = try sub(); g.inputs.append(try s.valueInfo())
            case (12, 2): var s = try sub(); g.outputs.append(try s.valueInfo())
            default: try skip(w)
            }
        }
        return g
    }

    mutating func node() throws(WireError) -> ONNXNode {
        var n = ONNXNode()
        while let (f, w) = try nextField() {
            switch (f, w) {
            case (1, 2): n.inputs.append(try string())
            case (2, 2): n.outputs.append(try string())
            case (3, 2): n.name = try string()
            case (4, 2): n.opType = try string()
            case (7, 2): n.domain = try string()
            case (5, 2):
                var s = try sub()
                let (name, a) = try s.attribute()
                n.attributes[name] = a
            default: try skip(w)
            }
        }
        return n
    }

    mutating func attribute() throws(WireError) -> (String, ONNXAttribute) {
        var name = ""
        var type = 0
        var f32: Float = 0, i64: Int64 = 0, str = ""
        var t: ONNXTensor? = nil
        var floats: [Float] = [], ints: [Int64] = [], strings: [String] = []
        while let (f, w) = try nextField() {
            switch (f, w) {
            case (1, 2): name = try string()
            case (20, 0): type = Int(truncatingIfNeeded: try varint())
            case (2, 5): f32 = Float(bitPattern: try fixed32())
            case (3, 0): i64 = Int64(bitPattern: try varint())
            case (4, 2): str = try string()
            case (5, 2): var s = try sub(); t = try s.tensor()
            case (7, _): try appendFloats(w, &floats)
            case (8, _): try appendVarints(w, &ints)
            case (9, 2): strings.append(try string())
            default: try skip(w)
            }
        }
        let value: ONNXAttribute
        switch type {
        case 1: value = .float(f32)
        case 2: value = .int(Int(i64))
        case 3: value = .string(str)
        case 4: value = t.map { .tensor($0) } ?? .other(type)
        case 6: value = .floats(floats)
        case 7: value = .ints(ints.map { Int($0) })
        case 8: value = .strings(strings)
        default: value = .other(type)
        }
        return (name, value)
    }

    mutating func tensor() throws(WireError) -> ONNXTensor {
        var t = ONNXTensor()
        var dims: [Int64] = []
        var i32: [Int64] = []
        while let (f, w) = try nextField() {
            switch (f, w) {
            case (1, _): try appendVarints(w, &dims)
            case (2, 0): t.dataType = Int(truncatingIfNeeded: try varint())
            case (4, _): try appendFloats(w, &t.floatData)
            case (5, _): try appendVarints(w, &i32)
            case (7, _): try appendVarints(w, &t.int64Data)
            case (8, 2): t.name = try string()
            case (9, 2): t.rawRange = try lengthDelimited()
            case (10, _): try appendDoubles(w, &t.doubleData)
            case (14, 0): t.isExternal = try varint() == 1
            default: try skip(w)
            }
        }
        t.dims = dims.map { Int($0) }
        t.int32Data = i32.map { Int32(truncatingIfNeeded: $0) }
        if t.dims.contains(where: { $0 < 0 }) { throw WireError(message: "tensor \(t.name) has negative dimension \(t.dims)") }
        return t
    }

    mutating func valueInfo() throws(WireError) -> ONNXValueInfo {
        var v = ONNXValueInfo()
        while let (f, w) = try nextField() {
            switch (f, w) {
            case (1, 2): v.name = try string()
            case (2, 2):
                // TypeProto.tensor_type (1) -> elem_type (1), shape (2) -> dim (1) -> dim_value (1)
                var tp = try sub()
                while let (f2, w2) = try tp.nextField() {
                    guard f2 == 1 && w2 == 2 else { try tp.skip(w2); continue }
                    var tt = try tp.sub()
                    while let (f3, w3) = try tt.nextField() {
                        if f3 == 1 && w3 == 0 { v.elementType = Int(truncatingIfNeeded: try tt.varint()) }
                        else if f3 == 2 && w3 == 2 {
                            var sh = try tt.sub()
                            while let (f4, w4) = try sh.nextField() {
                                guard f4 == 1 && w4 == 2 else { try sh.skip(w4); continue }
                                var dim = try sh.sub()
                                var value: Int? = nil
                                while let (f5, w5) = try dim.nextField() {
                                    if f5 == 1 && w5 == 0 { value = Int(Int64(bitPattern: try dim.varint())) }
                                    else { try dim.skip(w5) }
                                }
                                v.shape.append(value)
                            }
                        } else { try tt.skip(w3) }
                    }
                }
            default: try skip(w)
            }
        }
        return v
    }
}
