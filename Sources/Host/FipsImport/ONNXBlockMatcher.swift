/// A transformer block's two branches, each the region of data nodes between
/// a LayerNorm's output and the residual Add: self-attention (fused or
/// separate Q/K/V Linears, scores MatMul scaled by 1/sqrt(head dim), Softmax,
/// MatMul with V, output Linear) and the MLP (Linear, GELU, Linear), each with
/// an optional LayerScale Mul last.
extension ONNXPatternMatcher {
    /// Linears of a region, and the nodes they claim (MatMul/Gemm and bias Add).
    func linears(in nodes: [Int]) -> ([LinearLayer], Set<Int>) {
        var out: [LinearLayer] = [], claimed: Set<Int> = []
        for i in nodes {
            guard let l = linear(i) else { continue }
            out.append(l)
            claimed.insert(i)
            if let b = l.biasNode { claimed.insert(b) }
        }
        return (out, claimed)
    }

    /// A Mul of the branch by a [d] initializer that ends the branch: LayerScale.
    func layerScale(_ n: ONNXNode, d: Int, end: String) -> Placed? {
        guard n.opType == "Mul", n.outputs[0] == end, let p = g.paramInputs(n).first, g.paramInputs(n).count == 1,
              let t = g.inits[p], t.elementCount == d, t.elementCount > 1 else { return nil }
        return Placed(tensor: t, node: n.name)
    }

    mutating func matchAttention(layer: Int, from start: String, to end: String, into slots: inout [String: Placed]) throws {
        let (nodes, stray) = g.region(from: start, to: end)
        if let s = stray { throw fail("layer \(layer): the attention branch reads \(s), which does not come from its LayerNorm") }
        let d = conv?.1.dims[0] ?? 0
        let (lin, claimed) = linears(in: nodes)
        var softmax: [Int] = [], products: [Int] = []
        var scale: Float = 1, computedScale = false
        for i in nodes where !claimed.contains(i) {
            let n = g.node(i)
            if let ls = layerScale(n, d: d, end: end) { slots["ls1"] = ls; continue }
            switch n.opType {
            case "MatMul" where g.dataInputs(n).count == 2:
                products.append(i)
            case "Softmax":
                guard [-1, 3].contains(n.int("axis") ?? -1) else { throw unexpected(i, "Softmax over the last axis") }
                softmax.append(i)
            case "Mul", "Div":
                guard g.dataInputs(n).count == 1, g.paramInputs(n).count == 1 else {
                    throw unexpected(i, "a Mul/Div of the attention scores or queries by a scalar scale")
                }
                let p = g.paramInputs(n)[0]
                if let v = g.scalarValue(p, model: onnx) {
                    scale *= n.opType == "Mul" ? v : 1 / v
                } else if let t = g.constant(p), t.elementCount != 1 {
                    throw unexpected(i, "a scalar attention scale (Mul/Div by one value), not \(t.dims)")
                } else {
                    // Computed from the query's shape: the exported SDPA's default 1/sqrt(head dim).
                    computedScale = true
                }
            case "Add" where g.dataInputs(n).count == 1:
                // SDPA's additive mask (HF exports one with no padding): must be all zeros.
                guard let p = g.paramInputs(n).first, let t = g.constant(p), try onnx.floats(t).allSatisfy({ $0 == 0 }) else {
                    throw unexpected(i, "no attention mask (an Add of zeros to the scores at most); masked attention is not supported")
                }
            case "IsNaN":
                continue
            case "Where":
                // Where(IsNaN(p), 0, p) after the Softmax: a no-op on finite scores.
                guard n.inputs.count == 3, let c = g.producer[n.inputs[0]], g.node(c).opType == "IsNaN",
                      g.node(c).inputs.first == n.inputs[2] else {
                    throw unexpected(i, "Where(IsNaN(p), 0, p) after the attention Softmax")
                }
            case let op where ONNXPatternMatcher.layoutOps.contains(op):
                continue
            default:
                throw unexpected(i, "self-attention (Q/K/V MatMul + Add, Reshape/Transpose/Split/Slice, MatMul, Mul/Div scale, Softmax, MatMul, output MatMul + Add, LayerScale Mul) in layer \(layer)")
            }
        }
        guard softmax.count == 1, products.count == 2 else {
            throw fail("layer \(layer): the attention branch ending at \(end) has \(softmax.count) Softmax and \(products.count) activation MatMuls, expected 1 and 2 (softmax(Q K^T) V)")
        }
        let qkv = lin.filter { $0.input == start }, proj = lin.filter { $0.input != start }
        guard proj.count == 1, proj[0].outDim == d else {
            throw fail("layer \(layer): expected one output projection Linear [\(d), \(d)] after the attention, found \(proj.count)")
        }
        let (scores, mix) = g.region(from: start, to: g.node(softmax[0]).inputs[0]).nodes.contains(products[0])
            ? (products[0], products[1]) : (products[1], products[0])
        if qkv.count == 1 && qkv[0].outDim == 3 * d {
            // timm: one Linear, reshaped [B, N, 3, heads, head dim], chunks q, k, v in that order.
            let order = [g.node(scores).inputs[0], g.node(scores).inputs[1], g.node(mix).inputs[1]].map { chunk($0, from: start, d: d) }
            guard order == [0, 1, 2] else {
                throw fail("layer \(layer): the fused QKV Linear \(g.node(qkv[0].node).name) feeds queries, keys and values from chunks \(order.map { $0.map(String.init) ?? "?" }), expected 0, 1, 2")
            }
            place(qkv[0], "qkv", into: &slots)
        } else if qkv.count == 3 && qkv.allSatisfy({ $0.outDim == d }) {
            func feeding(_ t: String) throws -> LinearLayer {
                let r = Set(g.region(from: start, to: t).nodes)
                guard let l = qkv.first(where: { r.contains($0.node) }) else {
                    throw fail("layer \(layer): no query/key/value Linear feeds \(t)")
                }
                return l
            }
            place(try feeding(g.node(scores).inputs[0]), "query", into: &slots)
            place(try feeding(g.node(scores).inputs[1]), "key", into: &slots)
            place(try feeding(g.node(mix).inputs[1]), "value", into: &slots)
        } else {
            throw fail("layer \(layer): expected a fused QKV Linear [\(d), \(3 * d)] or three Q/K/V Linears [\(d), \(d)] reading the LayerNorm, found \(qkv.map(\.outDim))")
        }
        place(proj[0], "proj", into: &slots)
        try matchHeads(layer: layer, nodes: nodes, d: d, scale: computedScale ? nil : scale)
        if let (_, hd) = heads, !computedScale, abs(scale * Float(hd).squareRoot() - 1) > 1e-4 {
            throw fail("node \(g.node(softmax[0]).name) (Softmax): attention scale \(scale) (the product of the Mul/Div scales before it), expected 1/sqrt(\(hd)) = \(1 / Float(hd).squareRoot()), which the runtime uses")
        }
    }

