import Foundation
import FipsArtifact
import FipsHostModel

/// A tiny random ViT with every tensor the executor needs.
func makeTinyModel(seed: UInt64 = 7, classes: Int = 0, pooling: ViTConfig.HeadPooling = .cls) -> ViTModel {
    var c = ViTConfig()
    c.imageSize = 28; c.cropSize = 28; c.resizeShorter = 32
    c.patchSize = 14; c.dim = 16; c.depth = 2; c.heads = 2; c.mlpDim = 40
    c.numClasses = classes; c.headPooling = pooling
    var rng = SplitMix64(seed: seed)
    var tensors = [String: HostTensor]()
    for (name, shape) in ViTModel.expectedShapes(c) {
        let n = shape.reduce(1, *)
        let isNormWeight = name.hasSuffix("norm1.weight") || name.hasSuffix("norm2.weight") || name == TensorNames.normWeight
        let data = (0..<n).map { _ in isNormWeight ? Float(1 + 0.1 * (rng.nextUnit() - 0.5)) : Float((rng.nextUnit() - 0.5) * 0.5) }
        tensors[name] = HostTensor(shape: shape, data: data)
    }
    let labels = (0..<classes).map { "label \($0)" }
    return ViTModel(config: c, tensors: tensors, labels: labels)
}

/// The tiny model with blocks 0 and 1 as one FiPS group of rank r: a
/// shared U, per-layer V's (optionally pruned), and the dense weights
/// those factors multiply out to, for comparison.
func makeTinyFactorisedPair(rank r: Int, prune: Bool) -> (dense: ViTModel, factorised: ViTModel) {
    let base = makeTinyModel(classes: 4)
    let d = base.config.dim, m = base.config.mlpDim
    var dense = base, fact = base
    let u = HostTensor(shape: [d, r], data: randomFloats(d * r, seed: 11, scale: 0.5))
    for i in 0..<base.config.depth {
        var v1 = randomFloats(r * m, seed: 20 + UInt64(i), scale: 0.5)
        var v2 = randomFloats(r * m, seed: 40 + UInt64(i), scale: 0.5)
        if prune { for k in 0..<(r * m) where k % 3 != 0 { v1[k] = 0; v2[k] = 0 } }
        // fc1 weight [m, d] = (U·V1)ᵀ; fc2 weight [d, m] = U·V2.
        var w1 = [Float](repeating: 0, count: m * d), w2 = [Float](repeating: 0, count: d * m)
        for a in 0..<d { for j in 0..<m {
            var s1: Float = 0, s2: Float = 0
            for k in 0..<r { s1 += u.data[a * r + k] * v1[k * m + j]; s2 += u.data[a * r + k] * v2[k * m + j] }
            w1[j * d + a] = s1; w2[a * m + j] = s2
        } }
        dense.tensors[TensorNames.block(i, "mlp.fc1.weight")] = HostTensor(shape: [m, d], data: w1)
        dense.tensors[TensorNames.block(i, "mlp.fc2.weight")] = HostTensor(shape: [d, m], data: w2)
        fact.tensors[TensorNames.block(i, "mlp.fc1.weight")] = nil
        fact.tensors[TensorNames.block(i, "mlp.fc2.weight")] = nil
        fact.tensors[TensorNames.block(i, "mlp.fc1.U")] = u
        fact.tensors[TensorNames.block(i, "mlp.fc2.U")] = u
        fact.tensors[TensorNames.block(i, "mlp.fc1.V")] = HostTensor(shape: [r, m], data: v1)
        fact.tensors[TensorNames.block(i, "mlp.fc2.V")] = HostTensor(shape: [r, m], data: v2)
    }
    return (dense, fact)
}

func randomFloats(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) * scale }
}
