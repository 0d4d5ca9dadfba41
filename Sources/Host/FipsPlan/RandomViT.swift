import FipsArtifact
import FipsHostModel

/// Models with random weights, for sizes no real checkpoint is at hand for.
public enum RandomViT {
    /// ViT-B/16: 224², patch 16, width 768, 12 blocks, 12 heads, MLP 3072, backbone only: 85.8M parameters.
    public static var vitB16: ViTConfig {
        var c = ViTConfig()
        c.family = .vit
        c.imageSize = 224; c.patchSize = 16; c.channels = 3
        c.dim = 768; c.depth = 12; c.heads = 12; c.mlpDim = 3072
        c.numClasses = 0
        c.layerNormEps = 1e-6
        c.hasLayerScale = false
        c.resizeShorter = 256; c.cropSize = 224
        return c
    }

    /// A tiny ViT (32², patch 8, width 64, 4 blocks): fips-run's process baseline in Benchmarks/plan_budget.py.
    public static var tiny: ViTConfig {
        var c = ViTConfig()
        c.family = .vit
        c.imageSize = 32; c.cropSize = 32; c.resizeShorter = 36
        c.patchSize = 8; c.dim = 64; c.depth = 4; c.heads = 2; c.mlpDim = 256
        return c
    }

    /// Truncated-normal-like weights (std 0.02), small random biases, norms near 1, every
    /// tensor distinct (the writer stores identical tensors once; random ones never are).
    public static func make(_ c: ViTConfig, seed: UInt64 = 0) -> ViTModel {
        var rng = SplitMix(seed)
        var t = [String: HostTensor]()
        for (name, shape) in ViTModel.expectedShapes(c) {
            let n = shape.reduce(1, *)
            var data = [Float](repeating: 0, count: n)
            let leaf = name.split(separator: ".").last ?? ""
            let isNorm = name.contains("norm") && leaf == "weight"
            let isBias = leaf == "bias"
            let isScale = leaf == "ls1" || leaf == "ls2"
            for i in 0..<n {
                let g = rng.gaussian()
                data[i] = isNorm ? 1 + 0.05 * g : isScale ? 0.1 + 0.01 * g : isBias ? 0.01 * g : 0.02 * max(-2, min(2, g))
            }
            t[name] = HostTensor(shape: shape, data: data)
        }
        return ViTModel(config: c, tensors: t)
    }

    struct SplitMix {
        var s: UInt64
        init(_ seed: UInt64) { s = seed &+ 0x9E37_79B9_7F4A_7C15 }
        mutating func next() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
        mutating func gaussian() -> Float {
            let u1 = max(uniform(), 1e-7), u2 = uniform()
            return (-2 * logf(u1)).squareRoot() * cosf(2 * .pi * u2)
        }
    }
}

import Foundation
