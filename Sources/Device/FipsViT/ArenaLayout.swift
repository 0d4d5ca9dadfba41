import CFipsKernels
import FipsArtifact
import FipsKernels

/// The activation arena of a `ViTExecutor`: every buffer by name (llm.c's
/// ActivationTensors), from what decides the sizes and nothing else.
/// `ViTExecutor.init` allocates exactly `totalBytes` and takes each buffer
/// from its named slot; the planner's memory model (FipsPlan) sizes a model's
/// memory with this same type, so the two cannot disagree.
public struct ArenaLayout {
    /// Byte offsets into the arena, each 64-byte aligned. Shapes use
    /// rows = maxBatch · tokens, d = dim, m = mlpDim, T = tokens,
    /// Kw = the widest linear input rounded up to 32.
    public struct Slots {
        public var x = 0            // f32 [rows, d]          the residual stream
        public var h = 0            // f32 [rows, d]          LayerNorm output; attn.proj and patch-embedding output
        public var qkv = 0          // f32 [rows, 3d]
        public var attnOut = 0      // f32 [rows, d]          attention output, then the MLP output
        public var mlp = 0          // f32 [rows, m]          fc1 output / GELU in place
        public var scores = 0       // f32 [heads, T, T]      one score matrix per head
        public var vT = 0           // f32 [heads, headDim, T] Vᵀ per head
        public var patches = 0      // f32 [maxBatch, patchCount, channels·patch²] im2col
        public var pooled = 0       // f32 [maxBatch, headInputDim] the head's input
        public var qAct = 0         // i8  [rows, Kw]         activations quantised for the integer GEMM
        public var qScales = 0      // f32 [rows]             their scales
        public var lowRank = 0      // f32 [rows, maxRank]    x·U or h·Vᵀ of a factorised MLP
        public var qGsum = 0        // i32 [rows, Kw / 32]    their 32-column sums
        public var qScratch = 0     // [tasks][kernelScratchStride]   integer GEMM scratch, one per task
        public var attnScratch = 0  // [heads][attentionScratchStride] integer attention only (else 0 bytes)
    }
    public let slots: Slots
    public let totalBytes: Int
    /// Bytes of one task's integer GEMM scratch (64-byte multiple).
    public let kernelScratchStride: Int
    /// Bytes of one head's integer-attention buffers (`AttentionLayout`).
    public let attentionScratchStride: Int

    /// - maxRank: the widest factorised-MLP rank (0 when every MLP is dense).
    /// - kernelScratchBytes: the largest `fips_qgemm_scratch_bytes` over the
    ///   packed linear maps (0 when none is packed); see `kernelScratchBytes(cols:)`.
    /// - tasks: the backend's parallelism (the runtime's thread count).
    public init(config c: ViTConfig, maxBatch: Int, maxRank: Int, kernelScratchBytes scratch: Int,
                integerAttention: Bool, tasks: Int) {
        let d = c.dim
        let B = max(1, maxBatch), T = c.tokenCount
        let rows = B * T
        let widest = max(c.mlpDim, 3 * d, c.channels * c.patchSize * c.patchSize)
        let widestK = PackedShape.paddedCols(max(widest, maxRank, c.headInputDim))
        kernelScratchStride = (scratch + 63) & ~63
        attentionScratchStride = AttentionLayout(T: T, headDim: c.headDim).total
        var s = Slots()
        var total = 0
        func reserve(_ bytes: Int) -> Int { let o = total; total += (bytes + 63) & ~63; return o }
        s.x = reserve(4 * rows * d)
        s.h = reserve(4 * rows * d)
        s.qkv = reserve(4 * rows * 3 * d)
        s.attnOut = reserve(4 * rows * d)
        s.mlp = reserve(4 * rows * c.mlpDim)
        s.scores = reserve(4 * c.heads * T * T)
        s.vT = reserve(4 * c.heads * c.headDim * T)
        s.patches = reserve(4 * B * c.patchCount * c.channels * c.patchSize * c.patchSize)
        s.pooled = reserve(4 * B * c.headInputDim)
        s.qAct = reserve(rows * widestK)
        s.qScales = reserve(4 * rows)
        s.lowRank = reserve(4 * rows * maxRank)
        s.qGsum = reserve(4 * rows * widestK / PackedShape.blockCols)
        s.qScratch = reserve(kernelScratchStride * max(1, tasks))
        s.attnScratch = reserve(integerAttention ? attentionScratchStride * c.heads : 0)
        slots = s
        totalBytes = total
    }

    /// What the integer GEMM needs as scratch for a packed weight with `cols` inputs (any format, any kernel).
    public static func kernelScratchBytes(cols: Int) -> Int {
        kernelScratchBytes(rows: PackedShape.panelRows, cols: cols)
    }

    static func kernelScratchBytes(rows: Int, cols: Int) -> Int {
        var probe = fips_qmatrix(format: QuantFormat.q8.rawValue, rows: Int32(rows), cols: Int32(cols), data: nil, scales: nil,
                                 offsets: nil, masks: nil)
        return fips_qgemm_scratch_bytes(&probe)
    }
}

/// Byte offsets of one head's integer-attention buffers.
struct AttentionLayout {
    let hdP, tP: Int
    var qA = 0, qScale = 0, qSum = 0, pA = 0, pScale = 0, pSum = 0
    var rows = 0, rowScale = 0, rowSum = 0, packed = 0, packedScale = 0, kernelScratch = 0, total = 0

    init(T: Int, headDim hd: Int) {
        hdP = PackedShape.paddedCols(hd)
        tP = PackedShape.paddedCols(T)
        var at = 0
        func take(_ bytes: Int) -> Int { let o = at; at += (bytes + 63) & ~63; return o }
        let big = max(T, hd)                  // rows quantised as a weight: K (T rows) or Vᵀ (hd rows)
        let widest = max(hdP, tP)
        let blk = PackedShape.blockCols
        qA = take(T * hdP); qScale = take(4 * T); qSum = take(4 * T * hdP / blk)
        pA = take(T * tP); pScale = take(4 * T); pSum = take(4 * T * tP / blk)
        rows = take(big * widest); rowScale = take(4 * big); rowSum = take(4 * big * widest / blk)
        let bigP = PackedShape.paddedRows(big)
        packed = take(bigP * widest); packedScale = take(4 * bigP)
        // What fips_qgemm may use for a q8 weight of this width (any kernel).
        kernelScratch = take(ArenaLayout.kernelScratchBytes(rows: bigP, cols: widest))
        total = at
    }
}
