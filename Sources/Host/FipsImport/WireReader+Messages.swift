import Foundation

/// The ONNX messages: ModelProto's graph, nodes, attributes, tensors and value infos.
extension WireReader {
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
            case (13, 2): var s = try sub(); let (k, v) = try s.stringPair(); t.externalData[k] = v
            case (14, 0): t.isExternal = try varint() == 1
            default: try skip(w)
            }
        }
        t.dims = dims.map { Int($0) }
        t.int32Data = i32.map { Int32(truncatingIfNeeded: $0) }
        if t.dims.contains(where: { $0 < 0 }) { throw WireError(message: "tensor \(t.name) has negative dimension \(t.dims)") }
        return t
    }

    /// StringStringEntryProto: (key, value).
    mutating func stringPair() throws(WireError) -> (String, String) {
        var k = "", v = ""
        while let (f, w) = try nextField() {
            switch (f, w) {
            case (1, 2): k = try string()
            case (2, 2): v = try string()
            default: try skip(w)
            }
        }
        return (k, v)
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
