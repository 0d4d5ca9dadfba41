import Foundation
import FipsArtifact
import FipsHostModel

/// The MLP (dense, or FiPS/SVD factors), GELU, the final norm and head, and
/// the metadata_props of the exported model.
extension ONNXExporter {
    func mlp(_ i: Int, _ h: String) -> String {
        let p = "blocks.\(i).mlp"
        guard model.isFactorised(block: i) else {
            let a = graph.linear(h, weight: matrix(p + ".fc1.weight"), bias: vector(p + ".fc1.bias"), name: p + ".fc1", prefix: p)
            return graph.linear(gelu(a, prefix: p), weight: matrix(p + ".fc2.weight"), bias: vector(p + ".fc2.bias"), name: p + ".fc2", prefix: p)
        }
        // fc1 = (x·U₁)·V₁ + b₁: U₁ [d, r] is the group's shared basis, V₁ [r, m] the block's projection.
        let u1 = tensor(p + ".fc1.U"), v1 = tensor(p + ".fc1.V")
        let z1 = graph.node("MatMul", [h, graph.floats(p + ".fc1.U", u1.shape, u1.data)], prefix: p)
        let y1 = graph.node("MatMul", [z1, graph.floats(p + ".fc1.V", v1.shape, v1.data)], prefix: p)
        let a = graph.node("Add", [y1, graph.floats(p + ".fc1.bias", [config.mlpDim], vector(p + ".fc1.bias"))], prefix: p)
        // fc2 = (g·V₂ᵀ)·U₂ᵀ + b₂: the block's projection, then the shared basis, both stored as the
        // artifact stores them (U₂ is U₁'s initializer when fc1 and fc2 share the basis) and transposed in the graph.
        let u2 = tensor(p + ".fc2.U"), v2 = tensor(p + ".fc2.V")
        let v2t = graph.transposed(graph.floats(p + ".fc2.V", v2.shape, v2.data), prefix: p)
        let u2t = graph.transposed(graph.floats(p + ".fc2.U", u2.shape, u2.data), prefix: p)
        let z2 = graph.node("MatMul", [gelu(a, prefix: p), v2t], prefix: p)
        let y2 = graph.node("MatMul", [z2, u2t], prefix: p)
        return graph.node("Add", [y2, graph.floats(p + ".fc2.bias", [config.dim], vector(p + ".fc2.bias"))], prefix: p)
    }

    /// Exact GELU, x·½(1 + erf(x/√2)), or the tanh form for models that use it.
    func gelu(_ x: String, prefix p: String) -> String {
        let inner: String
        if config.geluTanh {
            let cube = graph.node("Mul", [graph.node("Mul", [x, x], prefix: p), x], prefix: p)
            let sum = graph.node("Add", [x, graph.node("Mul", [cube, graph.scalar(0.044715)], prefix: p)], prefix: p)
            inner = graph.node("Tanh", [graph.node("Mul", [sum, graph.scalar(0.7978845608028654)], prefix: p)], prefix: p)
        } else {
            inner = graph.node("Erf", [graph.node("Mul", [x, graph.scalar(0.70710678118654752)], prefix: p)], prefix: p)
        }
        let onePlus = graph.node("Add", [inner, graph.scalar(1)], prefix: p)
        return graph.node("Mul", [graph.node("Mul", [x, onePlus], prefix: p), graph.scalar(0.5)], prefix: p)
    }

    /// The final norm's output, its CLS row, and the head's logits when there is a head;
    /// returns the graph outputs with their shapes.
    func heads(_ x: String) -> [(String, [Int])] {
        let c = config, d = c.dim, T = c.tokenCount, p = "head"
        let features = layerNorm(x, "norm", prefix: "norm", output: "last_hidden_state")
        let first = graph.int64s("index_cls", [0], shape: [])
        let cls = graph.node("Gather", [features, first], [.int("axis", 1)], prefix: p, output: "embedding")
        var outputs: [(String, [Int])] = [("last_hidden_state", [1, T, d]), ("embedding", [1, d])]
        guard c.hasHead else { return outputs }
        var pooled = cls
        if c.headPooling == .clsAndPatchMean {
            let patches = graph.node("Slice", [features, graph.int64s("slice_start", [1]), graph.int64s("slice_end", [T]),
                                               graph.int64s("slice_axes", [1])], prefix: p)
            let mean = graph.node("ReduceMean", [patches], [.ints("axes", [1]), .int("keepdims", 0)], prefix: p)
            pooled = graph.node("Concat", [cls, mean], [.int("axis", -1)], prefix: p)
        }
        if c.headPooling == .clsAndDistillation {
            let dist = graph.node("Gather", [features, graph.int64s("index_dist", [1], shape: [])], [.int("axis", 1)], prefix: p)
            pooled = graph.node("Concat", [cls, dist], [.int("axis", -1)], prefix: p)
        }
        let y = graph.linear(pooled, weight: matrix(TensorNames.headWeight), bias: vector(TensorNames.headBias), name: "head", prefix: p)
        graph.node("Identity", [y], prefix: p, output: "logits")
        outputs.append(("logits", [1, c.numClasses]))
        return outputs
    }

    /// metadata_props: how to preprocess an image for `pixel_values`, and the labels.
    func modelMetadata() -> [(String, String)] {
        let c = config
        func shortest(_ f: Float) -> Double { Double("\(f)") ?? Double(f) }
        func json(_ v: Any) -> String {
            (try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .withoutEscapingSlashes])).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
        let preprocessing: [String: Any] = [
            "resize_shorter": c.resizeShorter, "crop": c.cropSize, "image_size": c.imageSize,
            "mean": [c.mean.0, c.mean.1, c.mean.2].map(shortest), "std": [c.std.0, c.std.1, c.std.2].map(shortest),
            "layout": "NCHW RGB, value = (pixel / 255 - mean) / std",
        ]
        return [("fips.family", "\(c.family)"), ("fips.preprocessing", json(preprocessing)), ("fips.labels", json(model.labels)),
                ("fips.outputs", c.hasHead ? "last_hidden_state,embedding,logits" : "last_hidden_state,embedding")]
    }
}
