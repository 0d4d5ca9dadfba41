import CFipsKernels
import CFipsSys
import FipsArtifact
import FipsKernels

/// Per-block weights, resolved once at load time.
struct BlockWeights {
    var norm1W, norm1B, norm2W, norm2B: UnsafePointer<Float>
    var qkv, proj: LinearWeights
    var mlp: MLPWeights
    var ls1, ls2: UnsafePointer<Float>?
}

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

/// How an executor runs what the artifact leaves open.
public struct ExecutorOptions {
    /// The integer GEMM kernel (a FIPS_QKERNEL_* id); nil: FIPS_KERNEL from
    /// the environment, else the fastest this CPU has.
    public var kernel: Int32?
    /// Q·Kᵀ and P·V in int8 (per-token scales, computed on the fly); nil: on
    /// when the model has packed integer weights.
    public var integerAttention: Bool?
    /// I-ViT integer versions of the non-linearities (FipsKernels'
    /// Shiftmax, ShiftGELU, IntegerLayerNorm) instead of the float ones.
    public var softmax: NonlinearityMode
    public var gelu: NonlinearityMode
    public var layerNorm: NonlinearityMode
    public init(kernel: Int32? = nil, integerAttention: Bool? = nil, softmax: NonlinearityMode = .float,
                gelu: NonlinearityMode = .float, layerNorm: NonlinearityMode = .float) {
        self.kernel = kernel
        self.integerAttention = integerAttention
        self.softmax = softmax
        self.gelu = gelu
        self.layerNorm = layerNorm
    }

    /// Any of the three non-linearities in its integer form.
    public var usesIntegerNonlinearities: Bool { softmax == .integer || gelu == .integer || layerNorm == .integer }

    /// Switches the non-linearities named in a comma-separated list
    /// (softmax, gelu, layernorm, all) to their integer forms, as the
    /// `--integer-nonlinear` flags spell them; returns the first name it does
    /// not know, nil when all are known.
    public mutating func selectIntegerNonlinearities(_ list: String) -> String? {
        for part in list.split(separator: ",") {
            switch part {
            case "all": softmax = .integer; gelu = .integer; layerNorm = .integer
            case "softmax": softmax = .integer
            case "gelu": gelu = .integer
            case "layernorm": layerNorm = .integer
            default: return String(part)
            }
        }
        return nil
    }
}

/// Runs a ViT backbone (and its head, if any) on preprocessed images.
/// All activation memory is one arena sized at init for `maxBatch` images;
/// `forward` allocates nothing.
public final class ViTExecutor<Backend: ComputeBackend> {
    public let config: ViTConfig
    public let maxBatch: Int
    let backend: Backend
    let owner: AnyObjectBox?
    let patchW: LinearWeights
    let clsToken, posEmbed, normW, normB: UnsafePointer<Float>
    let head: LinearWeights?
    let blocks: [BlockWeights]

    // Arena (floats unless noted).
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

