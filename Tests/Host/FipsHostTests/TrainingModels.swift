import FipsArtifact
import FipsHostModel

/// Tiny ViTs with random weights large enough that finite differences in
/// float32 see them (std 0.3), for the fine-tuning tests.
enum TrainingModels {
    /// `distilled`: a distillation token and the head on concat(CLS, distillation token), as distilled DeiT.
    static func config(tanh: Bool = false, pooling: ViTConfig.HeadPooling = .clsAndPatchMean, classes: Int = 3,
                       distilled: Bool = false) -> ViTConfig {
        var c = ViTConfig()
        c.family = .vit
        c.imageSize = 14; c.cropSize = 14; c.resizeShorter = 16; c.patchSize = 7
        c.dim = 16; c.depth = 3; c.heads = 2; c.mlpDim = 32
        c.numClasses = classes; c.headPooling = pooling
        c.geluTanh = tanh
        c.hasLayerScale = true
        if distilled { c.hasDistillationToken = true; c.headPooling = .clsAndDistillation }
        return c
    }

    /// Dense fp32 model: every tensor drawn from SplitMix64, norms near 1.
    static func dense(_ c: ViTConfig, seed: UInt64) -> ViTModel {
        var rng = SplitMix64(seed: seed)
        func uniform() -> Float { Float(rng.nextUnit() * 2 - 1) }
        var t = [String: HostTensor]()
        for (name, shape) in ViTModel.expectedShapes(c) {
            let n = shape.reduce(1, *)
            let isNorm = name.contains("norm") && name.hasSuffix("weight")
            let isScale = name.hasSuffix("ls1") || name.hasSuffix("ls2")
            let data = (0..<n).map { _ -> Float in
                isNorm ? 1 + 0.2 * uniform() : isScale ? 0.5 + 0.3 * uniform() : 0.5 * uniform()
            }
            t[name] = HostTensor(shape: shape, data: data)
        }
        return ViTModel(config: c, tensors: t, labels: (0..<c.numClasses).map { "class\($0)" })
    }

    /// Blocks 1 and 2 as one FiPS group: one shared basis U [d, r] for both
    /// blocks' fc1 and fc2, per-layer V [r, m] with about a third of the entries zero.
    static func fips(_ c: ViTConfig, seed: UInt64, rank r: Int = 8) -> ViTModel {
        var m = dense(c, seed: seed)
        var rng = SplitMix64(seed: seed &+ 99)
        func uniform() -> Float { Float(rng.nextUnit() * 2 - 1) }
        let u = HostTensor(shape: [c.dim, r], data: (0..<(c.dim * r)).map { _ in 0.5 * uniform() })
        for b in 1...2 {
            for fc in ["fc1", "fc2"] {
                m.tensors[TensorNames.block(b, "mlp.\(fc).weight")] = nil
                m.tensors[TensorNames.block(b, "mlp.\(fc).U")] = u
                m.tensors[TensorNames.block(b, "mlp.\(fc).V")] = HostTensor(
                    shape: [r, c.mlpDim], data: (0..<(r * c.mlpDim)).map { _ in let x = uniform(); return abs(x) < 0.33 ? 0 : 0.5 * x })
            }
        }
        return m
    }

    /// `count` normalised random images [C, S, S].
    static func images(_ c: ViTConfig, count: Int, seed: UInt64) -> [[Float]] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in (0..<(c.channels * c.imageSize * c.imageSize)).map { _ in Float(rng.nextUnit() * 4 - 2) } }
    }
}
