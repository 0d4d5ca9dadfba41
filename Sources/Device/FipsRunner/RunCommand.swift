import CFipsKernels
import CFipsSys
import FipsArtifact
import FipsImage
import FipsKernels
import FipsViT

/// `fips-run`: classify (or embed) images with a `.fips` model using the
/// device kernels only. Device code: hand-rolled argument parsing because
/// swift-argument-parser does not build as Embedded Swift.
public struct RunOptions {
    public var model: String = ""
    public var topK: Int = 5
    public var featuresOut: String? = nil
    public var maxPixels: Int = 40_000_000
    public var verbose = false
    /// Threads for the fp32 kernels; nil: the CPUs this process may use.
    public var threads: Int? = nil
    /// Integer GEMM kernel by name; nil: FIPS_KERNEL, else the CPU's best.
    public var kernel: String? = nil
    /// The non-linearities' forms (`--integer-nonlinear`).
    public var nonlinear = ExecutorOptions()
    /// Forward passes per image when benchmarking (nil: one, timed as usual).
    public var benchRuns: Int? = nil
    public var images: [String] = []
}

public let runUsage = """
USAGE: fips-run --model <model.fips> [--top-k <k>] [--features-out <dir>] [--max-pixels <n>]
                [--threads <n>] [--kernel <name>] [--integer-nonlinear <list>] [--bench <runs>]
                [--verbose] <image> ...

Runs a .fips model on JPEG/PNG images with the device kernels: fp32 weights
(version 1 or 2), or packed 8/4/3-bit weights (version 2, from `fips quantize`
or `--bits`) on the integer GEMM kernels with int8 activations and int32
accumulation. Prints one JSON line per image:
  {"image": ..., "ms": <forward time>, "top": [{"label": ..., "score": ...}, ...]}
or, for a backbone without a classification head, "cls_norm": <L2 norm of the CLS feature>.
A bad image prints one error line on stderr naming the file; the others are
still processed, and the exit status is 1.

OPTIONS:
  --model <path>         the model artifact (from `fips import` or `fips compress`)
  --top-k <k>            labels to print per image (default 5)
  --features-out <dir>   also write the final LayerNorm output of each image to
                         <dir>/<image stem>.npy (float32, [tokens, dim])
  --max-pixels <n>       refuse images whose header declares more pixels (default 40000000)
  --threads <n>          worker threads, 1 to 256 (default: the CPUs this process may
                         use: the affinity mask, so `taskset -c 0,1` means 2); the
                         results are bit-identical for every thread count
  --kernel <name>        integer GEMM kernel: scalar, avx2, avx512vnni, neon, neon-dotprod
                         (default: FIPS_KERNEL, else the fastest this CPU runs); every
                         kernel gives bit-identical results
  --integer-nonlinear <list>
                         I-ViT integer versions of softmax, gelu, layernorm (comma-
                         separated, or all) instead of the float ones
  --bench <runs>         run each image <runs> times and report the median, min and max
                         forward time ("ms" is then the median)
  --verbose              print model, kernel, thread and memory figures on stderr:
                         artifact bytes + activation arena bytes = the runtime's peak
  -h, --help             show this help

EXAMPLES:
  fips-run --model dinov2_s.fips photos/chelsea.png photos/coffee.png
  fips-run --model classifier.fips --top-k 3 --features-out feats/ frame.jpg
  fips-run --model dinov2_s.fips --threads 2 --verbose photos/chelsea.png
  fips-run --model dinov2_s.q8.fips --threads 2 --bench 20 photos/chelsea.png
  FIPS_KERNEL=scalar fips-run --model fips33.q4.fips --integer-nonlinear all frame.jpg
"""

/// The pool's own limit (FIPS_POOL_MAX_THREADS).
let maxThreads = 256

enum ParseResult {
    case run(RunOptions)
    case help
    case failure(String)
}

func parseRunArguments(_ args: [String]) -> ParseResult {
    var o = RunOptions()
    var i = 0
    func value(_ flag: String) -> String? {
        i += 1
        return i < args.count ? args[i] : nil
    }
    while i < args.count {
        let a = args[i]
        switch a {
        case "-h", "--help": return .help
        case "--model":
            guard let v = value(a) else { return .failure("--model needs a path") }
            o.model = v
        case "--top-k":
            guard let v = value(a), let k = parseInt(v), k >= 1 else { return .failure("--top-k needs a positive integer") }
            o.topK = k
        case "--features-out":
            guard let v = value(a) else { return .failure("--features-out needs a directory") }
            o.featuresOut = v
        case "--max-pixels":
            guard let v = value(a), let k = parseInt(v), k >= 1 else { return .failure("--max-pixels needs a positive integer") }
            o.maxPixels = k
        case "--threads":
            guard let v = value(a) else { return .failure("--threads needs an integer from 1 to \(maxThreads)") }
            guard let k = parseInt(v), k >= 1 && k <= maxThreads else {
                return .failure("--threads needs an integer from 1 to \(maxThreads), not '\(v)'")
            }
            o.threads = k
        case "--kernel":
            guard let v = value(a) else { return .failure("--kernel needs a name (scalar, avx2, avx512vnni, neon, neon-dotprod)") }
            o.kernel = v
        case "--integer-nonlinear":
            guard let v = value(a) else { return .failure("--integer-nonlinear needs softmax, gelu, layernorm (comma-separated) or all") }
            if let bad = o.nonlinear.selectIntegerNonlinearities(v) {
                return .failure("--integer-nonlinear: '\(bad)' is not softmax, gelu, layernorm or all")
            }
        case "--bench":
            guard let v = value(a), let k = parseInt(v), k >= 1 && k <= 100_000 else {
                return .failure("--bench needs a run count from 1 to 100000")
            }
            o.benchRuns = k
        case "--verbose", "-v": o.verbose = true
        default:
            if a.utf8.first == 45 && a.utf8.count > 1 { return .failure("unknown option \(a)") }
            o.images.append(a)
        }
        i += 1
    }
    if o.model.isEmpty { return .failure("missing --model") }
    if o.images.isEmpty { return .failure("no images given") }
    return .run(o)
}

