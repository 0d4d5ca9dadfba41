import Foundation

public struct CompressionReport: CustomStringConvertible {
    public struct Group {
        public var blocks: [Int]
        public var rank: Int
        public var sparsity: Double
        /// MLP weights of the group before (dense) and after (bases once, V nonzeros).
        public var weightsBefore: Int
        public var weightsAfter: Int
        public var svdSeconds: Double
        public var reconstructionSeconds: Double
    }
    public struct Block {
        public var index: Int
        /// MSE right after the SVD initialisation (dense V), over all calibration rows.
        public var mseBefore: Double
        /// MSE after reconstruction (pruned V).
        public var mseAfter: Double
        /// Mean square of the original MLP output, to read the MSEs relative to.
        public var outputPower: Double
    }
    public var method: CompressionMethod
    public var activationAware: Bool
    public var groups: [Group] = []
    public var blocks: [Block] = []
    /// MLP weights (without biases) of the compressed blocks, before and after.
    public var mlpWeightsBefore: Int = 0
    public var mlpWeightsAfter: Int = 0
    /// MLP biases of the compressed blocks (kept as they are by every method).
    public var mlpBiases: Int = 0
    /// Covariances and Cholesky factors (activation-aware only).
    public var statisticsSeconds: Double = 0
    public var svdSeconds: Double = 0
    public var reconstructionSeconds: Double = 0

    public var description: String {
        var s = "\(method.rawValue)\(activationAware ? " (activation-aware)" : "") — MLP weights \(mlpWeightsBefore) → \(mlpWeightsAfter)"
        s += String(format: " (%.1f%%)\n", 100 * Double(mlpWeightsAfter) / Double(max(1, mlpWeightsBefore)))
        for g in groups {
            s += String(format: "  group %@: rank %d, sparsity %.3f, weights %d → %d, svd %.1fs, reconstruction %.1fs\n",
                        g.blocks.map(String.init).joined(separator: ","), g.rank, g.sparsity, g.weightsBefore, g.weightsAfter,
                        g.svdSeconds, g.reconstructionSeconds)
        }
        for b in blocks {
            s += String(format: "  block %2d: MSE %.4g → %.4g  (relative %.4f → %.4f)\n", b.index, b.mseBefore, b.mseAfter,
                        b.mseBefore / max(b.outputPower, 1e-30), b.mseAfter / max(b.outputPower, 1e-30))
        }
        s += String(format: "  time: statistics %.1fs, svd %.1fs, reconstruction %.1fs", statisticsSeconds, svdSeconds,
                    reconstructionSeconds)
        return s
    }
}
