import FipsArtifact

/// What decides a model's running time on the integer runtime, and nothing
/// else: the shape of the ViT and, per block, how each linear map is stored.
/// fips-plan builds one of these per candidate; the latency model prices it.
public struct ModelExecution: Equatable {
    public var config: ViTConfig
    public var blocks: [BlockExecution]
    /// I-ViT integer softmax/GELU/LayerNorm instead of float ones.
    public var integerNonlinear: Bool

    public init(config: ViTConfig, blocks: [BlockExecution], integerNonlinear: Bool = false) {
        self.config = config; self.blocks = blocks; self.integerNonlinear = integerNonlinear
    }
}

public struct BlockExecution: Equatable {
    public enum MLP: Equatable {
        /// fc1 [mlpDim, dim] and fc2 [dim, mlpDim] stored in one format.
        case dense(TensorDType)
        /// FiPS: fc1 as x·Uᵀ (the group's shared rank-r basis) then ·Vᵀ
        /// ([mlpDim, r], this layer's projection); fc2 the same two thin
        /// GEMMs in reverse. `projectionSparsity` is the pruned fraction of V.
        case fips(rank: Int, basis: TensorDType, projections: TensorDType, projectionSparsity: Double)
    }
    /// qkv [3·dim, dim] and proj [dim, dim].
    public var attention: TensorDType
    public var mlp: MLP

    public init(attention: TensorDType, mlp: MLP) { self.attention = attention; self.mlp = mlp }
}

/// Predicted milliseconds for one image (batch 1). The total is additive —
/// `fixedMs` (patch embedding, final norm, head, image preprocessing) plus
/// one figure per block — so a planner can price each block group's choice
/// on its own and add them up.
public struct LatencyPrediction: Equatable {
    public var fixedMs: Double
    public var blockMs: [Double]
    /// "profile NAME" or "roofline BOARD": where the figures came from.
    public var source: String
    public var totalMs: Double { fixedMs + blockMs.reduce(0, +) }

    public init(fixedMs: Double, blockMs: [Double], source: String) {
        self.fixedMs = fixedMs; self.blockMs = blockMs; self.source = source
    }
}