/// The stem of a path: "dir/cat.photo.png" -> "cat.photo".
public func pathStem(_ path: String) -> String {
    var bytes = Array(path.utf8)
    while bytes.count > 1 && bytes.last == 47 { bytes.removeLast() }
    if let slash = bytes.lastIndex(of: 47) { bytes = Array(bytes[(slash + 1)...]) }
    if let dot = bytes.lastIndex(of: 46), dot > 0 { bytes = Array(bytes[..<dot]) }
    return String(decoding: bytes, as: UTF8.self)
}

public func runMain(_ args: [String]) -> Int32 {
    let opts: RunOptions
    switch parseRunArguments(args) {
    case .help:
        printLine(runUsage)
        return 0
    case .failure(let msg):
        printLine("fips-run: \(msg) (see --help)", fd: 2)
        return 2
    case .run(let o):
        opts = o
    }

    let artifact: Artifact
    let executor: ViTExecutor<PooledBackend>
    let backend = PooledBackend(threads: opts.threads ?? WorkerPool.defaultThreads)
    var exOptions = opts.nonlinear
    if let name = opts.kernel {
        let k = name.withCString { fips_qgemm_kernel_by_name($0) }
        if k == -1 {
            printLine("fips-run: --kernel: no kernel named '\(name)' (known: scalar, avx2, avx512vnni, neon, neon-dotprod)", fd: 2)
            return 2
        }
        if k < 0 { printLine("fips-run: --kernel: this CPU cannot run the \(name) kernel", fd: 2); return 2 }
        exOptions.kernel = k
    }
    do {
        artifact = try Artifact(path: opts.model)
        executor = try ViTExecutor(artifact: artifact, backend: backend, options: exOptions)
    } catch {
        printLine("fips-run: \(error.message)", fd: 2)
        return 2
    }
    let c = artifact.config
    if let dir = opts.featuresOut {
        let e = fips_mkdir_p(dir)
        if e != 0 { printLine("fips-run: \(dir): cannot create features directory: \(errnoText(e))", fd: 2); return 2 }
    }
    if opts.verbose {
        var t = TextBuffer()
        t.append("model \(opts.model): version \(artifact.version), \(artifact.tensors.count) tensors, \(artifact.fileBytes) bytes mapped, activation arena \(executor.arenaBytes) bytes\n")
        t.append("memory bound: artifact \(artifact.fileBytes) + arena \(executor.arenaBytes) = \(artifact.fileBytes + executor.arenaBytes) bytes (plus the program and one decoded image)\n")
        t.append("weights: \(weightSummary(artifact))\n")
        t.append("integer kernel \(kernelName(executor.kernel))\(executor.isInteger ? "" : " (unused: no packed weights)"), attention \(executor.integerAttention ? "int8" : "fp32"), softmax \(form(exOptions.softmax)), GELU \(form(exOptions.gelu)), LayerNorm \(form(exOptions.layerNorm))\n")
        t.append("threads \(backend.parallelism) (\(fips_cpu_count()) CPUs available)\n")
        t.write(fd: 2)
    }

    let pre = Preprocessor(resizeShorter: c.resizeShorter, cropSize: c.cropSize, mean: c.mean, std: c.std)
    let io = RunBuffers(config: c)
    let input = UnsafeMutablePointer<Float>.allocate(capacity: io.inputFloats)
    let features = UnsafeMutablePointer<Float>.allocate(capacity: io.featureFloats)
    let logits = UnsafeMutablePointer<Float>.allocate(capacity: io.logitFloats)
    defer { input.deallocate(); features.deallocate(); logits.deallocate() }

    var failures = 0
    var limits = DecodeLimits()
    limits.maxPixels = opts.maxPixels
    for path in opts.images {
        let img: RGBImage
        do {
            img = try ImageDecoder.load(path: path, limits: limits)
        } catch {
            printLine("fips-run: \(error.message)", fd: 2)
            failures += 1
            continue
        }
        pre.tensor(img, into: input)
        var times = [Double]()
        for _ in 0..<(opts.benchRuns ?? 1) {
            let t0 = fips_now_ns()
            executor.forward(batch: 1, images: input, features: features, logits: c.hasHead ? logits : nil)
            times.append(Double(fips_now_ns() - t0) / 1e6)
        }
        times.sort()
        let ms = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2

        var line = TextBuffer()
        line.append("{\"image\": ")
        line.appendJSONString(path)
        line.append(", \"ms\": ")
        line.appendFixed(ms, decimals: 3)
        if let runs = opts.benchRuns {
            line.append(", \"runs\": \(runs), \"min_ms\": ")
            line.appendFixed(times[0], decimals: 3)
            line.append(", \"max_ms\": ")
            line.appendFixed(times[times.count - 1], decimals: 3)
        }
        if c.hasHead {
            line.append(", \"top\": [")
            let probs = softmax(logits, c.numClasses)
            let order = topIndices(probs, k: min(opts.topK, c.numClasses))
            for (i, k) in order.enumerated() {
                line.append(i == 0 ? "{\"label\": " : ", {\"label\": ")
                line.appendJSONString(k < artifact.labels.count ? artifact.labels[k] : "class_\(k)")
                line.append(", \"score\": ")
                line.append(Double(probs[k]), precision: 6)
                line.append("}")
            }
            line.append("]")
        } else {
            var s: Double = 0
            for k in 0..<c.dim { s += Double(features[k]) * Double(features[k]) }
            line.append(", \"cls_norm\": ")
            line.append(s.squareRoot(), precision: 9)
        }
        if let dir = opts.featuresOut {
            let out = dir + "/" + pathStem(path) + ".npy"
            let e = NpyWriter.write(features, shape: [c.tokenCount, c.dim], to: out)
            if e != 0 {
                printLine("fips-run: \(out): cannot write features: \(errnoText(e))", fd: 2)
                failures += 1
            } else {
                line.append(", \"features\": ")
                line.appendJSONString(out)
            }
        }
        line.append("}\n")
        line.write(fd: 1)
    }
    if opts.verbose {
        printLine("peak RSS \(fips_peak_rss_bytes()) bytes", fd: 2)
    }
    return failures == 0 ? 0 : 1
}

