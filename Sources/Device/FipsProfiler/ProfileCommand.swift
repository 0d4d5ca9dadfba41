import CFipsKernels
import CFipsProbe
import CFipsSys
import FipsArtifact
import FipsDeviceSupport
import FipsKernels
import FipsViT

/// `fips-profile`: measures what the latency model needs on the device it
/// runs on and writes profiles/NAME.json (schema: profiles/schema.json,
/// fields: profiles/README.md). Device code: no Foundation; arguments
/// through `profileFlags` (FipsDeviceSupport's flag table), like fips-run.
public struct ProfileOptions {
    public var name: String? = nil
    public var output: String? = nil
    public var quick = false
    public var threads: Int? = nil
    public var maxSeconds: Double? = nil
    public var functionalOnly = false
}

/// The schema version this program writes (profiles/schema.json).
public let profileSchemaVersion = 1
let generatorName = "fips-profile 1"

public let profileUsage = """
USAGE: fips-profile [--name <name>] [-o <file>] [--quick] [--threads <n>] [--max-seconds <s>]
                    [--functional-only]

Measures this device for fips-plan's latency model and writes a JSON profile:
CPU model and features (AT_HWCAP/HWCAP2 on aarch64: asimddp, i8mm, sve; CPUID
on x86-64: avx2, avx512_vnni), cores and clusters, MemTotal/MemAvailable, the
cgroup memory limit, the page size; memory bandwidth (read and copy); the
integer GEMM (q8, q8-sparse at several sparsities, q4g32, q3g32) and f32 GEMM
at the shapes a ViT runs (tokens 197 and 257, widths 384 and 768, FiPS ranks)
on 1..N threads; and, per ViT shape, everything in a block besides its linear
layers plus the fixed work (patch embedding, final LayerNorm), timed through
the runtime's own executor. Schema: profiles/schema.json; every field is
described in profiles/README.md.

Repetitions are bounded: each timing takes its share of --max-seconds (at least
one warm-up and three timed runs); when the time is spent the remaining, less
important timings are skipped and the profile says "truncated": true.

OPTIONS:
  --name <name>          the profile's name (default: the host name)
  -o, --output <file>    where to write it (default: profiles/<name>.json)
  --quick                a smaller grid (fewer ranks, only the ViT-S width, 1 and N
                         threads) with a 20 s default budget
  --threads <n>          measure 1..n threads (default: the CPUs this process may
                         use; above 4, only 1, 2, 4, ... and n)
  --max-seconds <s>      time budget of the whole run (default 60, --quick 20)
  --functional-only      run every code path once and mark the profile
                         "functional_only": true: its timings mean nothing (for
                         emulators such as qemu-aarch64, and CI)
  -h, --help             show this help

Progress goes to stderr when it is a terminal; nothing but the final line when piped.

EXAMPLES:
  fips-profile -o profiles/my-pi5.json
  fips-profile --name rpi5-8gb --threads 4
  fips-profile --quick --max-seconds 30
  qemu-aarch64-static build/rpi5/fips-profile --quick --functional-only -o /tmp/qemu.json
"""

let profileFlags = FlagTable<ProfileOptions>(
    defaults: ProfileOptions(),
    flags: [
        .value("--name", missing: "--name needs a name") { o, v in
            if v.isEmpty { return "--name needs a name" }
            for b in v.utf8 where !(b == 45 || b == 46 || b == 95 || (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)) {
                return "--name '\(v)': use letters, digits, '.', '-' and '_' only"
            }
            o.name = v
            return nil
        },
        .value("-o", missing: "-o needs a file path") { o, v in
            if v.isEmpty { return "-o needs a file path" }
            o.output = v
            return nil
        },
        .value("--output", missing: "--output needs a file path") { o, v in
            if v.isEmpty { return "--output needs a file path" }
            o.output = v
            return nil
        },
        .set("--quick") { $0.quick = true },
        .set("--functional-only") { $0.functionalOnly = true },
        .value("--threads", missing: "--threads needs an integer from 1 to 256") { o, v in
            guard let k = parseInt(v), k >= 1 && k <= 256 else { return "--threads needs an integer from 1 to 256, not '\(v)'" }
            o.threads = k
            return nil
        },
        .value("--max-seconds", missing: "--max-seconds needs a number of seconds") { o, v in
            var ok: Int32 = 0
            let s = v.withCString { fips_parse_double($0, &ok) }
            guard ok == 1, s > 0, s <= 86400 else { return "--max-seconds needs a positive number of seconds, not '\(v)'" }
            o.maxSeconds = s
            return nil
        },
    ],
    argument: { _, a in "unexpected argument '\(a)'" })

