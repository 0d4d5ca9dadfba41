import Foundation

public enum CompressionMethod: String, CaseIterable {
    /// Shared basis per group of blocks, sparse per-layer projections.
    case fips
    /// Per-layer truncated SVD at the same parameter count (the baseline).
    case svd
}

/// Which entries of V may be pruned together.
public enum SparsityPattern: Equatable {
    case unstructured
    /// N of every M consecutive entries along the product's reduction axis are kept
    /// (fc1: along r in a column of V1; fc2: along m in a row of V2). Sparsity is 1 − N/M.
    case nm(n: Int, m: Int)
    /// rows×cols tiles of V [r, m], ranked by their L2 norm.
    case block(rows: Int, cols: Int)

    var isStructured: Bool { if case .unstructured = self { return false }; return true }
}

public enum CompressionError: Error, CustomStringConvertible, Equatable {
    case widthMismatch(group: [Int], detail: String)
    case budgetTooSmall(budget: Double, minimum: Double, detail: String)
    case invalidGroups(String)
    case invalidOption(String)
    case calibration(String)
    case numerical(String)

    public var description: String {
        switch self {
        case let .widthMismatch(g, detail):
            return "blocks \(g) cannot share a basis: \(detail)"
        case let .budgetTooSmall(p, minP, detail):
            return String(format: "MLP budget %.4g is below the minimum %.4g for this model (%@)", p, minP, detail)
        case let .invalidGroups(s): return "invalid block groups: \(s)"
        case let .invalidOption(s): return "invalid compression option: \(s)"
        case let .calibration(s): return "calibration data: \(s)"
        case let .numerical(s): return s
        }
    }
}

public struct CompressionOptions {
    public var method: CompressionMethod = .fips
    /// Fraction of the MLP weight parameters kept, in (0, 1].
    public var mlpBudget: Double = 0.5
    /// Explicit partition (each group: block indices sharing one basis); nil = consecutive
    /// groups of `groupSize` (the last one shorter when the depth does not divide).
    /// Blocks in no group stay dense.
    public var groups: [[Int]]? = nil
    public var groupSize: Int = 4
    /// Per-group rank, overriding the budget (for `.svd`: the per-layer rank).
    public var ranks: [Int]? = nil
    /// Final sparsity of the V's. With `.nm(n, m)` it must be 0 (dense) or 1 − n/m.
    public var sparsity: Double = 0
    /// Per-group final sparsity of the V's (a plan's choice), overriding
    /// `sparsity`; unstructured pattern only. Pruning stays global within a
    /// group (across its V's), as FiPS does.
    public var groupSparsity: [Double]? = nil
    public var pattern: SparsityPattern = .unstructured
    /// Whiten by calibration covariances before the SVD (Basis Sharing / SVD-LLM). On by default:
    /// Benchmarks/compression_table.py measured it best for FiPS and SVD alike.
    public var activationAware: Bool = true
    /// With `activationAware` and FiPS: refine the shared basis by alternating least squares
    /// on the activation-weighted errors of all its layers (see `FipsFactorization`).
    public var alternatingRefinement: Bool = true
    /// Unit-norm basis columns (V rows rescaled to match) before pruning and training; see
    /// `normaliseBases`. Measured on DINOv2-S it helps activation-aware FiPS and costs the
    /// activation-aware SVD baseline a little, so it is an option.
    public var normaliseBases: Bool = true
    public var steps: Int = 600
    public var learningRate: Float = 3e-4
    public var minLearningRate: Float = 0
    public var weightDecay: Float = 0.05
    public var batchRows: Int = 1024
    public var seed: UInt64 = 0
    /// Ranks are rounded down to a multiple of this; 0 = automatic (1 for dense or
    /// unstructured, 64 for N:M and block patterns).
    public var rankMultiple: Int = 0
    public var pruneEndFraction: Double = 0.5
    public var pruneUpdates: Int = 10
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    public init() {}

    var effectiveRankMultiple: Int {
        if rankMultiple > 0 { return rankMultiple }
        return sparsity > 0 && pattern.isStructured ? 64 : 1
    }
}
