import Foundation

/// The graph as the pattern matchers read it: who produces and who consumes
/// each tensor, and which tensors carry image data. A tensor is *data* when it
/// depends on the image input through anything but `Shape`; the rest (weights,
/// Constant nodes, shape arithmetic on `Shape` outputs) are *parameters* of
/// the data nodes that use them. The matchers walk data nodes only, so the
/// exporters' shape bookkeeping (Shape/Gather/Concat/Unsqueeze chains that
/// build Reshape targets) never has to be recognised op by op.
struct ONNXGraphIndex {
    let graph: ONNXGraph
    /// The image input (the first graph input that is not an initializer).
    let input: String
    private(set) var producer: [String: Int] = [:]
    private(set) var consumers: [String: [Int]] = [:]
    private(set) var inits: [String: ONNXTensor] = [:]
    /// Outputs of Constant nodes.
    private(set) var constants: [String: ONNXTensor] = [:]
    private(set) var data: Set<String> = []
    let outputs: Set<String>

    init(graph: ONNXGraph, path: String) throws {
        self.graph = graph
        var byName: [String: ONNXTensor] = [:]
        for t in graph.initializers { byName[t.name] = t }
        inits = byName
        guard let input = graph.inputs.first(where: { byName[$0.name] == nil })?.name else {
            throw ImportError(path: path, "the graph has no image input (every input is an initializer)")
        }
        self.input = input
        outputs = Set(graph.outputs.map(\.name))
        data = [input]
        for (i, n) in graph.nodes.enumerated() {
            for o in n.outputs where !o.isEmpty { producer[o] = i }
            for t in n.inputs where !t.isEmpty { consumers[t, default: []].append(i) }
            if n.opType == "Constant", let t = n.tensor("value"), let o = n.outputs.first { constants[o] = t }
            // The TorchScript exporter keeps one of several equal initializers and
            // feeds the other uses through Identity nodes.
            if n.opType == "Identity", let i = n.inputs.first, let t = inits[i], let o = n.outputs.first { inits[o] = t }
            // ONNX graphs are topologically sorted, so one pass classifies every tensor.
            if n.opType != "Shape" && n.inputs.contains(where: { data.contains($0) }) {
                for o in n.outputs where !o.isEmpty { data.insert(o) }
            }
        }
    }

    func node(_ i: Int) -> ONNXNode { graph.nodes[i] }

    func isData(_ t: String) -> Bool { data.contains(t) }

    /// Nodes that read `t` and carry its data on (Shape readers left out).
    func dataConsumers(_ t: String) -> [Int] {
        (consumers[t] ?? []).filter { graph.nodes[$0].opType != "Shape" }
    }

    /// The node's inputs that are data, in order.
    func dataInputs(_ n: ONNXNode) -> [String] { n.inputs.filter { isData($0) } }

    /// The node's non-empty inputs that are not data (weights, constants, shapes).
    func paramInputs(_ n: ONNXNode) -> [String] { n.inputs.filter { !$0.isEmpty && !isData($0) } }

    /// An initializer or Constant value by tensor name.
    func constant(_ name: String) -> ONNXTensor? { inits[name] ?? constants[name] }

    /// A float initializer, seen through a Transpose (perm [1, 0]) of one:
    /// (tensor, true when the Transpose turned [out, in] into [in, out]).
    func weight(_ name: String) -> (ONNXTensor, Bool)? {
        if let t = inits[name] { return (t, false) }
        guard let p = producer[name] else { return nil }
        let n = graph.nodes[p]
        if n.opType == "Transpose", n.ints("perm") ?? [1, 0] == [1, 0], let t = inits[n.inputs[0]], t.dims.count == 2 {
            return (t, true)
        }
        return nil
    }

