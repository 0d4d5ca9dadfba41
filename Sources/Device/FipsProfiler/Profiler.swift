import CFipsKernels
import CFipsProbe
import CFipsSys
import FipsArtifact
import FipsDeviceSupport
import FipsKernels
import FipsViT

/// What fips-profile measures and how: the GEMM grid, the ViT block timings and
/// the single operations, each within its share of the time budget.

struct GemmResult {
    var format: Int32
    var sparsity: Double
    var m, n, k, threads: Int
    var ms: Double
    var runs: Int
}

struct VitResult {
    var tokens, dim, heads, mlpDim, patchSize: Int
    var int8Attention: Bool
    var integerNonlinear: Bool
    var threads: Int
    var blockOtherMs, fixedMs: Double
    var runs: Int
}

struct OpResult {
    var op: String
    var rows, cols, threads: Int
    var ms: Double
}

/// One ViT shape the profile covers.
struct VitShape {
    var dim, heads, patchSize, imageSize: Int
    var tokens: Int { (imageSize / patchSize) * (imageSize / patchSize) + 1 }
    var mlpDim: Int { 4 * dim }
    /// The other token count the dense GEMMs are also timed at.
    var otherTokens: Int
}

final class Profiler {
    let o: ProfileOptions
    let functional: Bool
    let budget: Double
    let start = fips_now_ns()
    let kernel: Int32
    let tty: Bool
    var gemm: [GemmResult] = []
    var vit: [VitResult] = []
    var ops: [OpResult] = []
    var truncated = false
    var done = 0
    var planned = 0

    init(_ o: ProfileOptions) {
        self.o = o
        functional = o.functionalOnly
        budget = o.maxSeconds ?? (o.quick ? 20 : 60)
        kernel = fips_qgemm_env_kernel()
        tty = fips_probe_isatty(2) == 1
    }

    var elapsed: Double { Double(fips_now_ns() - start) / 1e9 }
    var remaining: Double { budget - elapsed }

    /// Seconds one timing may take: its share of what is left (the last 10%
    /// of the budget is held back for the ViT timings of the next shape).
    var allotment: Double {
        let left = max(0, planned - done)
        if left == 0 { return 0.05 }
        return min(0.3, max(0.01, remaining * 0.9 / Double(left)))
    }

    func progress(_ what: String) {
        guard tty else { return }
        var t = TextBuffer()
        let pct = planned == 0 ? 0 : min(100, 100 * done / planned)
        t.append("\r\u{1B}[Kfips-profile: [\(pct < 10 ? "  " : pct < 100 ? " " : "")\(pct)%] ")
        t.append(what)
        t.append("  (")
        t.appendFixed(elapsed, decimals: 0)
        t.append(" s)")
        t.write(fd: 2)
    }

    func threadCounts(usable: Int) -> [Int] {
        let n = o.threads ?? usable
        if o.quick || functional { return n == 1 ? [1] : [1, n] }
        if n <= 4 { return Array(1...n) }
        var l = [1], t = 2
        while t < n { l.append(t); t *= 2 }
        l.append(n)
        return l
    }

    func ranks(_ d: Int) -> [Int] {
        if functional { return [d / 3] }
        let fractions: [(Int, Int)] = o.quick ? [(1, 3), (2, 3), (1, 1), (4, 3)]
                                              : [(1, 6), (1, 3), (1, 2), (2, 3), (1, 1), (4, 3), (2, 1)]
        return fractions.map { ($0.0 * d / $0.1 + 31) / 32 * 32 }
    }

    var sparsities: [Double] { functional ? [0.5, 0.9] : [0.5, 0.75, 0.9] }

    var shapes: [VitShape] {
        let s = VitShape(dim: 384, heads: 6, patchSize: 14, imageSize: 224, otherTokens: 197)     // DINOv2-S/14, ViT-S
        let b = VitShape(dim: 768, heads: 12, patchSize: 16, imageSize: 224, otherTokens: 257)    // ViT-B/16
        // Functional-only (emulators): the ViT-S width at a 112-pixel input
        // (65 tokens), so every code path runs in seconds under qemu.
        if functional { return [VitShape(dim: 384, heads: 6, patchSize: 14, imageSize: 112, otherTokens: 50)] }
        return o.quick ? [s] : [s, b]
    }

