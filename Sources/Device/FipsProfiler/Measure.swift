import CFipsKernels
import CFipsSys
import FipsArtifact
import FipsKernels
import FipsViT

/// A small deterministic generator (no Foundation on the device).
struct Rng {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 0x9E3779B97F4A7C15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(UInt64(1) << 53) }
    mutating func float(_ scale: Float) -> Float { Float(unit() * 2 - 1) * scale }
}

/// Format names as the profile and docs/ARTIFACT.md spell them: the format
/// table's, and "f32" for the float matrices (id `formatF32`, no packed format).
func formatName(_ f: Int32) -> String { QuantFormat(rawValue: f)?.name ?? "f32" }
let formatF32: Int32 = 0

/// One weight matrix [rows = N][cols = K] in a packed format (or f32), with
/// random values; `sparsity` of them zero (what q8-sparse elides).
final class WeightMatrix {
    let format: Int32
    let rows, cols: Int
    var data: UnsafeMutableRawPointer
    var scales: UnsafeMutablePointer<Float>
    var offsets: UnsafeMutablePointer<UInt32>? = nil
    var masks: UnsafeMutablePointer<UInt64>? = nil
    let bias: UnsafeMutablePointer<Float>
    let byteCount: Int

    init(format: Int32, rows: Int, cols: Int, sparsity: Double, seed: UInt64) {
        self.format = format; self.rows = rows; self.cols = cols
        var rng = Rng(seed)
        bias = UnsafeMutablePointer<Float>.allocate(capacity: rows)
        for i in 0..<rows { bias[i] = rng.float(0.1) }
        if format == formatF32 {
            let w = UnsafeMutablePointer<Float>.allocate(capacity: rows * cols)
            for i in 0..<(rows * cols) { w[i] = rng.unit() < sparsity ? 0 : rng.float(0.05) }
            data = UnsafeMutableRawPointer(w)
            scales = UnsafeMutablePointer<Float>.allocate(capacity: 1)
            byteCount = 4 * rows * cols
            return
        }
        let traits = fips_qformat_traits_of(format)!.pointee
        let lo = Int(traits.min_value), hi = Int(traits.max_value)
        var values = [Int8](repeating: 0, count: rows * cols)
        for i in 0..<values.count {
            if rng.unit() < sparsity { continue }
            var v = Int(rng.next() % UInt64(hi - lo + 1)) + lo
            if v == 0 { v = 1 }
            values[i] = Int8(v)
        }
        let nLogical = fips_qpack_logical_scale_count(format, Int32(rows), Int32(cols))
        var logical = [Float](repeating: 0, count: nLogical)
        for i in 0..<nLogical { logical[i] = 0.001 + Float(rng.unit()) * 0.01 }
        let dataBytes = fips_qpack_data_bytes(format, Int32(rows), Int32(cols), values)
        byteCount = dataBytes
        data = fips_alloc(max(64, dataBytes))!
        let nPacked = fips_qpack_scale_count(format, Int32(rows), Int32(cols))
        scales = UnsafeMutablePointer<Float>.allocate(capacity: max(1, nPacked))
        if format == FIPS_QFORMAT_Q8SPARSE {
            let tiles = fips_qpack_tile_count(Int32(rows), Int32(cols))
            offsets = UnsafeMutablePointer<UInt32>.allocate(capacity: tiles + 1)
            masks = UnsafeMutablePointer<UInt64>.allocate(capacity: tiles * 8)
        }
        let rc = fips_qpack(format, Int32(rows), Int32(cols), values, logical, data, scales, offsets, masks)
        precondition(rc == 0, "fips_qpack failed")
    }

    deinit {
        if format == formatF32 { data.assumingMemoryBound(to: Float.self).deallocate() } else { fips_free(data) }
        scales.deallocate(); bias.deallocate()
        offsets?.deallocate(); masks?.deallocate()
    }

    var qmatrix: fips_qmatrix {
        fips_qmatrix(format: format, rows: Int32(rows), cols: Int32(cols), data: UnsafeRawPointer(data),
                     scales: UnsafePointer(scales), offsets: offsets.map { UnsafePointer($0) },
                     masks: masks.map { UnsafePointer($0) })
    }

