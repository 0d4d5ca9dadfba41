/// A graph under construction: nodes in topological order (each added after
/// its inputs), float and int64 initializers. An initializer identical to an
/// earlier one (same shape and values) is not stored again: the earlier name
/// is returned, which is how a FiPS group's shared basis stays one tensor
/// that every block of the group multiplies by.
final class ONNXGraphBuilder {
    private(set) var nodes = [WireWriter]()
    private(set) var initializers = [WireWriter]()
    private var floatsByHash = [Int: [(name: String, shape: [Int], data: [Float])]]()
    private var counter = 0
    private var transposes = [String: String]()
    private(set) var sharedInitializerUses = 0

    /// A float initializer named `name`, or the earlier one with the same shape and values.
    func floats(_ name: String, _ shape: [Int], _ data: [Float]) -> String {
        precondition(shape.reduce(1, *) == data.count, "initializer \(name): \(data.count) values for shape \(shape)")
        var h = Hasher()
        h.combine(shape); h.combine(data)
        let key = h.finalize()
        if let twin = floatsByHash[key]?.first(where: { $0.shape == shape && $0.data == data }) {
            sharedInitializerUses += 1
            return twin.name
        }
        floatsByHash[key, default: []].append((name, shape, data))
        var raw = [UInt8](repeating: 0, count: 4 * data.count)
        raw.withUnsafeMutableBytes { dst in data.withUnsafeBytes { dst.copyMemory(from: $0) } }
        initializers.append(ONNXProto.tensor(name: name, dims: shape, dataType: ONNXProto.float, raw: raw))
        return name
    }

    /// An int64 initializer (shapes for Reshape, indices for Gather); `shape` [] is a scalar.
    func int64s(_ name: String, _ values: [Int], shape: [Int]? = nil) -> String {
        var raw = [UInt8]()
        for v in values { let u = UInt64(bitPattern: Int64(v)); for k in 0..<8 { raw.append(UInt8(truncatingIfNeeded: u >> (8 * UInt64(k)))) } }
        initializers.append(ONNXProto.tensor(name: name, dims: shape ?? [values.count], dataType: ONNXProto.int64, raw: raw))
        return name
    }

    /// The transpose of a 2-D initializer, one Transpose node per initializer however
    /// often it is asked for (the fc2 factors of every block of a FiPS group).
    func transposed(_ initializer: String, prefix: String) -> String {
        if let t = transposes[initializer] { return t }
        let t = node("Transpose", [initializer], [.ints("perm", [1, 0])], prefix: prefix, output: initializer + "_t")
        transposes[initializer] = t
        return t
    }

    /// A scalar float constant, shape [1] (broadcast by the elementwise ops).
    func scalar(_ v: Float) -> String { floats("const_\(v)", [1], [v]) }

    /// Adds a node and returns its output name (`output` or a fresh one from `prefix`).
    @discardableResult
    func node(_ op: String, _ inputs: [String], _ attributes: [ONNXProto.Attribute] = [], prefix: String,
              output: String? = nil) -> String {
        counter += 1
        let out = output ?? "\(prefix)/\(op)_\(counter)"
        nodes.append(ONNXProto.node(op: op, name: "\(prefix)/\(op)_\(counter)", inputs: inputs, outputs: [out],
                                    attributes: attributes))
        return out
    }

    /// y = x·Wᵀ + b for a linear weight stored [out, in] (the kit's layout).
    func linear(_ x: String, weight: HostMatrix, bias: [Float]?, name: String, prefix: String) -> String {
        let w = floats(name + ".weight_t", [weight.cols, weight.rows], weight.transposed())
        let y = node("MatMul", [x, w], prefix: prefix)
        guard let b = bias else { return y }
        return node("Add", [y, floats(name + ".bias", [b.count], b)], prefix: prefix)
    }

    /// GraphProto: nodes, name, initializers, inputs, outputs.
    func proto(name: String, inputs: [WireWriter], outputs: [WireWriter]) -> WireWriter {
        var g = WireWriter()
        nodes.forEach { g.message(1, $0) }
        g.string(2, name)
        initializers.forEach { g.message(5, $0) }
        inputs.forEach { g.message(11, $0) }
        outputs.forEach { g.message(12, $0) }
        return g
    }
}

/// A row-major matrix taken from a host tensor.
struct HostMatrix {
    var rows, cols: Int
    var data: [Float]

    func transposed() -> [Float] {
        var t = [Float](repeating: 0, count: data.count)
        for r in 0..<rows { for c in 0..<cols { t[c * rows + r] = data[r * cols + c] } }
        return t
    }
}