    /// Which third of a fused QKV output reaches t: the Split output, Gather
    /// index or Slice start met walking back from t (nil when none is).
    func chunk(_ t: String, from start: String, d: Int) -> Int? {
        var x = t
        while x != start, let p = g.producer[x] {
            let n = g.node(p)
            func first(_ i: Int) -> Int? {
                guard n.inputs.count > i, let c = g.constant(n.inputs[i]), let v = try? onnx.ints(c), v.count == 1 else { return nil }
                return v[0] < 3 ? v[0] : (v[0] % d == 0 ? v[0] / d : nil)
            }
            switch n.opType {
            case "Split": return n.outputs.firstIndex(of: x)
            case "Gather": return first(1)
            case "Slice": return first(1)
            default:
                guard let next = g.dataInputs(n).first else { return nil }
                x = next
            }
        }
        return nil
    }

    func place(_ l: LinearLayer, _ role: String, into slots: inout [String: Placed]) {
        slots[role + ".w"] = l.weight
        if let b = l.bias { slots[role + ".b"] = b }
    }

    /// Heads from the Reshape that splits the width, target [..., heads, head
    /// dim] with both constant. With a dynamic batch the exporter may compute
    /// one of them from the input's shape: then the head dim is the one a
    /// constant scale 1/sqrt(head dim) gives, else the constant heads entry.
    mutating func matchHeads(layer: Int, nodes: [Int], d: Int, scale: Float?) throws {
        // (node, heads or nil, head dim or nil) of each Reshape to 4 or more dims.
        var targets: [(Int, Int?, Int?)] = []
        for i in nodes where g.node(i).opType == "Reshape" {
            guard let v = g.shapeValues(g.node(i).inputs[1], model: onnx), v.count >= 4 else { continue }
            targets.append((i, v[v.count - 2], v[v.count - 1]))
        }
        var found: (Int, Int, String)? = nil
        let hdFromScale: Int? = scale.flatMap { s -> Int? in
            guard s > 0 else { return nil }
            let hd = (1 / (s * s)).rounded()
            return abs(1 / (s * s) - hd) < 1e-2 * hd && hd >= 1 ? Int(hd) : nil
        }
        for (i, h, hd) in targets {
            if let h = h, let hd = hd, h > 0, hd > 0, h * hd == d { found = (h, hd, g.node(i).name); break }
        }
        if found == nil, let hd = hdFromScale, d % hd == 0 {
            found = (d / hd, hd, "the attention scale")
        }
        if found == nil, let (i, h, _) = targets.first(where: { $0.2 == nil && ($0.1 ?? 0) > 0 && d % $0.1! == 0 && $0.1! < d }) {
            found = (h!, d / h!, g.node(i).name)
        }
        guard let (h, hd, source) = found else { return }
        if let (h0, _) = heads, h0 != h { throw fail("layer \(layer): \(h) heads (from \(source)), \(h0) in layer 0") }
        heads = (h, hd)
    }

