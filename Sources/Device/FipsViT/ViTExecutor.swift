import CFipsKernels
import CFipsSys
import FipsArtifact
import FipsKernels

/// Called once per block during `forward` with the MLP's input (the LN2
/// output) and its output before LayerScale, both [rows, dim]; the host
/// records these as calibration data for block-wise reconstruction.
public typealias MLPObserver = (_ block: Int, _ input: UnsafePointer<Float>, _ output: UnsafePointer<Float>, _ rows: Int) -> Void

/// Called with the float input of every quantisable linear map just before it
/// runs: `layer` is the weight's tensor name without ".weight"
/// ("blocks.3.attn.qkv", "head") or, for a factorised MLP, the factor's name
/// ("blocks.3.mlp.fc1.U" sees x, "...fc1.V" sees x·U, "...fc2.V" sees
/// GELU(fc1), "...fc2.U" sees h·V₂ᵀ); input is [rows, cols]. The host uses it
/// to collect GPTQ Hessians and activation ranges.
public typealias LinearInputObserver = (_ layer: String, _ input: UnsafePointer<Float>, _ rows: Int, _ cols: Int) -> Void

/// Runs a ViT backbone (and its head, if any) on preprocessed images: the
/// block loop. Its pieces live one per file: the weights (ExecutorWeights),
/// the activation arena (ArenaLayout), attention (Attention, IntegerAttention),
/// the MLP (MLP), linear maps and row-wise ops (Linear), the thread split
/// (WorkSplit). All activation memory is one arena sized at init for
/// `maxBatch` images; `forward` allocates nothing.
public final class ViTExecutor<Backend: ComputeBackend> {
    public let config: ViTConfig
    public let maxBatch: Int
    let backend: Backend
    let owner: AnyObjectBox?
    let patchW: LinearWeights
    let clsToken, posEmbed, normW, normB: UnsafePointer<Float>
    let distToken: UnsafePointer<Float>?
    let head: LinearWeights?
    let blocks: [BlockWeights]

    // The arena and its buffers, each from its named slot (ArenaLayout.Slots
    // gives their shapes).
    let arena: UnsafeMutableRawPointer
    public let arenaBytes: Int
    let x, h, qkv, attnOut, mlp, scores, vT, patches, pooled: UnsafeMutablePointer<Float>
    let qAct: UnsafeMutablePointer<Int8>
    let qScales: UnsafeMutablePointer<Float>
    let lowRank: UnsafeMutablePointer<Float>
    // Packed-integer path: activations quantised to [rows, Kp] with their
    // scales and 32-column sums, one kernel scratch per task, and per-head
    // buffers for integer attention.
    public let kernel: Int32
    public let integerAttention: Bool
    /// Some linear map has packed integer weights (runs on `kernel`).
    public let isInteger: Bool
    public let options: ExecutorOptions
    let qGsum: UnsafeMutablePointer<Int32>
    let qScratch: UnsafeMutableRawPointer
    let qScratchBytes: Int
    let attnScratch: UnsafeMutableRawPointer
    let attnScratchBytes: Int
    // Set for the duration of one `forward` call.
    var linearInputObserver: LinearInputObserver?
    var currentBlock = -1
    /// When set (depth + 2 slots), each forward pass writes the nanoseconds of
    /// the patch embedding, of each block, and of the final norm and head:
    /// fips-run --per-block measures where the time goes, to set beside the
    /// latency model's per-block prediction.
    public var blockTimes: UnsafeMutablePointer<Int64>? = nil