    /// The GEMMs of one shape: (format, sparsity, m, n, k).
    func grid(_ s: VitShape) -> [(Int32, Double, Int, Int, Int)] {
        let d = s.dim, m = s.mlpDim
        var g = [(Int32, Double, Int, Int, Int)]()
        let dense = [(3 * d, d), (d, d), (m, d), (d, m)]
        let denseFormats = QuantFormat.all.filter { !$0.isSparse }.map { $0.rawValue } + [formatF32]
        let tokens = functional ? [s.tokens] : [s.tokens, s.otherTokens]
        for f in denseFormats { for t in tokens { for (n, k) in dense { g.append((f, 0, t, n, k)) } } }
        for r in ranks(d) {
            let roles = [(r, d), (m, r), (r, m), (d, r)]
            for f in [FIPS_QFORMAT_Q8, FIPS_QFORMAT_Q4G32, FIPS_QFORMAT_Q3G32, FIPS_QFORMAT_Q2G32] {
                for (n, k) in roles { g.append((f, 0, s.tokens, n, k)) }
            }
            for sp in sparsities {
                for (n, k) in [(m, r), (r, m)] { g.append((FIPS_QFORMAT_Q8SPARSE, sp, s.tokens, n, k)) }
            }
        }
        return g
    }

    func measureGemm(_ f: Int32, _ sp: Double, _ m: Int, _ n: Int, _ k: Int, bench: LinearBench, threads: Int) {
        done += 1
        if remaining <= 0 && !functional { truncated = true; return }
        progress("gemm \(formatName(f)) \(m)x\(n)x\(k) \(threads) thread\(threads == 1 ? "" : "s")")
        // Several copies of the weights, used in turn, so that (as in a
        // forward pass, where each layer's weights are read once) they do not
        // all sit in the cache.
        let bytes = f == formatF32 ? 4 * n * k : n * k
        let copies = functional ? 1 : max(1, min(8, (16 << 20) / max(1, bytes)))
        var ws = [WeightMatrix]()
        for c in 0..<copies { ws.append(WeightMatrix(format: f, rows: n, cols: k, sparsity: sp, seed: UInt64(c * 7919 + n * 31 + k))) }
        for w in ws { bench.prepare(w) }
        var turn = 0
        let r = timeMedian(seconds: allotment, minRuns: 3, maxRuns: 50, functional: functional) {
            bench.run(ws[turn % copies], rows: m)
            turn += 1
        }
        gemm.append(GemmResult(format: f, sparsity: sp, m: m, n: n, k: k, threads: threads, ms: r.ms, runs: r.runs))
    }

    func lookupGemm(_ f: Int32, _ m: Int, _ n: Int, _ k: Int, threads: Int) -> Double? {
        for g in gemm where g.format == f && g.sparsity == 0 && g.m == m && g.n == n && g.k == k && g.threads == threads { return g.ms }
        return nil
    }