    /// The tensor as an artifact would hold it (for a synthetic executor).
    func view(name: String) -> TensorView {
        var t = TensorView(name: name, dtype: TensorDType(rawValue: UInt8(format)) ?? .f32, shape: [rows, cols],
                           data: UnsafeRawPointer(data), byteCount: byteCount, scales: UnsafePointer(scales))
        if let o = offsets { t.tileOffsets = UnsafePointer(o) }
        if let m = masks { t.tileMasks = UnsafePointer(m) }
        return t
    }
}

/// Runs one linear layer exactly as ViTExecutor.applyPacked (or the f32
/// path) does: input quantised in row chunks, then output panels (or rows)
/// split over the pool's threads.
final class LinearBench {
    let backend: PooledBackend
    let kernel: Int32
    let maxRows, maxCols: Int
    let input, output: UnsafeMutablePointer<Float>
    let qAct: UnsafeMutablePointer<Int8>
    let qScales: UnsafeMutablePointer<Float>
    let qGsum: UnsafeMutablePointer<Int32>
    var scratch: UnsafeMutableRawPointer
    var scratchBytes: Int
    let actScale: UnsafeMutablePointer<Float>

    init(backend: PooledBackend, kernel: Int32, maxRows: Int, maxCols: Int) {
        self.backend = backend; self.kernel = kernel; self.maxRows = maxRows; self.maxCols = maxCols
        let kp = (maxCols + 31) / 32 * 32
        input = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * maxCols)
        output = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * maxCols)
        var rng = Rng(99)
        for i in 0..<(maxRows * maxCols) { input[i] = rng.float(2); output[i] = 0 }
        qAct = UnsafeMutablePointer<Int8>.allocate(capacity: maxRows * kp)
        qScales = UnsafeMutablePointer<Float>.allocate(capacity: maxRows)
        qGsum = UnsafeMutablePointer<Int32>.allocate(capacity: maxRows * kp / 32)
        scratchBytes = 0
        scratch = fips_alloc(64)!
        actScale = UnsafeMutablePointer<Float>.allocate(capacity: 1)
        actScale[0] = 2.0 / 127
    }

    deinit {
        input.deallocate(); output.deallocate(); qAct.deallocate(); qScales.deallocate(); qGsum.deallocate()
        fips_free(scratch); actScale.deallocate()
    }

    func prepare(_ w: WeightMatrix) {
        guard w.format != formatF32 else { return }
        var m = w.qmatrix
        let need = (fips_qgemm_scratch_bytes(&m) + 63) & ~63
        if need > scratchBytes {
            fips_free(scratch)
            scratchBytes = need
            scratch = fips_alloc(need * backend.parallelism)!
        }
    }

    /// y[rows, N] = x[rows, K]·Wᵀ + b.
    func run(_ w: WeightMatrix, rows: Int) {
        let K = w.cols, N = w.rows
        if w.format == formatF32 {
            backend.multiplyTransposed(MatrixRef(UnsafePointer(input), rows: rows, cols: K),
                                       MatrixRef(UnsafePointer(w.data.assumingMemoryBound(to: Float.self)), rows: N, cols: K),
                                       bias: UnsafePointer(w.bias), into: MutableMatrixRef(output, rows: rows, cols: N), parallel: true)
            return
        }
        let Kp = (K + 31) / 32 * 32
        let kernel = self.kernel
        // The executor's own split (FipsViT's WorkSplit): quantise in row
        // chunks, then panels (or rows) over the pool's threads.
        WorkSplit.rowChunks(rows, backend: backend) { r in
            // Dynamic per-token scales: what `fips quantize` writes by default.
            _ = fips_quantize_rows(kernel, self.input + r.lowerBound * K, K, Int32(r.count), Int32(K), nil,
                                   self.qAct + r.lowerBound * Kp, self.qScales + r.lowerBound,
                                   self.qGsum + r.lowerBound * (Kp / 32))
        }
        let m = w.qmatrix
        let bias = UnsafePointer(w.bias)
        WorkSplit.packedGemm(rows: rows, panels: (N + 15) / 16, backend: backend) { t, r, p in
            var mm = m
            _ = fips_qgemm(kernel, self.qAct, self.qScales, self.qGsum, Int32(r.lowerBound), Int32(r.upperBound), &mm,
                           Int32(p.lowerBound), Int32(p.upperBound),
                           bias, self.output, N, self.scratch + t * self.scratchBytes)
        }
    }
}

