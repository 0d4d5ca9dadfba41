import COpenBLAS
import Dispatch
import Foundation
import FipsHostModel

/// The factorised MLPs of one group, in the layout the runtime uses:
/// fc1 `y = (x·U_in)·V1 + b1`, fc2 `y = (h·V2ᵀ)·U_outᵀ + b2`.
/// FiPS: one basis, every block's `inputBasis == outputBasis == 0`.
/// Per-layer SVD: two bases per block (its fc1's and its fc2's own U).
public struct MLPGroup {
    public var d: Int
    public var m: Int
    /// Each [d, r].
    public var bases: [HostTensor]
    public var blocks: [Block]

    public struct Block {
        /// [r, m], r = the rank of the block's bases.
        public var v1: HostTensor
        /// [r, m] (fc2 uses its transpose, so the stored layout matches fc1's).
        public var v2: HostTensor
        /// [m]
        public var b1: HostTensor
        /// [d]
        public var b2: HostTensor
        public var inputBasis: Int
        public var outputBasis: Int
        public init(v1: HostTensor, v2: HostTensor, b1: HostTensor, b2: HostTensor, inputBasis: Int, outputBasis: Int) {
            self.v1 = v1; self.v2 = v2; self.b1 = b1; self.b2 = b2
            self.inputBasis = inputBasis; self.outputBasis = outputBasis
        }
        public var rank: Int { v1.shape[0] }
    }

    public init(d: Int, m: Int, bases: [HostTensor], blocks: [Block]) {
        self.d = d; self.m = m; self.bases = bases; self.blocks = blocks
    }

    /// Nonzero weights (each basis counted once, V's nonzeros), without biases.
    public var storedWeights: Int {
        bases.reduce(0) { $0 + $1.count }
            + blocks.reduce(0) { acc, b in acc + b.v1.data.reduce(0) { $1 != 0 ? $0 + 1 : $0 } + b.v2.data.reduce(0) { $1 != 0 ? $0 + 1 : $0 } }
    }
}

/// Settings of block-wise reconstruction (AdamW, cosine decay, gradual pruning).
public struct ReconstructionOptions {
    public var steps: Int = 600
    public var learningRate: Float = 1e-3
    /// Floor of the cosine decay.
    public var minLearningRate: Float = 0
    /// Decoupled (AdamW) weight decay on U and V; biases are not decayed.
    public var weightDecay: Float = 0.05
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    /// Token rows per minibatch (the same rows for every block of the group).
    public var batchRows: Int = 1024
    public var seed: UInt64 = 0
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Final sparsity of the V's; 0 = dense.
    public var sparsity: Double = 0
    public var pattern: SparsityPattern = .unstructured
    /// The cubic schedule reaches the final sparsity at this fraction of the steps…
    public var pruneEndFraction: Double = 0.5
    /// …through this many mask updates (masks are fixed after the last one).
    public var pruneUpdates: Int = 10
    public init() {}
}

public struct ReconstructionResult {
    /// Per block, over all calibration rows, with the final (pruned) weights.
    public var mseAfter: [Double]
    /// Final masks of V1_b, V2_b interleaved (nil when dense).
    public var masks: [[Bool]]?
    public var achievedSparsity: Double
    /// Minibatch loss at the last step.
    public var finalLoss: Double
}

/// Block-wise reconstruction of a group's MLPs against the original MLP outputs.
///
/// Loss = mean over the group's blocks of MSE(MLP'_b(X_b), Y_b), where X_b is the
/// original model's LN2 output of block b and Y_b its MLP output (teacher forcing).
/// All blocks are trained together because they share U.
///
/// The backward pass is written out on `cblas_sgemm`, for
///   Z = X·U_in, A = Z·V1 + b1, H = GELU(A), Q = H·V2ᵀ, Ŷ = Q·U_outᵀ + b2:
///   dU_out += dŶᵀ·Q, dQ = dŶ·U_out, dV2 = dQᵀ·H, dH = dQ·V2, dA = dH ⊙ GELU'(A),
///   dV1 = Zᵀ·dA, dZ = dA·V1ᵀ, dU_in += Xᵀ·dZ, db1 = Σ dA, db2 = Σ dŶ.
/// Threads split each minibatch's rows; each thread accumulates into its own gradient
/// buffer and the buffers are summed in thread order, so a run is bit-identical for a
/// given seed and thread count. OpenBLAS itself is kept single-threaded.
public enum MLPReconstruction {
    /// Per-block MSE (mean over rows and the d outputs) over all rows. Rows are split in
    /// fixed chunks whose sums are added in order: the result does not depend on `threads`.
    public static func meanSquaredErrors(_ g: MLPGroup, inputs: [HostTensor], outputs: [HostTensor],
                                         threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> [Double] {
        openblas_set_num_threads(1)
        let t = GroupTrainer(g)
        return t.evaluate(inputs: inputs, outputs: outputs, threads: threads)
    }

    /// Full-batch loss (mean over blocks of the per-block MSE) and its gradient with
    /// respect to every parameter, in the group's own layout. For checking the backward.
    public static func lossAndGradient(_ g: MLPGroup, inputs: [HostTensor], outputs: [HostTensor]) -> (loss: Double, gradient: MLPGroup) {
        openblas_set_num_threads(1)
        let t = GroupTrainer(g)
        let n = inputs[0].shape[0]
        let (loss, grad) = t.gradient(inputs: inputs.map { $0.data }, outputs: outputs.map { $0.data }, rows: n, threads: 1)
        var out = g
        t.unpack(grad, into: &out)
        return (loss, out)
    }

    /// Trains `g` in place. Inputs and outputs: one [N, d] per block of the group.
    public static func train(_ g: inout MLPGroup, inputs: [HostTensor], outputs: [HostTensor],
                             options o: ReconstructionOptions, progress: (String) -> Void = { _ in }) throws -> ReconstructionResult {
        openblas_set_num_threads(1)
        try checkData(g, inputs, outputs)
        let t = GroupTrainer(g)
        let result = try t.train(inputs: inputs, outputs: outputs, options: o, progress: progress)
        t.unpack(t.params, into: &g)
        return result
    }

    static func checkData(_ g: MLPGroup, _ x: [HostTensor], _ y: [HostTensor]) throws {
        guard x.count == g.blocks.count, y.count == g.blocks.count else {
            throw CompressionError.calibration("\(x.count) inputs and \(y.count) outputs for \(g.blocks.count) blocks")
        }
        let n = x[0].shape[0]
        for (a, b) in zip(x, y) where a.shape != [n, g.d] || b.shape != [n, g.d] {
            throw CompressionError.calibration("calibration tensors \(a.shape) / \(b.shape), expected [\(n), \(g.d)] for every block")
        }
        guard n > 0 else { throw CompressionError.calibration("no calibration rows") }
    }
}
