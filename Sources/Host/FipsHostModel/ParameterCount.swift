import FipsArtifact

/// Parameters a model stores, by part, counted the way the artifact stores
/// them: a tensor shared by several names (a FiPS basis) once, and a pruned
/// projection by its nonzeros. This is the "whole-model compression" figure.
public struct ParameterCount: Equatable {
    public var embedding = 0   // patch embedding, CLS token, position embedding
    public var attention = 0   // QKV and output projection, weights and biases
    public var mlp = 0         // fc1/fc2 (dense, or U once per group + V nonzeros) and biases
    public var other = 0       // LayerNorms, LayerScales
    public var head = 0

    public var total: Int { embedding + attention + mlp + other + head }
    public var backbone: Int { total - head }

    public init(_ model: ViTModel) {
        var seen = Set<[Float]>()
        for name in model.tensors.keys.sorted() {
            let t = model.tensors[name]!
            var n = t.count
            if name.hasSuffix(".U") {
                if seen.contains(t.data) { continue }
                seen.insert(t.data)
            } else if name.hasSuffix(".V") {
                n = t.data.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
            }
            if name.hasPrefix("patch_embed") || name == TensorNames.clsToken || name == TensorNames.distToken
                || name == TensorNames.posEmbed {
                embedding += n
            } else if name.contains(".attn.") {
                attention += n
            } else if name.contains(".mlp.") {
                mlp += n
            } else if name.hasPrefix("head.") {
                head += n
            } else {
                other += n
            }
        }
    }

    /// 1 − after/before over the backbone (the head is trained per task and
    /// left out, so a refitted head does not move the figure).
    public static func compression(before: ParameterCount, after: ParameterCount) -> Double {
        1 - Double(after.backbone) / Double(before.backbone)
    }
}