func form(_ m: NonlinearityMode) -> String { m == .integer ? "integer" : "float" }

public func kernelName(_ k: Int32) -> String {
    guard let p = fips_qgemm_kernel_name(k) else { return "?" }
    return String(cString: p)
}

/// Bytes per tensor format, e.g. "f32 1580736 B, q8 21233664 B".
func weightSummary(_ a: Artifact) -> String {
    var s = ""
    for (i, f) in a.storedBytesByFormat().formats.enumerated() { s += (i == 0 ? "" : ", ") + "\(f.name) \(f.bytes) B" }
    return s
}

/// Class probabilities from logits (also used by fipsd, so both programs print the same scores).
public func softmax(_ x: UnsafePointer<Float>, _ n: Int) -> [Float] {
    var mx = -Float.greatestFiniteMagnitude
    for i in 0..<n { mx = max(mx, x[i]) }
    var out = [Float](repeating: 0, count: n)
    var sum: Float = 0
    for i in 0..<n {
        let e = FastMath.exp(SIMD8(repeating: x[i] - mx))[0]
        out[i] = e
        sum += e
    }
    for i in 0..<n { out[i] /= sum }
    return out
}

/// Indices of the k largest values, largest first; ties keep the lower index.
public func topIndices(_ v: [Float], k: Int) -> [Int] {
    var chosen = [Int]()
    var taken = [Bool](repeating: false, count: v.count)
    for _ in 0..<k {
        var best = -1
        for i in 0..<v.count where !taken[i] && (best < 0 || v[i] > v[best]) { best = i }
        if best < 0 { break }
        taken[best] = true
        chosen.append(best)
    }
    return chosen
}

/// C entry point for the cross-built program (boards/build links a C main
/// that calls this); the host executable's main.swift calls it too.
@_cdecl("fips_run_entry")
public func fipsRunMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    var args = [String]()
    var i = 1
    while i < Int(argc) {
        if let p = argv[i] { args.append(String(cString: p)) }
        i += 1
    }
    return runMain(args)
}
// Not `fips_run_main`: SwiftPM names the host executable's own entry point
// `<module>_main`, and the two would collide at link time.

/// The per-image buffers `fips-run` allocates next to the executor's arena:
/// the preprocessed input, the final features and the logits. fips-plan
/// counts `bytes` in a model's memory, from this same definition.
public struct RunBuffers {
    public let inputFloats, featureFloats, logitFloats: Int
    public init(config c: ViTConfig) {
        inputFloats = c.channels * c.imageSize * c.imageSize
        featureFloats = c.tokenCount * c.dim
        logitFloats = max(1, c.numClasses)
    }
    public var bytes: Int { 4 * (inputFloats + featureFloats + logitFloats) }
}