    /// Block-other and fixed time of one shape: forward passes of synthetic
    /// 1- and 3-block models through ViTExecutor; a block is half their
    /// difference, less its four linear layers as timed in the GEMM grid.
    func measureVit(_ s: VitShape, int8: Bool, integerNL: Bool, backend: PooledBackend, threads: Int) {
        done += 1
        if remaining <= 0 && !functional { truncated = true; return }
        progress("ViT d=\(s.dim) T=\(s.tokens) \(int8 ? "int8" : "f32")\(integerNL ? " integer non-linear" : "") \(threads) thread\(threads == 1 ? "" : "s")")
        let f = int8 ? FIPS_QFORMAT_Q8 : formatF32
        let d = s.dim, m = s.mlpDim, T = s.tokens
        guard let g1 = lookupGemm(f, T, 3 * d, d, threads: threads), let g2 = lookupGemm(f, T, d, d, threads: threads),
              let g3 = lookupGemm(f, T, m, d, threads: threads), let g4 = lookupGemm(f, T, d, m, threads: threads) else { return }
        var c = ViTConfig()
        c.dim = d; c.heads = s.heads; c.mlpDim = m; c.patchSize = s.patchSize; c.imageSize = s.imageSize; c.cropSize = s.imageSize
        c.resizeShorter = max(c.resizeShorter, s.imageSize)
        var opts = ExecutorOptions(kernel: kernel)
        if integerNL { _ = opts.selectIntegerNonlinearities("all") }
        let image = UnsafeMutablePointer<Float>.allocate(capacity: 3 * s.imageSize * s.imageSize)
        let features = UnsafeMutablePointer<Float>.allocate(capacity: T * d)
        defer { image.deallocate(); features.deallocate() }
        var rng = Rng(5)
        for i in 0..<(3 * s.imageSize * s.imageSize) { image[i] = rng.float(2) }
        var times = [Double](), runs = 0
        for depth in [1, 3] {
            c.depth = depth
            let model = SyntheticViT(config: c, format: f, seed: UInt64(depth * 101 + d))
            let ex: ViTExecutor<PooledBackend>
            do { ex = try ViTExecutor(config: c, backend: backend, maxBatch: 1, owner: nil, options: opts, lookup: { model.lookup($0) }) }
            catch { printLine("fips-profile: synthetic ViT: \(error.message)", fd: 2); return }
            let r = timeMedian(seconds: functional ? 0 : max(0.1, min(1.5, allotment * 4)), minRuns: 3, maxRuns: 30, functional: functional) {
                ex.forward(batch: 1, images: image, features: features)
            }
            times.append(r.ms); runs = r.runs
            withExtendedLifetime(model) {}
        }
        let block = max(0, (times[1] - times[0]) / 2)
        let other = max(0, block - (g1 + g2 + g3 + g4))
        let fixed = max(0, times[0] - block)
        vit.append(VitResult(tokens: T, dim: d, heads: s.heads, mlpDim: m, patchSize: s.patchSize, int8Attention: int8,
                             integerNonlinear: integerNL, threads: threads, blockOtherMs: other, fixedMs: fixed, runs: runs))
    }

    /// Single non-GEMM operations at one shape, one thread (informational).
    func measureOps(_ s: VitShape) {
        let T = s.tokens, d = s.dim, m = s.mlpDim, h = s.heads
        let n = max(T * m, h * T * T)
        let x = UnsafeMutablePointer<Float>.allocate(capacity: n), y = UnsafeMutablePointer<Float>.allocate(capacity: n)
        let w = UnsafeMutablePointer<Float>.allocate(capacity: m), b = UnsafeMutablePointer<Float>.allocate(capacity: m)
        let q = UnsafeMutablePointer<Int8>.allocate(capacity: T * ((m + 31) / 32 * 32))
        let qs = UnsafeMutablePointer<Float>.allocate(capacity: T)
        let gs = UnsafeMutablePointer<Int32>.allocate(capacity: T * ((m + 31) / 32))
        defer { x.deallocate(); y.deallocate(); w.deallocate(); b.deallocate(); q.deallocate(); qs.deallocate(); gs.deallocate() }
        var rng = Rng(11)
        for i in 0..<n { x[i] = rng.float(3); y[i] = x[i] }
        for i in 0..<m { w[i] = 1 + rng.float(0.1); b[i] = rng.float(0.1) }
        func op(_ name: String, _ rows: Int, _ cols: Int, _ body: () -> Void) {
            done += 1
            if remaining <= 0 && !functional { truncated = true; return }
            progress("op \(name)")
            let r = timeMedian(seconds: min(0.1, allotment), minRuns: 3, maxRuns: 30, functional: functional, body)
            ops.append(OpResult(op: name, rows: rows, cols: cols, threads: 1, ms: r.ms))
        }
        let eps = Float(1e-6)
        op("layernorm", T, d) { Activations.layerNorm(MatrixRef(UnsafePointer(x), rows: T, cols: d), weight: w, bias: b, eps: eps, into: MutableMatrixRef(y, rows: T, cols: d)) }
        op("layernorm-int", T, d) { IntegerActivations.layerNorm(MatrixRef(UnsafePointer(x), rows: T, cols: d), weight: w, bias: b, eps: eps, into: MutableMatrixRef(y, rows: T, cols: d)) }
        op("gelu", T, m) { for i in 0..<(T * m) { y[i] = x[i] }; Activations.geluErf(y, count: T * m) }
        op("gelu-int", T, m) { for i in 0..<(T * m) { y[i] = x[i] }; IntegerActivations.gelu(y, count: T * m) }
        op("softmax", h * T, T) { for i in 0..<(h * T * T) { y[i] = x[i] }; Activations.softmaxRows(MutableMatrixRef(y, rows: h * T, cols: T), scale: 0.125) }
        op("softmax-int", h * T, T) { for i in 0..<(h * T * T) { y[i] = x[i] }; IntegerActivations.softmaxRows(MutableMatrixRef(y, rows: h * T, cols: T), scale: 0.125) }
        op("copy", T, m) { for i in 0..<(T * m) { y[i] = x[i] } }
        let k = kernel
        op("quantize-rows", T, m) { _ = fips_quantize_rows(k, x, m, Int32(T), Int32(m), nil, q, qs, gs) }
    }