    /// The data nodes between `start` (exclusive) and `end`: every producer
    /// of `end` reached backwards through data inputs, stopping at `start`.
    /// Returns nil with the tensor reached that is neither, when the branch
    /// reads data from outside (another token stream, the image).
    func region(from start: String, to end: String) -> (nodes: [Int], stray: String?) {
        var seen: Set<Int> = []
        var stack = [end]
        var visited: Set<String> = [start]
        while let t = stack.popLast() {
            if visited.contains(t) { continue }
            visited.insert(t)
            guard let p = producer[t] else { return (seen.sorted(), t) }
            if seen.insert(p).inserted {
                for i in dataInputs(graph.nodes[p]) { stack.append(i) }
            }
        }
        return (seen.sorted(), nil)
    }

    /// Every node that produces a parameter ancestor of `t`, for finding the
    /// initializers behind a computed parameter. Data tensors are not entered:
    /// a Shape of the tokens (a dynamic batch size) must not lead back to the
    /// patch Conv's weights.
    func ancestors(_ t: String) -> [Int] {
        var seen: Set<Int> = []
        var stack = [t]
        while let x = stack.popLast() {
            guard !isData(x), let p = producer[x], seen.insert(p).inserted else { continue }
            stack.append(contentsOf: graph.nodes[p].inputs.filter { !$0.isEmpty && !isData($0) })
        }
        return seen.sorted()
    }

    /// The float initializers behind `t` (itself or any ancestor's input).
    func initializersBehind(_ t: String) -> [ONNXTensor] {
        var names: [String] = inits[t] != nil ? [t] : []
        for p in ancestors(t) { names += graph.nodes[p].inputs.filter { inits[$0] != nil } }
        var seen: Set<String> = []
        return names.filter { seen.insert($0).inserted }.map { inits[$0]! }
            .filter { [1, 10, 11, 16].contains($0.dataType) }
    }

    /// Integer values of a shape tensor, element by element: from a constant,
    /// or from a Concat of constants and computed pieces (nil per computed piece).
    func shapeValues(_ name: String, model: ONNXModel) -> [Int?]? {
        if let t = constant(name) { return (try? model.ints(t))?.map { $0 } }
        guard let p = producer[name], graph.nodes[p].opType == "Concat" else { return nil }
        var out: [Int?] = []
        for i in graph.nodes[p].inputs {
            if let t = constant(i), let v = try? model.ints(t) { out += v.map { $0 } } else { out.append(nil) }
        }
        return out
    }

    /// A node's label for messages: its name (or "(unnamed)") and op type.
    func describe(_ n: ONNXNode) -> String {
        "node \(n.name.isEmpty ? "(unnamed)" : n.name) has op \(n.domain.isEmpty || n.domain == "ai.onnx" ? "" : n.domain + ".")\(n.opType)"
    }
}

extension ONNXGraphIndex {
    /// A scalar parameter's value: a one-element constant, or arithmetic
    /// (Pow/Sqrt/Mul/Div/Add/Sub/Cast/Identity) on such constants, as the
    /// TorchScript exporter writes `1 / sqrt(head_dim)`. nil when it depends
    /// on a shape or is not a scalar.
    func scalarValue(_ name: String, model: ONNXModel, depth: Int = 0) -> Float? {
        if let t = constant(name) {
            guard t.elementCount == 1 else { return nil }
            if let f = try? model.floats(t).first { return f }
            return (try? model.ints(t).first).flatMap { $0.map { Float($0) } }
        }
        guard depth < 16, !isData(name), let p = producer[name] else { return nil }
        let n = graph.nodes[p]
        let v = n.inputs.map { scalarValue($0, model: model, depth: depth + 1) }
        guard !v.isEmpty, v.allSatisfy({ $0 != nil }) else { return nil }
        let a = v[0]!, b = v.count > 1 ? v[1]! : 0
        switch n.opType {
        case "Pow": return v.count == 2 ? Float(Foundation.pow(Double(a), Double(b))) : nil
        case "Sqrt": return a.squareRoot()
        case "Mul": return v.count == 2 ? a * b : nil
        case "Div": return v.count == 2 ? a / b : nil
        case "Add": return v.count == 2 ? a + b : nil
        case "Sub": return v.count == 2 ? a - b : nil
        case "Cast", "Identity": return a
        default: return nil
        }
    }
}