    /// `tensors` looks a name up; the executor keeps `owner` alive because the
    /// views point into it (a mapped artifact or host buffers).
    public init(config c: ViTConfig, backend: Backend, maxBatch: Int, owner: AnyObjectBox?,
                options: ExecutorOptions = ExecutorOptions(),
                lookup: (String) -> TensorView?) throws(ArtifactError) {
        self.config = c
        self.backend = backend
        self.maxBatch = max(1, maxBatch)
        self.owner = owner
        let w = try ExecutorWeights(config: c, lookup: lookup)
        patchW = w.patch
        clsToken = w.clsToken; distToken = w.distToken; posEmbed = w.posEmbed; normW = w.normW; normB = w.normB
        head = w.head
        blocks = w.blocks

        // Integer path.
        let linears = w.linears
        let anyPacked = linears.contains { $0.isPacked }
        let k = options.kernel ?? fips_qgemm_env_kernel()
        if k < 0 || fips_qgemm_kernel_supported(k) == 0 {
            throw .cannotRun(reason: k == -1 ? "FIPS_KERNEL names no kernel (known: scalar, avx2, avx512vnni, neon, neon-dotprod)"
                                             : "FIPS_KERNEL names a kernel this CPU cannot run")
        }
        kernel = k
        isInteger = anyPacked
        integerAttention = options.integerAttention ?? anyPacked
        self.options = options
        var scratch = 0
        for l in linears {
            if case .packed(var m, _) = l.storage { scratch = max(scratch, fips_qgemm_scratch_bytes(&m)) }
        }
        let layout = ArenaLayout(config: c, maxBatch: self.maxBatch, maxRank: w.blocks.reduce(0) { max($0, $1.mlp.maxRank) },
                                 kernelScratchBytes: scratch, integerAttention: integerAttention,
                                 tasks: max(1, backend.parallelism))
        qScratchBytes = layout.kernelScratchStride
        attnScratchBytes = layout.attentionScratchStride
        arenaBytes = layout.totalBytes
        guard let mem = fips_alloc(layout.totalBytes) else { throw .io(path: "activation arena", errno: 12) }
        arena = mem
        let s = layout.slots
        func f(_ offset: Int) -> UnsafeMutablePointer<Float> { (mem + offset).assumingMemoryBound(to: Float.self) }
        x = f(s.x); h = f(s.h); qkv = f(s.qkv); attnOut = f(s.attnOut); mlp = f(s.mlp)
        scores = f(s.scores); vT = f(s.vT); patches = f(s.patches); pooled = f(s.pooled)
        qAct = (mem + s.qAct).assumingMemoryBound(to: Int8.self)
        qScales = f(s.qScales)
        lowRank = f(s.lowRank)
        qGsum = (mem + s.qGsum).assumingMemoryBound(to: Int32.self)
        qScratch = mem + s.qScratch
        attnScratch = mem + s.attnScratch
    }

    deinit { fips_free(arena) }

    /// Runs `batch` images, each CHW float [channels, imageSize, imageSize]
    /// laid out back to back in `images`. Writes the final LayerNorm output,
    /// [batch, tokens, dim], to `features`, and [batch, classes] to `logits`
    /// when the model has a head and `logits` is given.
    public func forward(batch: Int, images: UnsafePointer<Float>, features: UnsafeMutablePointer<Float>,
                        logits: UnsafeMutablePointer<Float>? = nil, observer: MLPObserver? = nil,
                        linearObserver: LinearInputObserver? = nil) {
        precondition(batch >= 1 && batch <= maxBatch, "batch \(batch) outside 1...\(maxBatch)")
        linearInputObserver = linearObserver
        currentBlock = -1
        defer { linearInputObserver = nil }
        let d = config.dim, rows = batch * config.tokenCount
        var last = blockTimes == nil ? 0 : fips_now_ns()
        func mark(_ slot: Int) {
            guard let bt = blockTimes else { return }
            let now = fips_now_ns()
            bt[slot] = now - last
            last = now
        }
        embed(batch: batch, images: images)
        mark(0)
        for (index, blk) in blocks.enumerated() {
            // x += ls1 · proj(attention(LN1(x)))
            layerNorm(x, rows: rows, weight: blk.norm1W, bias: blk.norm1B, into: h)
            currentBlock = index
            apply(blk.qkv, input: h, rows: rows, output: qkv, layer: "attn.qkv")
            attention(batch: batch)
            apply(blk.proj, input: attnOut, rows: rows, output: h, layer: "attn.proj")
            residualAdd(x, h, scale: blk.ls1, rows: rows, cols: d)
            // x += ls2 · fc2(GELU(fc1(LN2(x))))
            layerNorm(x, rows: rows, weight: blk.norm2W, bias: blk.norm2B, into: h)
            runMLP(blk.mlp, rows: rows)
            if let observer = observer { observer(index, UnsafePointer(h), UnsafePointer(attnOut), rows) }
            residualAdd(x, attnOut, scale: blk.ls2, rows: rows, cols: d)
            mark(index + 1)
        }
        layerNorm(x, rows: rows, weight: normW, bias: normB, into: features)
        if let head = head, let logits = logits {
            poolForHead(batch: batch, features: features)
            currentBlock = -1
            apply(head, input: pooled, rows: batch, output: logits, layer: "head")
        }
        mark(blocks.count + 1)
    }