// MARK: - what is measured

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
        let denseFormats: [Int32] = [FIPS_QFORMAT_Q8, FIPS_QFORMAT_Q4G32, FIPS_QFORMAT_Q3G32, formatF32]
        let tokens = functional ? [s.tokens] : [s.tokens, s.otherTokens]
        for f in denseFormats { for t in tokens { for (n, k) in dense { g.append((f, 0, t, n, k)) } } }
        for r in ranks(d) {
            let roles = [(r, d), (m, r), (r, m), (d, r)]
            for f in [FIPS_QFORMAT_Q8, FIPS_QFORMAT_Q4G32, FIPS_QFORMAT_Q3G32] {
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

// MARK: - JSON

func appendNumber(_ t: inout TextBuffer, _ v: Double, _ decimals: Int = 4) {
    if !v.isFinite { t.append("0"); return }
    t.appendFixed(v, decimals: decimals)
}

func appendStrings(_ t: inout TextBuffer, _ l: [String]) {
    t.append("[")
    for (i, s) in l.enumerated() { if i > 0 { t.append(", ") }; t.appendJSONString(s) }
    t.append("]")
}

func profileJSON(name: String, o: ProfileOptions, system s: SystemInfo, p: Profiler,
                 bandwidth: (read: [Double], copy: [Double], bufferBytes: Int, threads: [Int])) -> TextBuffer {
    var t = TextBuffer()
    t.append("{\n  \"schema\": \"fips-profile\",\n  \"schema_version\": \(profileSchemaVersion),\n  \"name\": ")
    t.appendJSONString(name)
    t.append(",\n  \"generator\": ")
    t.appendJSONString(generatorName)
    t.append(",\n  \"functional_only\": \(o.functionalOnly ? "true" : "false"),\n  \"quick\": \(o.quick ? "true" : "false")")
    t.append(",\n  \"truncated\": \(p.truncated ? "true" : "false")")
    t.append(",\n  \"system\": {\n    \"arch\": ")
    t.appendJSONString(s.arch)
    t.append(",\n    \"cpu_model\": ")
    t.appendJSONString(s.cpuModel)
    t.append(",\n    \"features\": ")
    appendStrings(&t, s.features)
    t.append(",\n    \"hwcap\": " + (s.hwcap.map { "\($0)" } ?? "null"))
    t.append(",\n    \"hwcap2\": " + (s.hwcap2.map { "\($0)" } ?? "null"))
    t.append(",\n    \"online_cpus\": \(s.onlineCpus),\n    \"usable_cpus\": \(s.usableCpus),\n    \"clusters\": [")
    for (i, c) in s.clusters.enumerated() {
        t.append(i == 0 ? "\n      {\"cpus\": [" : ",\n      {\"cpus\": [")
        for (j, cpu) in c.cpus.enumerated() { t.append(j == 0 ? "\(cpu)" : ", \(cpu)") }
        t.append("], \"part\": ")
        if let part = c.part { t.appendJSONString(part) } else { t.append("null") }
        t.append(", \"core\": ")
        t.appendJSONString(c.core)
        t.append(", \"max_freq_khz\": " + (c.maxFreqKHz.map { "\($0)" } ?? "null") + "}")
    }
    t.append("\n    ],\n    \"page_size\": \(s.pageSize),\n    \"mem_total_bytes\": \(s.memTotalBytes),\n    \"mem_available_bytes\": \(s.memAvailableBytes)")
    t.append(",\n    \"cgroup_memory_limit_bytes\": " + (s.cgroupMemoryLimitBytes.map { "\($0)" } ?? "null"))
    t.append(",\n    \"cgroup_version\": " + (s.cgroupVersion.map { "\($0)" } ?? "null"))
    t.append("\n  },\n  \"kernels\": {\"best\": ")
    t.appendJSONString(kernelText(fips_qgemm_best_kernel()))
    t.append(", \"used\": ")
    t.appendJSONString(kernelText(p.kernel))
    var supported = [String]()
    for k in 0..<FIPS_QKERNEL_COUNT where fips_qgemm_kernel_supported(k) == 1 { supported.append(kernelText(k)) }
    t.append(", \"supported\": ")
    appendStrings(&t, supported)
    t.append("},\n  \"threads\": [")
    for (i, n) in bandwidth.threads.enumerated() { t.append(i == 0 ? "\(n)" : ", \(n)") }
    t.append("],\n  \"memory_bandwidth\": {\"read_gbs\": [")
    for (i, v) in bandwidth.read.enumerated() { if i > 0 { t.append(", ") }; appendNumber(&t, v, 2) }
    t.append("], \"copy_gbs\": [")
    for (i, v) in bandwidth.copy.enumerated() { if i > 0 { t.append(", ") }; appendNumber(&t, v, 2) }
    t.append("], \"buffer_bytes\": \(bandwidth.bufferBytes)},\n  \"gemm\": [")
    for (i, g) in p.gemm.enumerated() {
        t.append(i == 0 ? "\n    {\"format\": \"" : ",\n    {\"format\": \"")
        t.append(formatName(g.format))
        t.append("\", \"sparsity\": ")
        appendNumber(&t, g.sparsity, 2)
        t.append(", \"m\": \(g.m), \"n\": \(g.n), \"k\": \(g.k), \"threads\": \(g.threads), \"ms\": ")
        appendNumber(&t, g.ms)
        t.append(", \"runs\": \(g.runs)}")
    }
    t.append("\n  ],\n  \"vit\": [")
    for (i, v) in p.vit.enumerated() {
        t.append(i == 0 ? "\n    {" : ",\n    {")
        t.append("\"tokens\": \(v.tokens), \"dim\": \(v.dim), \"heads\": \(v.heads), \"mlp_dim\": \(v.mlpDim), \"patch_size\": \(v.patchSize)")
        t.append(", \"attention\": \"\(v.int8Attention ? "int8" : "f32")\", \"integer_nonlinear\": \(v.integerNonlinear ? "true" : "false")")
        t.append(", \"threads\": \(v.threads), \"block_other_ms\": ")
        appendNumber(&t, v.blockOtherMs)
        t.append(", \"fixed_ms\": ")
        appendNumber(&t, v.fixedMs)
        t.append(", \"runs\": \(v.runs)}")
    }
    t.append("\n  ],\n  \"ops\": [")
    for (i, op) in p.ops.enumerated() {
        t.append(i == 0 ? "\n    {\"op\": " : ",\n    {\"op\": ")
        t.appendJSONString(op.op)
        t.append(", \"rows\": \(op.rows), \"cols\": \(op.cols), \"threads\": \(op.threads), \"ms\": ")
        appendNumber(&t, op.ms)
        t.append("}")
    }
    t.append("\n  ],\n  \"elapsed_seconds\": ")
    appendNumber(&t, p.elapsed, 1)
    t.append("\n}\n")
    return t
}

func kernelText(_ k: Int32) -> String { kernelName(k, unknown: "unknown") }

func hostName() -> String {
    if let h = readText("/proc/sys/kernel/hostname", cap: 256) {
        let v = trim(h)
        var ok = !v.isEmpty
        for b in v where !(b == 45 || b == 46 || b == 95 || (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)) { ok = false }
        if ok { return text(v) }
    }
    return "device"
}

func parentDirectory(_ path: String) -> String? {
    let b = Array(path.utf8)
    guard let slash = b.lastIndex(of: 47), slash > 0 else { return nil }
    return text(Array(b[..<slash]))
}

public func profileMain(_ args: [String]) -> Int32 {
    profileFlags.run(args, program: "fips-profile", usage: profileUsage, profile)
}

func profile(_ o: ProfileOptions) -> Int32 {
    let name = o.name ?? hostName()
    let out = o.output ?? "profiles/\(name).json"
    if let dir = parentDirectory(out) {
        let e = fips_mkdir_p(dir)
        if e != 0 { printLine("fips-profile: \(dir): cannot create the output directory: \(errnoText(e))", fd: 2); return 1 }
    }
    if kernelText(fips_qgemm_env_kernel()) == "unknown" {
        printLine("fips-profile: FIPS_KERNEL names a kernel this CPU cannot run (or no kernel)", fd: 2); return 2
    }
    let system = probeSystem()
    let p = Profiler(o)
    let bw = p.run(system: system)
    let json = profileJSON(name: name, o: o, system: system, p: p, bandwidth: bw)
    let e = json.bytes.withUnsafeBufferPointer { fips_write_file_atomic(out, $0.baseAddress, $0.count) }
    if e != 0 { printLine("fips-profile: \(out): cannot write: \(errnoText(e))", fd: 2); return 1 }
    var line = TextBuffer()
    line.append("fips-profile: wrote \(out): \(p.gemm.count) GEMM, \(p.vit.count) ViT and \(p.ops.count) op timings on \(bw.threads.count) thread count(s) in ")
    line.appendFixed(p.elapsed, decimals: 1)
    line.append(" s")
    if p.truncated { line.append(" (budget spent: the remaining timings were skipped; \"truncated\": true)") }
    if o.functionalOnly { line.append(" (functional only: the timings mean nothing)") }
    line.append("\n")
    line.write(fd: 2)
    return 0
}

/// C entry point for the cross-built program (boards/build links a C main
/// that calls this); the host executable's main.swift calls it too.
@_cdecl("fips_profile_entry")
public func fipsProfileEntry(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    profileMain(programArguments(argc, argv))
}
