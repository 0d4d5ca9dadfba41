// The ONNX messages `fips export` writes, with onnx.proto's field numbers
// (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto,
// ValueInfoProto). Only what a float ViT graph uses.

enum ONNXProto {
    /// TensorProto.DataType.
    static let float = 1, int64 = 7

    /// An attribute of a node: AttributeProto with its type code.
    enum Attribute {
        case int(String, Int)
        case float(String, Float)
        case ints(String, [Int])

        var proto: WireWriter {
            var w = WireWriter()
            switch self {
            case .float(let name, let v):
                w.string(1, name); w.float(2, v); w.int(20, 1)   // type FLOAT
            case .int(let name, let v):
                w.string(1, name); w.int(3, v); w.int(20, 2)     // type INT
            case .ints(let name, let v):
                w.string(1, name); w.ints(8, v); w.int(20, 7)    // type INTS
            }
            return w
        }
    }

    static func node(op: String, name: String, inputs: [String], outputs: [String], attributes: [Attribute]) -> WireWriter {
        var w = WireWriter()
        inputs.forEach { w.string(1, $0) }
        outputs.forEach { w.string(2, $0) }
        w.string(3, name)
        w.string(4, op)
        attributes.forEach { w.message(5, $0.proto) }
        return w
    }

    /// A TensorProto with its values little-endian in raw_data.
    static func tensor(name: String, dims: [Int], dataType: Int, raw: [UInt8]) -> WireWriter {
        var w = WireWriter()
        w.ints(1, dims)
        w.int(2, dataType)
        w.string(8, name)
        w.data(9, raw)
        return w
    }

    /// ValueInfoProto of a float tensor with fixed dims.
    static func valueInfo(name: String, dims: [Int], elementType: Int = float) -> WireWriter {
        var shape = WireWriter()
        for d in dims {
            var dim = WireWriter()
            dim.int(1, d)                  // dim_value
            shape.message(1, dim)          // TensorShapeProto.dim
        }
        var tensorType = WireWriter()
        tensorType.int(1, elementType)     // elem_type
        tensorType.message(2, shape)
        var type = WireWriter()
        type.message(1, tensorType)        // TypeProto.tensor_type
        var w = WireWriter()
        w.string(1, name)
        w.message(2, type)
        return w
    }

    static func stringPair(_ key: String, _ value: String) -> WireWriter {
        var w = WireWriter()
        w.string(1, key); w.string(2, value)
        return w
    }

    /// ModelProto: IR version 8 (onnxruntime 1.14 and later), default domain at `opset`.
    static func model(graph: WireWriter, opset: Int, producerVersion: String, metadata: [(String, String)]) -> [UInt8] {
        var w = WireWriter()
        w.int(1, 8)                        // ir_version
        w.string(2, "fips")                // producer_name
        w.string(3, producerVersion)
        w.message(7, graph)
        var op = WireWriter()
        op.string(1, ""); op.int(2, opset)
        w.message(8, op)                   // opset_import
        metadata.forEach { w.message(14, stringPair($0.0, $0.1)) }
        return w.bytes
    }
}
