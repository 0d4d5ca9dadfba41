/// The embedding stage: image input -> patch Conv -> tokens, class token (and
/// distilled DeiT's distillation token) concatenated in front, position embedding added (as an initializer, or
/// computed from initializers through a Resize, as HF exports interpolate it).
extension ONNXPatternMatcher {
    /// Returns the residual stream's first tensor (tokens + positions).
    mutating func matchEmbeddings() throws -> String {
        var t = g.input
        // The HF export casts the image to float before the Conv.
        while let c = soleConsumer(t), ["Cast", "Identity"].contains(g.node(c).opType) { t = g.node(c).outputs[0] }
        let cons = g.dataConsumers(t)
        guard let ci = cons.first else { throw fail("the image input \(g.input) is not used by any node") }
        let cn = g.node(ci)
        guard cons.count == 1, cn.opType == "Conv" else {
            throw unexpected(ci, "the patch-embedding Conv on the image input \(g.input) (a MatMul patch embedding is not supported)")
        }
        guard cn.inputs.count >= 2, let w = g.inits[cn.inputs[1]], w.dims.count == 4, w.dims[0] > 0 else {
            throw fail("node \(cn.name): patch-embedding Conv without a weight initializer [dim, channels, p, p]")
        }
        // No bias input: the dynamo exporter's optimiser drops an all-zero bias.
        let b = cn.inputs.count > 2 && !cn.inputs[2].isEmpty ? g.inits[cn.inputs[2]] : nil
        if cn.inputs.count > 2 && !cn.inputs[2].isEmpty && b == nil {
            throw fail("node \(cn.name): patch-embedding Conv bias \(cn.inputs[2]) is not an initializer")
        }
        conv = (cn, w, b)
        let d = w.dims.first ?? 0
        t = cn.outputs[0]
        // [B, d, g, g] -> [B, g*g, d]: views and transposes only, up to the Concat with the class token.
        var concatIndex: Int? = nil
        while concatIndex == nil {
            let cs = g.dataConsumers(t)
            guard let c = cs.first else {
                throw fail("no CLS token initializer: the patch embedding (\(t)) is never concatenated with a class token")
            }
            let n = g.node(c)
            guard cs.count == 1 else { throw unexpected(cs[1], "a single path from the patch Conv to the class-token Concat") }
            if ["Reshape", "Flatten", "Transpose", "Identity"].contains(n.opType) { t = n.outputs[0]; continue }
            guard n.opType == "Concat" else {
                throw unexpected(c, "Reshape/Flatten/Transpose of the patch embedding, then Concat with the class token")
            }
            concatIndex = c
        }
        let cat = g.node(concatIndex!)
        let tokens = cat.inputs.filter { !g.isData($0) }
        let axis = cat.int("axis") ?? 0
        guard axis == 1 || axis == -2, cat.inputs.last == t, !tokens.isEmpty else {
            throw unexpected(concatIndex!, "Concat(class token, patches) on axis 1 (axis \(axis))")
        }
        if tokens.count > 2 {
            throw fail("node \(cat.name) (Concat) puts \(tokens.count) tokens before the patches; expected the class token, and at most a distillation token (register tokens are not supported)")
        }
        guard let cls = g.initializersBehind(tokens[0]).first(where: { $0.elementCount == d }) else {
            throw fail("no CLS token initializer ([1, 1, \(d)]) behind node \(cat.name)")
        }
        clsToken = Placed(tensor: cls, node: cat.name)
        if tokens.count == 2 {
            guard let dist = g.initializersBehind(tokens[1]).first(where: { $0.elementCount == d }) else {
                throw fail("no distillation token initializer ([1, 1, \(d)]) behind input 1 of node \(cat.name)")
            }
            distToken = Placed(tensor: dist, node: cat.name)
        }
        return try matchPositions(after: cat.outputs[0], d: d)
    }

    /// The Add of the position embedding to the tokens.
    mutating func matchPositions(after t: String, d: Int) throws -> String {
        guard let ai = soleConsumer(t) else { throw fail("the token sequence \(t) has no position-embedding Add") }
        let a = g.node(ai)
        guard a.opType == "Add", let pos = g.paramInputs(a).first, g.paramInputs(a).count == 1 else {
            throw unexpected(ai, "the Add of the position embedding to the class token and patches")
        }
        if let p = g.inits[pos] {
            posFull = Placed(tensor: p, node: a.name)
            return a.outputs[0]
        }
        // Computed: a class position and a grid, resized in the graph.
        for t in g.initializersBehind(pos) where t.dims.count == 3 && t.dims[0] == 1 && t.dims[2] == d {
            if t.dims[1] == 1 { clsPos = t } else { posGrid = t }
        }
        let resizes = g.ancestors(pos).filter { g.node($0).opType == "Resize" }
        if resizes.count > 1 { throw unexpected(resizes[1], "at most one Resize of the position embedding") }
        resize = resizes.first.map { g.node($0) }
        if resize == nil { throw fail("node \(a.name): the position embedding is computed without a Resize; expected an initializer [1, tokens, \(d)]") }
        return a.outputs[0]
    }