/// Times `body`: one warm-up run, then repetitions until `minRuns` and
/// `seconds` are both reached (or `maxRuns`); the median in ms. In
/// functional-only mode, one run.
func timeMedian(seconds: Double, minRuns: Int, maxRuns: Int, functional: Bool, _ body: () -> Void) -> (ms: Double, runs: Int) {
    let t0 = fips_now_ns()
    body()
    let first = Double(fips_now_ns() - t0) / 1e6
    if functional { return (first, 1) }
    var times = [Double]()
    let start = fips_now_ns()
    while times.count < maxRuns {
        let a = fips_now_ns()
        body()
        times.append(Double(fips_now_ns() - a) / 1e6)
        let elapsed = Double(fips_now_ns() - start) / 1e9
        if times.count >= minRuns && elapsed >= seconds { break }
        // A run far longer than the allotment: stop at two.
        if times.count >= 2 && elapsed >= 4 * seconds { break }
    }
    times.sort()
    let n = times.count
    return (n % 2 == 1 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2, n)
}

/// Synthetic ViT weights of a given shape, every linear map in one format,
/// for timing whole forward passes through ViTExecutor.
final class SyntheticViT {
    let config: ViTConfig
    var views: [TensorView] = []
    var keep: [WeightMatrix] = []
    var floats: [UnsafeMutablePointer<Float>] = []

    init(config c: ViTConfig, format: Int32, seed: UInt64) {
        config = c
        var rng = Rng(seed)
        func vector(_ name: String, _ n: Int, _ base: Float, _ scale: Float) {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: n)
            for i in 0..<n { p[i] = base + rng.float(scale) }
            floats.append(p)
            views.append(TensorView(name: name, dtype: .f32, shape: [n], data: UnsafeRawPointer(p), byteCount: 4 * n, scales: nil))
        }
        func matrix(_ name: String, _ rows: Int, _ cols: Int, _ f: Int32) {
            let w = WeightMatrix(format: f, rows: rows, cols: cols, sparsity: 0, seed: rng.next())
            keep.append(w)
            views.append(w.view(name: name + ".weight"))
            views.append(TensorView(name: name + ".bias", dtype: .f32, shape: [rows], data: UnsafeRawPointer(w.bias),
                                    byteCount: 4 * rows, scales: nil))
        }
        let d = c.dim
        matrix(TensorNames.patchWeight.replacingSuffix(), d, c.channels * c.patchSize * c.patchSize, formatF32)
        vector(TensorNames.clsToken, d, 0, 0.02)
        let pos = UnsafeMutablePointer<Float>.allocate(capacity: c.tokenCount * d)
        for i in 0..<(c.tokenCount * d) { pos[i] = rng.float(0.02) }
        floats.append(pos)
        views.append(TensorView(name: TensorNames.posEmbed, dtype: .f32, shape: [c.tokenCount, d], data: UnsafeRawPointer(pos),
                                byteCount: 4 * c.tokenCount * d, scales: nil))
        vector(TensorNames.normWeight, d, 1, 0.1)
        vector(TensorNames.normBias, d, 0, 0.1)
        for i in 0..<c.depth {
            func n(_ leaf: String) -> String { TensorNames.block(i, leaf) }
            vector(n("norm1.weight"), d, 1, 0.1); vector(n("norm1.bias"), d, 0, 0.1)
            vector(n("norm2.weight"), d, 1, 0.1); vector(n("norm2.bias"), d, 0, 0.1)
            matrix(n("attn.qkv"), 3 * d, d, format)
            matrix(n("attn.proj"), d, d, format)
            matrix(n("mlp.fc1"), c.mlpDim, d, format)
            matrix(n("mlp.fc2"), d, c.mlpDim, format)
            if c.hasLayerScale { vector(n("ls1"), d, 0.1, 0.05); vector(n("ls2"), d, 0.1, 0.05) }
        }
    }

    deinit { for p in floats { p.deallocate() } }

    func lookup(_ name: String) -> TensorView? {
        for v in views where v.name == name { return v }
        return nil
    }
}

extension String {
    /// "patch_embed.weight" -> "patch_embed".
    func replacingSuffix() -> String {
        var b = Array(self.utf8)
        let suffix = Array(".weight".utf8)
        if b.count > suffix.count && Array(b[(b.count - suffix.count)...]) == suffix { b.removeLast(suffix.count) }
        return String(decoding: b, as: UTF8.self)
    }
}