    func run(system: SystemInfo) -> (read: [Double], copy: [Double], bufferBytes: Int, threads: [Int]) {
        let threads = threadCounts(usable: system.usableCpus)
        // Plan: count the timings so each gets its share of the budget.
        var count = 8
        for s in shapes { count += threads.count * (grid(s).count + (o.quick || functional ? 2 : 3)) }
        planned = count
        // Bandwidth first (cheap), then per shape and thread count.
        var bufferBytes = functional ? 4 << 20 : 64 << 20
        if system.memAvailableBytes > 0 { bufferBytes = min(bufferBytes, Int(system.memAvailableBytes / 8)) }
        if let lim = system.cgroupMemoryLimitBytes { bufferBytes = min(bufferBytes, Int(lim / 8)) }
        bufferBytes = max(1 << 20, bufferBytes)
        var read = [Double](), copy = [Double]()
        for t in threads {
            progress("memory bandwidth, \(t) thread\(t == 1 ? "" : "s")")
            let secs = functional ? 0.0 : min(0.4, budget / 100)
            read.append(fips_probe_bandwidth(0, bufferBytes, Int32(t), secs))
            copy.append(fips_probe_bandwidth(1, bufferBytes, Int32(t), secs))
        }
        for (si, s) in shapes.enumerated() {
            if si == 0 { measureOps(s) }
            for t in threads {
                let backend = PooledBackend(threads: t)
                let bench = LinearBench(backend: backend, kernel: kernel, maxRows: max(s.tokens, s.otherTokens), maxCols: max(s.mlpDim, 2 * s.dim) * 2)
                let g = grid(s)
                // The dense shapes at the model's token count first: the ViT timings need them.
                for (f, sp, m, n, k) in g where m == s.tokens && sp == 0 && (f == FIPS_QFORMAT_Q8 || f == formatF32) && (n == s.dim || k == s.dim) && (n >= s.dim && k >= s.dim) {
                    measureGemm(f, sp, m, n, k, bench: bench, threads: t)
                }
                measureVit(s, int8: true, integerNL: false, backend: backend, threads: t)
                measureVit(s, int8: false, integerNL: false, backend: backend, threads: t)
                if !(o.quick || functional) { measureVit(s, int8: true, integerNL: true, backend: backend, threads: t) }
                for (f, sp, m, n, k) in g where !(m == s.tokens && sp == 0 && (f == FIPS_QFORMAT_Q8 || f == formatF32) && (n == s.dim || k == s.dim) && (n >= s.dim && k >= s.dim)) {
                    measureGemm(f, sp, m, n, k, bench: bench, threads: t)
                }
            }
        }
        if tty { printLine("", fd: 2) }
        return (read, copy, bufferBytes, threads)
    }
}