    /// `tensors` looks a name up; the executor keeps `owner` alive because the
    /// views point into it (a mapped artifact or host buffers).
    public init(config c: ViTConfig, backend: Backend, maxBatch: Int, owner: AnyObjectBox?,
                options: ExecutorOptions = ExecutorOptions(),
                lookup: (String) -> TensorView?) throws(ArtifactError) {
        self.config = c
        self.backend = backend
        self.maxBatch = max(1, maxBatch)
        self.owner = owner
        let path = "model"
        func need(_ n: String, _ shape: [Int]) throws(ArtifactError) -> TensorView {
            guard let t = lookup(n) else { throw .missingTensor(path: path, name: n) }
            if t.elementCount != shape.reduce(1, *) || t.shape[0] != shape[0] {
                throw .wrongShape(path: path, name: n, reason: "has \(shapeText(t.shape)), expected \(shapeText(shape))")
            }
            return t
        }
        func f32(_ n: String, _ shape: [Int]) throws(ArtifactError) -> UnsafePointer<Float> {
            let t = try need(n, shape)
            if t.dtype != .f32 { throw .wrongShape(path: path, name: n, reason: "must be f32, is \(t.dtype.name)") }
            return t.floats
        }
        func linear(_ n: String, _ out: Int, _ inp: Int) throws(ArtifactError) -> LinearWeights {
            let w = try need(n + ".weight", [out, inp])
            let b = try need(n + ".bias", [out])
            guard let l = LinearWeights(w, bias: b, actScale: lookup(n + ".act_scale")) else {
                throw .wrongShape(path: path, name: n + ".weight", reason: "\(w.dtype.name) is not a linear-layer encoding")
            }
            return l
        }
        let d = c.dim
        let pw = try need(TensorNames.patchWeight, [d, c.channels * c.patchSize * c.patchSize])
        guard pw.dtype == .f32, let patch = LinearWeights(pw, bias: try need(TensorNames.patchBias, [d])) else {
            throw .wrongShape(path: path, name: TensorNames.patchWeight, reason: "must be f32")
        }
        patchW = patch
        clsToken = try f32(TensorNames.clsToken, [d])
        posEmbed = try f32(TensorNames.posEmbed, [c.tokenCount, d])
        normW = try f32(TensorNames.normWeight, [d])
        normB = try f32(TensorNames.normBias, [d])
        head = c.hasHead ? try linear("head", c.numClasses, c.headInputDim) : nil
        var bs = [BlockWeights]()
        for i in 0..<c.depth {
            func n(_ leaf: String) -> String { TensorNames.block(i, leaf) }
            func factor(_ name: String, _ shape0: Int?, _ shape1: Int?) throws(ArtifactError) -> FactorWeights {
                guard let t = lookup(name) else { throw .missingTensor(path: path, name: name) }
                guard let f = FactorWeights(t), shape0 == nil || f.rows == shape0!, shape1 == nil || f.cols == shape1! else {
                    throw .wrongShape(path: path, name: name, reason: "has \(shapeText(t.shape)) \(t.dtype.name)")
                }
                return f
            }
            // A factor of a quantised FiPS MLP, stored [out, in] with its
            // calibrated input scale under "<name>.act_scale".
            func packedFactor(_ name: String, _ out: Int?, _ inp: Int?, bias: String?) throws(ArtifactError) -> LinearWeights {
                guard let t = lookup(name) else { throw .missingTensor(path: path, name: name) }
                guard t.shape.count == 2, out == nil || t.shape[0] == out!, inp == nil || t.shape[1] == inp!,
                      let l = LinearWeights(t, bias: bias == nil ? nil : try need(bias!, [t.shape[0]]),
                                            actScale: lookup(name + ".act_scale")) else {
                    throw .wrongShape(path: path, name: name, reason: "has \(shapeText(t.shape)) \(t.dtype.name)")
                }
                return l
            }
            let mlp: MLPWeights
            if lookup(n("mlp.fc1.Ut")) != nil {
                let ut = try packedFactor(n("mlp.fc1.Ut"), nil, d, bias: nil)
                let vt = try packedFactor(n("mlp.fc1.Vt"), c.mlpDim, ut.outFeatures, bias: n("mlp.fc1.bias"))
                let v2 = try packedFactor(n("mlp.fc2.V"), nil, c.mlpDim, bias: nil)
                let u2 = try packedFactor(n("mlp.fc2.U"), d, v2.outFeatures, bias: n("mlp.fc2.bias"))
                mlp = .lowRank(fc1Ut: ut, fc1Vt: vt, fc2V: v2, fc2U: u2)
            } else if lookup(n("mlp.fc1.U")) != nil {
                let u1 = try factor(n("mlp.fc1.U"), d, nil)
                let v1 = try factor(n("mlp.fc1.V"), u1.cols, c.mlpDim)
                let u2 = try factor(n("mlp.fc2.U"), d, nil)
                let v2 = try factor(n("mlp.fc2.V"), u2.cols, c.mlpDim)
                mlp = .factorised(fc1U: u1, fc1V: v1, fc1Bias: try f32(n("mlp.fc1.bias"), [c.mlpDim]),
                                  fc2U: u2, fc2V: v2, fc2Bias: try f32(n("mlp.fc2.bias"), [d]))
            } else {
                mlp = .dense(fc1: try linear(n("mlp.fc1"), c.mlpDim, d), fc2: try linear(n("mlp.fc2"), d, c.mlpDim))
            }
            bs.append(BlockWeights(
                norm1W: try f32(n("norm1.weight"), [d]), norm1B: try f32(n("norm1.bias"), [d]),
                norm2W: try f32(n("norm2.weight"), [d]), norm2B: try f32(n("norm2.bias"), [d]),
                qkv: try linear(n("attn.qkv"), 3 * d, d), proj: try linear(n("attn.proj"), d, d),
                mlp: mlp,
                ls1: c.hasLayerScale ? try f32(n("ls1"), [d]) : nil,
                ls2: c.hasLayerScale ? try f32(n("ls2"), [d]) : nil))
        }
        blocks = bs

        // Integer path.
        var linears = [patch]
        if let hd = head { linears.append(hd) }
        for b in bs { linears += [b.qkv, b.proj] + b.mlp.linears }
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
        let tasks = max(1, backend.parallelism)
        var scratch = 0
        for l in linears {
            if case .packed(var m, _) = l.storage { scratch = max(scratch, fips_qgemm_scratch_bytes(&m)) }
        }
        qScratchBytes = (scratch + 63) & ~63
        attnScratchBytes = ViTExecutor.attentionScratchBytes(T: c.tokenCount, headDim: c.headDim)
        let layout = ArenaLayout(config: c, maxBatch: self.maxBatch, maxRank: bs.reduce(0) { max($0, $1.mlp.maxRank) },
                                 kernelScratchBytes: scratch, integerAttention: integerAttention, tasks: tasks)
        let offsets = layout.offsets
        let total = layout.totalBytes
        arenaBytes = total
        guard let mem = fips_alloc(total) else { throw .io(path: "activation arena", errno: 12) }
        arena = mem
        func f(_ i: Int) -> UnsafeMutablePointer<Float> { (mem + offsets[i]).assumingMemoryBound(to: Float.self) }
        x = f(0); h = f(1); qkv = f(2); attnOut = f(3); mlp = f(4); scores = f(5); vT = f(6)
        patches = f(7); pooled = f(8)
        qAct = (mem + offsets[9]).assumingMemoryBound(to: Int8.self)
        qScales = f(10)
        lowRank = f(11)
        qGsum = (mem + offsets[12]).assumingMemoryBound(to: Int32.self)
        qScratch = mem + offsets[13]
        attnScratch = mem + offsets[14]
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
        let c = config, d = c.dim, T = c.tokenCount, rows = batch * T
        embed(batch: batch, images: images)
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
        }
        layerNorm(x, rows: rows, weight: normW, bias: normB, into: features)
        if let head = head, let logits = logits {
            for b in 0..<batch {
                let f = features + b * T * d
                let p = pooled + b * c.headInputDim
                for k in 0..<d { p[k] = f[k] }
                if c.headPooling == .clsAndPatchMean {
                    for k in 0..<d { p[d + k] = 0 }
                    for t in 1..<T { for k in 0..<d { p[d + k] += f[t * d + k] } }
                    let inv = 1 / Float(T - 1)
                    for k in 0..<d { p[d + k] *= inv }
                }
            }
            currentBlock = -1
            apply(head, input: pooled, rows: batch, output: logits, layer: "head")
        }
    }

    /// Patch embedding (a strided conv as im2col + GEMM), CLS token, position embedding.
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
        let T = c.tokenCount
        for b in 0..<batch {
            let xb = x + b * T * d
            for k in 0..<d { xb[k] = clsToken[k] + posEmbed[k] }
            for p in 0..<c.patchCount {
                let src = patchOut + (b * c.patchCount + p) * d
                let dst = xb + (p + 1) * d
                let pos = posEmbed + (p + 1) * d
                for k in 0..<d { dst[k] = src[k] + pos[k] }
            }
        }
    }

    func attention(batch: Int) {
        let c = config, d = c.dim, T = c.tokenCount, hd = c.headDim
        let scale = 1 / Float(hd).squareRoot()
        if integerAttention { integerAttention(batch: batch, scale: scale); return }
        for b in 0..<batch {
            let base = qkv + b * T * 3 * d
            backend.parallelFor(c.heads) { head in
                let scores = self.scores + head * T * T
                let vT = self.vT + head * hd * T
                let q = MatrixRef(UnsafePointer(base + head * hd), rows: T, cols: hd, stride: 3 * d)
                let k = MatrixRef(UnsafePointer(base + d + head * hd), rows: T, cols: hd, stride: 3 * d)
                let s = MutableMatrixRef(scores, rows: T, cols: T)
                backend.multiplyTransposed(q, k, bias: nil, into: s, parallel: false)
                self.softmaxRows(s, scale: scale)
                let v = base + 2 * d + head * hd
                for t in 0..<T {
                    let vr = v + t * 3 * d
                    for j in 0..<hd { vT[j * T + t] = vr[j] }
                }
                backend.multiplyTransposed(MatrixRef(UnsafePointer(scores), rows: T, cols: T),
                                           MatrixRef(UnsafePointer(vT), rows: hd, cols: T), bias: nil,
                                           into: MutableMatrixRef(attnOut + b * T * d + head * hd, rows: T, cols: hd, stride: d),
                                           parallel: false)
            }
        }
    }

    /// Bytes of one head's buffers for integer attention (see `integerAttention`).
    static func attentionScratchBytes(T: Int, headDim hd: Int) -> Int {
        let l = AttentionLayout(T: T, headDim: hd)
        return l.total
    }

    /// Attention with both products in int8: Q and P quantised per token, K
    /// and V per key token / per channel (dynamic scales, so nothing to
    /// calibrate), K and Vᵀ packed into q8 tiles on the fly. Softmax stays float.
    func integerAttention(batch: Int, scale: Float) {
        let c = config, d = c.dim, T = c.tokenCount, hd = c.headDim
        let L = AttentionLayout(T: T, headDim: hd)
        let kernel = self.kernel
        for b in 0..<batch {
            let base = qkv + b * T * 3 * d
            backend.parallelFor(c.heads) { head in
                let mem = self.attnScratch + head * self.attnScratchBytes
                func i8(_ o: Int) -> UnsafeMutablePointer<Int8> { (mem + o).assumingMemoryBound(to: Int8.self) }
                func f32(_ o: Int) -> UnsafeMutablePointer<Float> { (mem + o).assumingMemoryBound(to: Float.self) }
                func i32(_ o: Int) -> UnsafeMutablePointer<Int32> { (mem + o).assumingMemoryBound(to: Int32.self) }
                let q = base + head * hd, k = base + d + head * hd, v = base + 2 * d + head * hd
                // scores = Q·Kᵀ
                _ = fips_quantize_rows(kernel, q, 3 * d, Int32(T), Int32(hd), nil, i8(L.qA), f32(L.qScale), i32(L.qSum))
                _ = fips_quantize_rows(kernel, k, 3 * d, Int32(T), Int32(hd), nil, i8(L.rows), f32(L.rowScale), i32(L.rowSum))
                ViTExecutor.packQ8Tiles(UnsafePointer(i8(L.rows)), rows: T, paddedCols: L.hdP, scales: UnsafePointer(f32(L.rowScale)),
                                        into: i8(L.packed), packedScales: f32(L.packedScale))
                let scores = self.scores + head * T * T
                var kw = fips_qmatrix(format: 3, rows: Int32(T), cols: Int32(hd), data: UnsafeRawPointer(i8(L.packed)),
                                      scales: UnsafePointer(f32(L.packedScale)), offsets: nil, masks: nil)
                _ = fips_qgemm(kernel, i8(L.qA), f32(L.qScale), i32(L.qSum), 0, Int32(T), &kw, 0, Int32((T + 15) / 16),
                               nil, scores, T, mem + L.kernelScratch)
                self.softmaxRows(MutableMatrixRef(scores, rows: T, cols: T), scale: scale)
                // out = P·V, V as the weight Vᵀ [hd, T]
                let vT = self.vT + head * hd * T
                for t in 0..<T {
                    let vr = v + t * 3 * d
                    for j in 0..<hd { vT[j * T + t] = vr[j] }
                }
                _ = fips_quantize_rows(kernel, scores, T, Int32(T), Int32(T), nil, i8(L.pA), f32(L.pScale), i32(L.pSum))
                _ = fips_quantize_rows(kernel, vT, T, Int32(hd), Int32(T), nil, i8(L.rows), f32(L.rowScale), i32(L.rowSum))
                ViTExecutor.packQ8Tiles(UnsafePointer(i8(L.rows)), rows: hd, paddedCols: L.tP, scales: UnsafePointer(f32(L.rowScale)),
                                        into: i8(L.packed), packedScales: f32(L.packedScale))
                var vw = fips_qmatrix(format: 3, rows: Int32(hd), cols: Int32(T), data: UnsafeRawPointer(i8(L.packed)),
                                      scales: UnsafePointer(f32(L.packedScale)), offsets: nil, masks: nil)
                _ = fips_qgemm(kernel, i8(L.pA), f32(L.pScale), i32(L.pSum), 0, Int32(T), &vw, 0, Int32((hd + 15) / 16),
                               nil, self.attnOut + b * T * d + head * hd, d, mem + L.kernelScratch)
            }
        }
    }

    /// Rearranges quantised rows [rows, paddedCols] (a multiple of 32) into
    /// q8 tiles: tile (p, b) byte g·64 + c·4 + t = row 16p+c, column 32b+4g+t.
    /// Rows past `rows` are zero with scale 0. The same layout as
    /// fips_qpack's q8, which is not used here: it goes byte by byte with a
    /// range check, and this runs twice per head per block on the hot path.
    static func packQ8Tiles(_ src: UnsafePointer<Int8>, rows: Int, paddedCols: Int, scales: UnsafePointer<Float>,
                            into dst: UnsafeMutablePointer<Int8>, packedScales: UnsafeMutablePointer<Float>) {
        let panels = (rows + 15) / 16, blocks = paddedCols / 32
        let out = UnsafeMutableRawPointer(dst)
        let inp = UnsafeRawPointer(src)
        for p in 0..<panels {
            for b in 0..<blocks {
                let tile = out + (p * blocks + b) * 512
                for c in 0..<16 {
                    let r = 16 * p + c
                    for g in 0..<8 {
                        let word: UInt32 = r < rows ? inp.loadUnaligned(fromByteOffset: r * paddedCols + 32 * b + 4 * g, as: UInt32.self) : 0
                        tile.storeBytes(of: word, toByteOffset: g * 64 + c * 4, as: UInt32.self)
                    }
                }
            }
            for c in 0..<16 { packedScales[16 * p + c] = 16 * p + c < rows ? scales[16 * p + c] : 0 }
        }
    }

    /// Splits `rows` into one contiguous chunk per parallel task.
    func forRowChunks(_ rows: Int, _ body: (Range<Int>) -> Void) {
        let tasks = min(backend.parallelism, max(1, rows / 16))
        if tasks <= 1 { body(0..<rows); return }
        let per = (rows + tasks - 1) / tasks
        backend.parallelFor(tasks) { t in
            let lo = t * per, hi = min(rows, lo + per)
            if lo < hi { body(lo..<hi) }
        }
    }

    func softmaxRows(_ m: MutableMatrixRef<Float>, scale: Float) {
        if options.softmax == .integer { IntegerActivations.softmaxRows(m, scale: scale) }
        else { Activations.softmaxRows(m, scale: scale) }
    }

    func layerNorm(_ input: UnsafeMutablePointer<Float>, rows: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                   into out: UnsafeMutablePointer<Float>) {
        let d = config.dim, eps = config.layerNormEps
        let integer = options.layerNorm == .integer
        forRowChunks(rows) { r in
            if integer {
                IntegerActivations.layerNorm(MatrixRef(UnsafePointer(input + r.lowerBound * d), rows: r.count, cols: d),
                                             weight: weight, bias: bias, eps: eps,
                                             into: MutableMatrixRef(out + r.lowerBound * d, rows: r.count, cols: d))
                return
            }
            Activations.layerNorm(MatrixRef(UnsafePointer(input + r.lowerBound * d), rows: r.count, cols: d),
                                  weight: weight, bias: bias, eps: eps,
                                  into: MutableMatrixRef(out + r.lowerBound * d, rows: r.count, cols: d))
        }
    }

    func gelu(_ x: UnsafeMutablePointer<Float>, rows: Int) {
        let m = config.mlpDim, tanh = config.geluTanh
        let integer = options.gelu == .integer
        forRowChunks(rows) { r in
            if integer { IntegerActivations.gelu(x + r.lowerBound * m, count: r.count * m) }
            else if tanh { Activations.geluTanh(x + r.lowerBound * m, count: r.count * m) }
            else { Activations.geluErf(x + r.lowerBound * m, count: r.count * m) }
        }
    }

    /// attnOut = MLP(h); h (the LN2 output) is left intact for observers.
    func runMLP(_ w: MLPWeights, rows: Int) {
        let c = config, d = c.dim, m = c.mlpDim
        switch w {
        case .dense(let fc1, let fc2):
            apply(fc1, input: h, rows: rows, output: mlp, layer: "mlp.fc1")
            gelu(mlp, rows: rows)
            apply(fc2, input: mlp, rows: rows, output: attnOut, layer: "mlp.fc2")
        case .lowRank(let ut, let vt, let v2, let u2):
            apply(ut, input: h, rows: rows, output: lowRank, layer: "mlp.fc1.U")
            apply(vt, input: lowRank, rows: rows, output: mlp, layer: "mlp.fc1.V")
            gelu(mlp, rows: rows)
            apply(v2, input: mlp, rows: rows, output: lowRank, layer: "mlp.fc2.V")
            apply(u2, input: lowRank, rows: rows, output: attnOut, layer: "mlp.fc2.U")
        case .factorised(let u1, let v1, let b1, let u2, let v2, let b2):
            // fc1: z = x·U₁ [rows, r₁], a = z·V₁ + b₁ [rows, m]
            let r1 = u1.cols, r2 = u2.cols
            observe("mlp.fc1.U", h, rows: rows, cols: d)
            multiply(MatrixRef(UnsafePointer(h), rows: rows, cols: d), u1, bias: nil,
                     into: MutableMatrixRef(lowRank, rows: rows, cols: r1))
            observe("mlp.fc1.V", lowRank, rows: rows, cols: r1)
            multiply(MatrixRef(UnsafePointer(lowRank), rows: rows, cols: r1), v1, bias: b1,
                     into: MutableMatrixRef(mlp, rows: rows, cols: m))
            gelu(mlp, rows: rows)
            // fc2: q = h·V₂ᵀ [rows, r₂], y = q·U₂ᵀ + b₂ [rows, d]
            observe("mlp.fc2.V", mlp, rows: rows, cols: m)
            multiplyTransposed(MatrixRef(UnsafePointer(mlp), rows: rows, cols: m), v2, bias: nil,
                               into: MutableMatrixRef(lowRank, rows: rows, cols: r2))
            observe("mlp.fc2.U", lowRank, rows: rows, cols: r2)
            multiplyTransposed(MatrixRef(UnsafePointer(lowRank), rows: rows, cols: r2), u2, bias: b2,
                               into: MutableMatrixRef(attnOut, rows: rows, cols: d))
        }
    }

    /// out = a · F (+ bias) for a factor stored [in, out].
    func multiply(_ a: MatrixRef<Float>, _ f: FactorWeights, bias: UnsafePointer<Float>?, into out: MutableMatrixRef<Float>) {
        switch f.storage {
        case .f32(let p):
            backend.multiply(a, MatrixRef(p, rows: f.rows, cols: f.cols), bias: bias, into: out, parallel: true)
        case .csr(let s):
            forRowChunks(a.rows) { r in
                SparseGemm.multiply(MatrixRef(a.row(r.lowerBound), rows: r.count, cols: a.cols, stride: a.stride), s, bias: bias,
                                    into: MutableMatrixRef(out.row(r.lowerBound), rows: r.count, cols: out.cols, stride: out.stride))
            }
        }
    }

    /// out = a · Fᵀ (+ bias) for a factor stored [out, in].
    func multiplyTransposed(_ a: MatrixRef<Float>, _ f: FactorWeights, bias: UnsafePointer<Float>?,
                            into out: MutableMatrixRef<Float>) {
        switch f.storage {
        case .f32(let p):
            backend.multiplyTransposed(a, MatrixRef(p, rows: f.rows, cols: f.cols), bias: bias, into: out, parallel: true)
        case .csr(let s):
            forRowChunks(a.rows) { r in
                SparseGemm.multiplyTransposed(MatrixRef(a.row(r.lowerBound), rows: r.count, cols: a.cols, stride: a.stride), s,
                                              bias: bias,
                                              into: MutableMatrixRef(out.row(r.lowerBound), rows: r.count, cols: out.cols, stride: out.stride))
            }
        }
    }

    /// Reports a linear map's input to the forward pass's observer, if any.
    func observe(_ leaf: String, _ input: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        guard let o = linearInputObserver else { return }
        o(currentBlock < 0 ? leaf : TensorNames.block(currentBlock, leaf), UnsafePointer(input), rows, cols)
    }

    /// out = input · Wᵀ + b, float or int8 by the weight's encoding.
    func apply(_ l: LinearWeights, input: UnsafeMutablePointer<Float>, rows: Int, output: UnsafeMutablePointer<Float>,
               layer: String? = nil) {
        if let layer = layer { observe(layer, input, rows: rows, cols: l.inFeatures) }
        let a = MatrixRef(UnsafePointer(input), rows: rows, cols: l.inFeatures)
        let out = MutableMatrixRef(output, rows: rows, cols: l.outFeatures)
        switch l.storage {
        case .f32(let w):
            backend.multiplyTransposed(a, MatrixRef(w, rows: l.outFeatures, cols: l.inFeatures), bias: l.bias, into: out,
                                       parallel: true)
        case .int8(let w, let scales):
            Int8Gemm.quantizeRows(a, into: qAct, scales: qScales)
            Int8Gemm.multiplyTransposed(qAct, aScales: qScales, w, wScales: scales,
                                        M: rows, N: l.outFeatures, K: l.inFeatures, bias: l.bias, into: out)
        case .packed(let m, let actScale):
            applyPacked(m, actScale: actScale, l, input: input, rows: rows, output: output)
        }
    }

    /// Quantises the input (row chunks in parallel), then splits the output
    /// panels (or, when there are too few, the rows) over the tasks. Every
    /// output element is computed the same way whatever the split.
    func applyPacked(_ m: fips_qmatrix, actScale: UnsafePointer<Float>?, _ l: LinearWeights,
                     input: UnsafeMutablePointer<Float>, rows: Int, output: UnsafeMutablePointer<Float>) {
        let K = l.inFeatures, Kp = l.paddedInFeatures, N = l.outFeatures
        let kernel = self.kernel
        forRowChunks(rows) { r in
            _ = fips_quantize_rows(kernel, input + r.lowerBound * K, K, Int32(r.count), Int32(K), actScale,
                                   self.qAct + r.lowerBound * Kp, self.qScales + r.lowerBound,
                                   self.qGsum + r.lowerBound * (Kp / 32))
        }
        let panels = (N + 15) / 16
        let tasks = max(1, min(backend.parallelism, max(panels, rows)))
        let byPanels = panels >= tasks
        backend.parallelFor(tasks) { t in
            let total = byPanels ? panels : rows
            let lo = total * t / tasks, hi = total * (t + 1) / tasks
            if lo >= hi { return }
            var w = m
            _ = fips_qgemm(kernel, self.qAct, self.qScales, self.qGsum,
                           Int32(byPanels ? 0 : lo), Int32(byPanels ? rows : hi), &w,
                           Int32(byPanels ? lo : 0), Int32(byPanels ? hi : panels),
                           l.bias, output, N, self.qScratch + t * self.qScratchBytes)
        }
    }

    func residualAdd(_ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, scale: UnsafePointer<Float>?,
                     rows: Int, cols: Int) {
        for r in 0..<rows {
            let xr = x + r * cols, yr = y + r * cols
            if let s = scale {
                for k in 0..<cols { xr[k] += s[k] * yr[k] }
            } else {
                for k in 0..<cols { xr[k] += yr[k] }
            }
        }
    }
}