    /// pooled = the CLS token (and, for clsAndPatchMean, the mean of the patch
    /// tokens; for clsAndDistillation, the distillation token).
    func poolForHead(batch: Int, features: UnsafeMutablePointer<Float>) {
        let c = config, d = c.dim, T = c.tokenCount
        for b in 0..<batch {
            let f = features + b * T * d
            let p = pooled + b * c.headInputDim
            for k in 0..<d { p[k] = f[k] }
            if c.headPooling == .clsAndDistillation {
                for k in 0..<d { p[d + k] = f[d + k] }
            }
            if c.headPooling == .clsAndPatchMean {
                for k in 0..<d { p[d + k] = 0 }
                for t in 1..<T { for k in 0..<d { p[d + k] += f[t * d + k] } }
                let inv = 1 / Float(T - 1)
                for k in 0..<d { p[d + k] *= inv }
            }
        }
    }


    /// Patch embedding (a strided conv as im2col + GEMM), CLS (and distillation) token, position embedding.
    func embed(batch: Int, images: UnsafePointer<Float>) {
        let c = config, d = c.dim, P = c.patchSize, G = c.gridSize, S = c.imageSize
        let patchLen = c.channels * P * P
        for b in 0..<batch {
            let img = images + b * c.channels * S * S
            for gy in 0..<G {
                for gx in 0..<G {
                    var dst = patches + ((b * G + gy) * G + gx) * patchLen
                    for ch in 0..<c.channels {
                        for ky in 0..<P {
                            let src = img + (ch * S + gy * P + ky) * S + gx * P
                            for kx in 0..<P { dst[kx] = src[kx] }
                            dst += P
                        }
                    }
                }
            }
        }
        let patchOut = h  // [batch * patches, d] scratch
        apply(patchW, input: patches, rows: batch * c.patchCount, output: patchOut)
        let T = c.tokenCount, first = c.prefixTokenCount
        for b in 0..<batch {
            let xb = x + b * T * d
            for k in 0..<d { xb[k] = clsToken[k] + posEmbed[k] }
            if let dist = distToken {
                for k in 0..<d { xb[d + k] = dist[k] + posEmbed[d + k] }
            }
            for p in 0..<c.patchCount {
                let src = patchOut + (b * c.patchCount + p) * d
                let dst = xb + (p + first) * d
                let pos = posEmbed + (p + first) * d
                for k in 0..<d { dst[k] = src[k] + pos[k] }
            }
        }
    }
}

/// Keeps the owner of the weight memory alive (an `Artifact`, or host buffers).
public final class AnyObjectBox {
    public let artifact: Artifact?
    public let release: (() -> Void)?
    public init(artifact: Artifact) { self.artifact = artifact; self.release = nil }
    public init(release: @escaping () -> Void) { self.artifact = nil; self.release = release }
    deinit { release?() }
}

extension ViTExecutor {
    /// An executor over a mapped artifact.
    public convenience init(artifact: Artifact, backend: Backend, maxBatch: Int = 1,
                            options: ExecutorOptions = ExecutorOptions()) throws(ArtifactError) {
        try self.init(config: artifact.config, backend: backend, maxBatch: maxBatch,
                      owner: AnyObjectBox(artifact: artifact), options: options, lookup: { artifact.tensor($0) })
    }
}
