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
    public var images: [String] = []
}

public let runUsage = """
USAGE: fips-run --model <model.fips> [--top-k <k>] [--features-out <dir>] [--max-pixels <n>] [--threads <n>] [--verbose] <image> ...

Runs a .fips model (fp32 or int8) on JPEG/PNG images with the portable device
kernels and prints one JSON line per image:
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
  --verbose              print model, thread and memory figures on stderr
  -h, --help             show this help

EXAMPLES:
  fips-run --model dinov2_s.fips photos/chelsea.png photos/coffee.png
  fips-run --model classifier.fips --top-k 3 --features-out feats/ frame.jpg
  fips-run --model dinov2_s.fips --threads 2 --verbose photos/chelsea.png
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
    do {
        artifact = try Artifact(path: opts.model)
        executor = try ViTExecutor(artifact: artifact, backend: backend)
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
        t.append("threads \(backend.parallelism) (\(fips_cpu_count()) CPUs available)\n")
        t.write(fd: 2)
    }

    let pre = Preprocessor(resizeShorter: c.resizeShorter, cropSize: c.cropSize, mean: c.mean, std: c.std)
    let input = UnsafeMutablePointer<Float>.allocate(capacity: c.channels * c.imageSize * c.imageSize)
    let features = UnsafeMutablePointer<Float>.allocate(capacity: c.tokenCount * c.dim)
    let logits = UnsafeMutablePointer<Float>.allocate(capacity: max(1, c.numClasses))
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
        let t0 = fips_now_ns()
        executor.forward(batch: 1, images: input, features: features, logits: c.hasHead ? logits : nil)
        let ms = Double(fips_now_ns() - t0) / 1e6

        var line = TextBuffer()
        line.append("{\"image\": ")
        line.appendJSONString(path)
        line.append(", \"ms\": ")
        line.appendFixed(ms, decimals: 3)
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

func softmax(_ x: UnsafePointer<Float>, _ n: Int) -> [Float] {
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
func topIndices(_ v: [Float], k: Int) -> [Int] {
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