/// The activation arena of a `ViTExecutor`: every buffer's offset and the
/// total, from what decides them and nothing else. `ViTExecutor.init`
/// allocates exactly `totalBytes`, so a planner that sizes a model's memory
/// with this same function cannot disagree with the runtime.
public struct ArenaLayout {
    public let offsets: [Int]
    public let totalBytes: Int

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
        var offsets = [Int]()
        var total = 0
        func reserve(_ bytes: Int) -> Int { let o = total; total += (bytes + 63) & ~63; return o }
        offsets.append(reserve(4 * rows * d))          // x
        offsets.append(reserve(4 * rows * d))          // h
        offsets.append(reserve(4 * rows * 3 * d))      // qkv
        offsets.append(reserve(4 * rows * d))          // attnOut
        offsets.append(reserve(4 * rows * c.mlpDim))   // mlp
        offsets.append(reserve(4 * c.heads * T * T))   // scores, one [T, T] per head
        offsets.append(reserve(4 * c.heads * c.headDim * T)) // vT, one per head
        offsets.append(reserve(4 * B * c.patchCount * c.channels * c.patchSize * c.patchSize)) // patches
        offsets.append(reserve(4 * B * c.headInputDim)) // pooled
        let widestK = (max(widest, maxRank, c.headInputDim) + 31) / 32 * 32
        offsets.append(reserve(rows * widestK))        // int8 activations [rows, Kp]
        offsets.append(reserve(4 * rows))              // their scales
        offsets.append(reserve(4 * rows * maxRank))    // x·U or h·Vᵀ of a factorised MLP
        let qScratchBytes = (scratch + 63) & ~63
        let attnScratchBytes = AttentionLayout(T: T, headDim: c.headDim).total
        offsets.append(reserve(4 * rows * widestK / 32))                   // 12: 32-column sums
        offsets.append(reserve(qScratchBytes * max(1, tasks)))             // 13: kernel scratch per task
        offsets.append(reserve(integerAttention ? attnScratchBytes * c.heads : 0))  // 14: per head
        self.offsets = offsets
        self.totalBytes = total
    }

    /// What the integer GEMM needs as scratch for a packed weight with `cols` inputs (any format, any kernel).
    public static func kernelScratchBytes(cols: Int) -> Int {
        var probe = fips_qmatrix(format: 3, rows: 16, cols: Int32(cols), data: nil, scales: nil, offsets: nil, masks: nil)
        return fips_qgemm_scratch_bytes(&probe)
    }
}

