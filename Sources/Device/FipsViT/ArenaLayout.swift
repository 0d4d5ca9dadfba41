import CFipsKernels
import FipsArtifact
import FipsKernels

/// The activation arena of a `ViTExecutor`: every buffer by name (llm.c's
/// ActivationTensors), from what decides the sizes and nothing else.
/// `ViTExecutor.init` allocates exactly `totalBytes` and takes each buffer
/// from its named slot; the planner's memory model (FipsPlan) sizes a model's
/// memory with this same type, so the two cannot disagree.
///
/// Buffers that live in one phase of the forward pass only share memory with
/// those of the other phases (TFLite's arena planner does the same by
/// liveness): the im2col patches exist during the embedding, qkv / scores /
/// Vᵀ / the integer-attention scratch during attention, the MLP's hidden and
/// low-rank activations during the MLP. For ViT-S at one image this is 2.3 MB
/// of 9.2 MB; `Slots.phases` says which slots are live together, and
/// IntegerRuntimeTests checks that no two of them overlap.
public struct ArenaLayout {
    /// Byte offsets into the arena, each 64-byte aligned. Shapes use
    /// rows = maxBatch · tokens, d = dim, m = mlpDim, T = tokens,
    /// Kw = the widest linear input rounded up to 32.
    public struct Slots {
        // Live for the whole forward pass.
        public var x = 0            // f32 [rows, d]          the residual stream
        public var h = 0            // f32 [rows, d]          LayerNorm output; attn.proj and patch-embedding output
        public var attnOut = 0      // f32 [rows, d]          attention output, then the MLP output
        public var pooled = 0       // f32 [maxBatch, headInputDim] the head's input
        public var qAct = 0         // i8  [rows, Kw]         activations quantised for the integer GEMM
        public var qScales = 0      // f32 [rows]             their scales
        public var qGsum = 0        // i32 [rows, Kw / 32]    their 32-column sums
        public var qScratch = 0     // [tasks][kernelScratchStride]   integer GEMM scratch, one per task
        // The embedding only (shares the phase region).
        public var patches = 0      // f32 [maxBatch, patchCount, channels·patch²] im2col
        // Attention only (shares the phase region).
        public var qkv = 0          // f32 [rows, 3d]
        public var scores = 0       // f32 [heads, T, T]      one score matrix per head
        public var vT = 0           // f32 [heads, headDim, T] Vᵀ per head
        public var attnScratch = 0  // [heads][attentionScratchStride] integer attention only (else 0 bytes)
        // The MLP only (shares the phase region).
        public var mlp = 0          // f32 [rows, m]          fc1 output / GELU in place
        public var lowRank = 0      // f32 [rows, maxRank]    x·U or h·Vᵀ of a factorised MLP
    }
    /// One named buffer: where it starts and how many bytes it may use.
    public struct Slot { public let name: String; public let offset: Int; public let bytes: Int }
    public let slots: Slots
    /// The slots live together in each phase (embedding, attention, MLP),
    /// the whole-pass ones included in every phase.
    public let phases: [[Slot]]
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
        var whole: [Slot] = []
        func reserve(_ name: String, _ bytes: Int, _ into: inout [Slot]) -> Int {
            let o = total
            into.append(Slot(name: name, offset: o, bytes: bytes))
            total += (bytes + 63) & ~63
            return o
        }
        s.x = reserve("x", 4 * rows * d, &whole)
        s.h = reserve("h", 4 * rows * d, &whole)
        s.attnOut = reserve("attnOut", 4 * rows * d, &whole)
        s.pooled = reserve("pooled", 4 * B * c.headInputDim, &whole)
        s.qAct = reserve("qAct", rows * widestK, &whole)
        s.qScales = reserve("qScales", 4 * rows, &whole)
        s.qGsum = reserve("qGsum", 4 * rows * widestK / PackedShape.blockCols, &whole)
        s.qScratch = reserve("qScratch", kernelScratchStride * max(1, tasks), &whole)
        // Each phase starts at the same offset; the arena ends where the longest one does.
        let region = total
        var end = region
        var embedding: [Slot] = [], attention: [Slot] = [], mlpPhase: [Slot] = []
        total = region
        s.patches = reserve("patches", 4 * B * c.patchCount * c.channels * c.patchSize * c.patchSize, &embedding)
        end = max(end, total); total = region
        s.qkv = reserve("qkv", 4 * rows * 3 * d, &attention)
        s.scores = reserve("scores", 4 * c.heads * T * T, &attention)
        s.vT = reserve("vT", 4 * c.heads * c.headDim * T, &attention)
        s.attnScratch = reserve("attnScratch", integerAttention ? attentionScratchStride * c.heads : 0, &attention)
        end = max(end, total); total = region
        s.mlp = reserve("mlp", 4 * rows * c.mlpDim, &mlpPhase)
        s.lowRank = reserve("lowRank", 4 * rows * maxRank, &mlpPhase)
        end = max(end, total)
        slots = s
        phases = [whole + embedding, whole + attention, whole + mlpPhase]
        totalBytes = end
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