    mutating func matchMLP(layer: Int, from start: String, to end: String, into slots: inout [String: Placed]) throws {
        let (nodes, stray) = g.region(from: start, to: end)
        if let s = stray { throw fail("layer \(layer): the MLP branch reads \(s), which does not come from its LayerNorm") }
        let d = conv?.1.dims[0] ?? 0
        let (lin, claimed) = linears(in: nodes)
        var kinds: Set<Bool> = []   // tanh?
        var scalars: [Float] = []   // the decomposed GELU's constants (Div values inverted)
        for i in nodes where !claimed.contains(i) {
            let n = g.node(i)
            if let ls = layerScale(n, d: d, end: end) { slots["ls2"] = ls; continue }
            switch n.opType {
            case "Gelu":
                let approx = n.string("approximate") ?? "none"
                guard approx == "none" || approx == "tanh" else { throw unexpected(i, "Gelu with approximate none or tanh") }
                kinds.insert(approx == "tanh")
            case "Erf": kinds.insert(false)
            case "Tanh": kinds.insert(true)
            case "Mul", "Div", "Add", "Pow":
                // GELU arithmetic: scalar constants (0.5, 1, sqrt(2), 0.044715, 3, ...) or x times x.
                let params = g.paramInputs(n)
                let values = params.map { g.scalarValue($0, model: onnx) }
                guard values.allSatisfy({ $0 != nil }) else {
                    throw unexpected(i, "GELU arithmetic with scalar constants in the MLP of layer \(layer)")
                }
                scalars += values.map { n.opType == "Div" ? 1 / $0! : $0! }
            case "Reshape", "Flatten", "Identity", "Cast":
                continue
            default:
                throw unexpected(i, "the MLP (MatMul + Add, GELU as Gelu or its Erf/Tanh form, MatMul + Add, LayerScale Mul) of layer \(layer)")
            }
        }
        guard kinds.count == 1 else {
            throw fail("layer \(layer): the MLP branch ending at \(end) has \(kinds.isEmpty ? "no GELU" : "both erf and tanh GELU"), expected one GELU (Gelu, Erf or Tanh form)")
        }
        gelu[layer] = kinds.first!
        try checkGELUConstants(layer: layer, tanh: kinds.first!, scalars: scalars, decomposed: !nodes.contains { g.node($0).opType == "Gelu" })
        let fc1 = lin.filter { $0.input == start }, fc2 = lin.filter { $0.input != start }
        guard fc1.count == 1, fc2.count == 1, fc1[0].inDim == d, fc2[0].inDim == fc1[0].outDim, fc2[0].outDim == d else {
            throw fail("layer \(layer): expected two Linears [\(d), mlp] and [mlp, \(d)] in the MLP, found \(lin.map { [$0.inDim, $0.outDim] })")
        }
        place(fc1[0], "fc1", into: &slots)
        place(fc2[0], "fc2", into: &slots)
    }

    /// The decomposed GELU's defining constants: x/sqrt(2) inside Erf, or
    /// sqrt(2/pi) and 0.044715 around Tanh (else it is some other function).
    func checkGELUConstants(layer: Int, tanh: Bool, scalars: [Float], decomposed: Bool) throws {
        guard decomposed else { return }
        func has(_ v: Float) -> Bool { scalars.contains { abs($0 - v) <= 1e-4 * v } }
        let needed: [Float] = tanh ? [0.044715, 0.7978846] : [0.70710677]
        if let missing = needed.first(where: { !has($0) }) {
            throw fail("layer \(layer): the MLP's \(tanh ? "Tanh" : "Erf") activation lacks the GELU constant \(missing) (constants found: \(scalars)); not a GELU")
        }
    }
}