    /// The only data consumer of t, or nil.
    func soleConsumer(_ t: String) -> Int? {
        let c = g.dataConsumers(t)
        return c.count == 1 ? c[0] : nil
    }
}

/// A LayerNorm over the last axis, found at the residual stream.
struct NormMatch {
    var weight: Placed
    /// nil: no bias (LayerNormalization's optional input, dropped when zero).
    var bias: Placed?
    var eps: Float
    var epsNode: String
    /// The nodes reading the stream (LayerNormalization, or ReduceMean and Sub).
    var entry: Set<Int>
    var output: String
}

extension ONNXPatternMatcher {
    /// LayerNorm at x: one LayerNormalization node, or the TorchScript
    /// exporter's ReduceMean/Sub/Pow/ReduceMean/Add(eps)/Sqrt/Div/Mul(w)/Add(b).
    /// nil when neither starts at x.
    func matchNorm(at x: String) throws -> NormMatch? {
        let cons = g.dataConsumers(x)
        if let i = cons.first(where: { g.node($0).opType == "LayerNormalization" }) {
            let n = g.node(i)
            let b = n.inputs.count > 2 && !n.inputs[2].isEmpty ? g.inits[n.inputs[2]] : nil
            guard [-1, 2].contains(n.int("axis") ?? -1), n.inputs.count >= 2, let w = g.inits[n.inputs[1]],
                  b != nil || n.inputs.count < 3 || n.inputs[2].isEmpty else {
                throw unexpected(i, "LayerNormalization over the last axis with weight (and bias) initializers")
            }
            return NormMatch(weight: Placed(tensor: w, node: n.name), bias: b.map { Placed(tensor: $0, node: n.name) },
                             eps: n.float("epsilon") ?? 1e-5, epsNode: n.name, entry: [i], output: n.outputs[0])
        }
        guard let r = cons.first(where: { g.node($0).opType == "ReduceMean" }),
              let s = cons.first(where: { g.node($0).opType == "Sub" && g.node($0).inputs == [x, g.node(r).outputs[0]] }) else {
            return nil
        }
        try lastAxisMean(r)
        let sub = g.node(s).outputs[0]
        let pow = try next(sub, "Pow", "the variance's square")
        let mean2 = try next(g.node(pow).outputs[0], "ReduceMean", "the variance")
        try lastAxisMean(mean2)
        let addEps = try next(g.node(mean2).outputs[0], "Add", "variance + epsilon")
        guard let epsName = g.paramInputs(g.node(addEps)).first, let et = g.constant(epsName), et.elementCount == 1,
              let eps = try? onnx.floats(et).first else {
            throw unexpected(addEps, "Add of a constant epsilon to the variance")
        }
        let sqrt = try next(g.node(addEps).outputs[0], "Sqrt", "the standard deviation")
        let div = try next(g.node(sqrt).outputs[0], "Div", "(x - mean) / std")
        guard g.node(div).inputs == [sub, g.node(sqrt).outputs[0]] else { throw unexpected(div, "Div(x - mean, std)") }
        let mul = try next(g.node(div).outputs[0], "Mul", "the LayerNorm weight")
        let add = try next(g.node(mul).outputs[0], "Add", "the LayerNorm bias")
        guard let w = g.paramInputs(g.node(mul)).first.flatMap({ g.inits[$0] }),
              let b = g.paramInputs(g.node(add)).first.flatMap({ g.inits[$0] }) else {
            throw unexpected(mul, "Mul and Add of the LayerNorm weight and bias initializers")
        }
        return NormMatch(weight: Placed(tensor: w, node: g.node(mul).name), bias: Placed(tensor: b, node: g.node(add).name),
                         eps: eps, epsNode: g.node(addEps).name, entry: [r, s], output: g.node(add).outputs[0])
    }

    /// A ReduceMean over the last axis only (axes attribute, or input from opset 18), keeping it.
    func lastAxisMean(_ i: Int) throws {
        let n = g.node(i)
        let axes = n.ints("axes") ?? (n.inputs.count > 1 ? g.constant(n.inputs[1]).flatMap { try? onnx.ints($0) } : nil)
        guard let a = axes, a == [-1] || a == [2], (n.int("keepdims") ?? 1) == 1 else {
            throw unexpected(i, "ReduceMean over the last axis (axes [-1]) in a decomposed LayerNorm")
        }
    }

    /// The data consumer of t with op `op` (the chain allows one, plus the Div reading Sub).
    func next(_ t: String, _ op: String, _ what: String) throws -> Int {
        let cons = g.dataConsumers(t)
        if let i = cons.first(where: { g.node($0).opType == op }) { return i }
        guard let c = cons.first else { throw fail("tensor \(t) ends inside a LayerNorm, expected \(op) (\(what))") }
        throw unexpected(c, "\(op) (\(what)) in a decomposed LayerNorm")
    }
}
