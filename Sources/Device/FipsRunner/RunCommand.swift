import CFipsSys
import FipsArtifact
import FipsDeviceSupport
import FipsImage
import FipsKernels
import FipsViT

public func runMain(_ args: [String]) -> Int32 {
    runFlags.run(args, program: "fips-run", usage: runUsage, run)
}

func run(_ opts: RunOptions) -> Int32 {
    let started = fips_now_ns()
    let backend = PooledBackend(threads: opts.threads ?? WorkerPool.defaultThreads)
    var exOptions = opts.nonlinear
    if let msg = selectKernel(opts.kernel, into: &exOptions) {
        printLine("fips-run: \(msg)", fd: 2)
        return ExitStatus.usage
    }
    let model: Classifier
    do {
        model = try Classifier(path: opts.model, backend: backend, options: exOptions)
    } catch {
        printLine("fips-run: \(error.message)", fd: 2)
        return ExitStatus.modelOrIO
    }
    if opts.topKGiven, let why = model.topKRefusal(model: opts.model) {
        printLine("fips-run: \(why)", fd: 2)
        return ExitStatus.usage
    }
    if let dir = opts.featuresOut {
        let e = fips_mkdir_p(dir)
        if e != 0 { printLine("fips-run: \(dir): cannot create features directory: \(errnoText(e))", fd: 2); return ExitStatus.modelOrIO }
    }
    let planned = PlannedLimits(model: opts.model, model.artifact, maxPixels: opts.maxPixels, maxInputBytes: opts.maxInputBytes,
                                fallback: InputLimits(maxPixels: DecodeLimits.defaultMaxPixels, maxInputBytes: 64 << 20,
                                                      maxConnections: 1, budgetBytes: 0),
                                inputBytesFlag: "--max-input-bytes")
    for note in planned.notes { printLine("fips-run: \(note)", fd: 2) }
    if opts.verbose { printModelFigures(opts, model, planned, exOptions, backend) }

    var timing: BlockTiming? = opts.perBlock ? BlockTiming(depth: model.config.depth) : nil
    defer { timing?.free() }
    model.executor.blockTimes = timing?.current
    var coldStartMs: Double? = nil, coldStartPrinted = false
    var failures = 0
    var limits = planned.decodeLimits
    if !opts.fullDecode { limits = model.decodeLimits(limits) }
    for path in opts.images {
        let img: RGBImage
        let tDecode = fips_now_ns()
        switch Classifier.decode(path: path, limits: limits) {
        case .success(let i): img = i
        case .failure(let error):
            printLine("fips-run: \(error.message)", fd: 2)
            failures += 1
            continue
        }
        let tPre = fips_now_ns()
        model.preprocess(img)
        let tReady = fips_now_ns()
        if opts.verbose { printDecodeFigures(path, img, decodeNs: tPre - tDecode, preprocessNs: tReady - tPre) }
        let decodeMs = Double(tReady - tDecode) / 1e6
        var times = [Double]()
        for _ in 0..<(opts.benchRuns ?? 1) {
            let t0 = fips_now_ns()
            model.forward()
            let t1 = fips_now_ns()
            times.append(Double(t1 - t0) / 1e6)
            if opts.perBlock && coldStartMs == nil { coldStartMs = Double(t1 - started) / 1e6 }
            timing?.record()
        }
        var line = TextBuffer()
        line.append("{\"image\": ")
        line.appendJSONString(path)
        appendTimes(&line, decodeMs: decodeMs, forwardMs: times, benchRuns: opts.benchRuns)
        if let c = coldStartMs, !coldStartPrinted {   // the first image that ran
            line.append(", \"cold_start_ms\": ")
            line.appendFixed(c, decimals: 3)
            coldStartPrinted = true
        }
        model.appendPrediction(to: &line, topK: opts.topK, embedding: opts.embedding)
        if let dir = opts.featuresOut {
            let out = dir + "/" + pathStem(path) + ".npy"
            let e = NpyWriter.write(model.features, shape: [model.config.tokenCount, model.config.dim], to: out)
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
        timing?.write(image: path)
        timing?.reset()
    }
    if opts.verbose {
        printLine("peak RSS \(fips_peak_rss_bytes()) bytes", fd: 2)
    }
    return failures == 0 ? ExitStatus.ok : ExitStatus.someInputsFailed
}

/// "ms" is decode + preprocess + forward, as in fipsd's lines, with the parts
/// beside it; with --bench, the forward pass's median, minimum and maximum.
func appendTimes(_ line: inout TextBuffer, decodeMs: Double, forwardMs unsorted: [Double], benchRuns: Int?) {
    let times = unsorted.sorted()
    let forwardMs = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
    line.append(", \"ms\": ")
    line.appendFixed(decodeMs + forwardMs, decimals: 3)
    line.append(", \"decode_ms\": ")
    line.appendFixed(decodeMs, decimals: 3)
    line.append(", \"forward_ms\": ")
    line.appendFixed(forwardMs, decimals: 3)
    if let runs = benchRuns {
        line.append(", \"runs\": \(runs), \"forward_min_ms\": ")
        line.appendFixed(times[0], decimals: 3)
        line.append(", \"forward_max_ms\": ")
        line.appendFixed(times[times.count - 1], decimals: 3)
    }
}

/// `--verbose`: the model, kernel, thread and memory figures on stderr.
func printModelFigures(_ opts: RunOptions, _ model: Classifier, _ limits: PlannedLimits, _ exOptions: ExecutorOptions,
                       _ backend: PooledBackend) {
    let artifact = model.artifact, executor = model.executor
    var t = TextBuffer()
    t.append("model \(opts.model): version \(artifact.version), \(artifact.tensors.count) tensors, \(artifact.fileBytes) bytes mapped, activation arena \(executor.arenaBytes) bytes\n")
    let io = ClassifierBuffers(config: model.config).bytes
    let inputs = limits.worstCaseBytes(cropSize: model.config.cropSize, connections: false)
    let bound = artifact.fileBytes + executor.arenaBytes + io + inputs
    t.append("memory bound: artifact \(artifact.fileBytes) + arena \(executor.arenaBytes) + run buffers \(io) + inputs \(inputs) = \(bound) bytes")
    if let p = artifact.inputLimits { t.append(" of the plan's budget \(p.budgetBytes / 1024) KiB") }
    t.append(" (plus the program; inputs: one image of up to \(limits.maxPixels) pixels decoded, \(limits.maxInputBytes) bytes encoded)\n")
    t.append("weights: \(weightSummary(artifact))\n")
    t.append("integer kernel \(kernelName(executor.kernel))\(executor.isInteger ? "" : " (unused: no packed weights)"), attention \(executor.integerAttention ? "int8" : "fp32"), softmax \(form(exOptions.softmax)), GELU \(form(exOptions.gelu)), LayerNorm \(form(exOptions.layerNorm))\n")
    t.append("threads \(backend.parallelism) (\(fips_cpu_count()) CPUs available)\n")
    t.write(fd: 2)
}

/// `--verbose`, per image: the size it was decoded at and the decode and
/// preprocessing times (Benchmarks/decode_speed.py reads this line).
func printDecodeFigures(_ path: String, _ img: RGBImage, decodeNs: Int64, preprocessNs: Int64) {
    var t = TextBuffer()
    t.append("image \(path): decoded \(img.width)x\(img.height), decode_ms ")
    t.appendFixed(Double(decodeNs) / 1e6, decimals: 3)
    t.append(", preprocess_ms ")
    t.appendFixed(Double(preprocessNs) / 1e6, decimals: 3)
    t.append("\n")
    t.write(fd: 2)
}

func form(_ m: NonlinearityMode) -> String { m == .integer ? "integer" : "float" }

/// Bytes per tensor format, e.g. "f32 1580736 B, q8 21233664 B".
func weightSummary(_ a: Artifact) -> String {
    var s = ""
    for (i, f) in a.storedBytesByFormat().formats.enumerated() { s += (i == 0 ? "" : ", ") + "\(f.name) \(f.bytes) B" }
    return s
}

/// C entry point for the cross-built program (boards/build links a C main
/// that calls this); the host executable's main.swift calls runMain too.
@_cdecl("fips_run_entry")
public func fipsRunMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runMain(programArguments(argc, argv))
}
// Not `fips_run_main`: SwiftPM names the host executable's own entry point
// `<module>_main`, and the two would collide at link time.