/// Byte offsets of one head's integer-attention buffers.
struct AttentionLayout {
    let hdP, tP: Int
    var qA = 0, qScale = 0, qSum = 0, pA = 0, pScale = 0, pSum = 0
    var rows = 0, rowScale = 0, rowSum = 0, packed = 0, packedScale = 0, kernelScratch = 0, total = 0

    init(T: Int, headDim hd: Int) {
        hdP = (hd + 31) / 32 * 32
        tP = (T + 31) / 32 * 32
        var at = 0
        func take(_ bytes: Int) -> Int { let o = at; at += (bytes + 63) & ~63; return o }
        let big = max(T, hd)                  // rows quantised as a weight: K (T rows) or Vᵀ (hd rows)
        let widest = max(hdP, tP)
        qA = take(T * hdP); qScale = take(4 * T); qSum = take(4 * T * hdP / 32)
        pA = take(T * tP); pScale = take(4 * T); pSum = take(4 * T * tP / 32)
        rows = take(big * widest); rowScale = take(4 * big); rowSum = take(4 * big * widest / 32)
        let bigP = (big + 15) / 16 * 16
        packed = take(bigP * widest); packedScale = take(4 * bigP)
        // What fips_qgemm may use for a q8 weight of this width (any kernel).
        var probe = fips_qmatrix(format: 3, rows: Int32(bigP), cols: Int32(widest), data: nil, scales: nil, offsets: nil, masks: nil)
        kernelScratch = take(fips_qgemm_scratch_bytes(&probe))
        total = at
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
