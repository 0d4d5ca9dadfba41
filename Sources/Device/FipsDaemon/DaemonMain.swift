import CFipsDaemon
import CFipsSys
import FipsArtifact
import FipsDeviceSupport
import FipsViT

/// fipsd: parse the flags, set up signals, the kernel, the model, the output
/// and the sources, then run the loop until a signal (or stdin's end).
public func daemonMain(_ args: [String]) -> Int32 {
    daemonFlags.run(args, program: "fipsd", usage: daemonUsage, startDaemon)
}

func startDaemon(_ given: DaemonOptions) -> Int32 {
    var opts = given
    // Signals first: the worker threads created below inherit the blocked mask,
    // so SIGTERM/SIGHUP reach only the signalfd.
    let sfd = fipsd_signals_init()
    if sfd < 0 {
        printLine("fipsd: " + DaemonError.signals(errno: -sfd).message, fd: 2)
        return ExitStatus.system
    }
    var exOptions = opts.nonlinear
    if let msg = selectKernel(opts.kernel, into: &exOptions) {
        printLine("fipsd: \(msg)", fd: 2)
        return ExitStatus.usage
    }
    let backend = PooledBackend(threads: opts.threads ?? WorkerPool.defaultThreads)
    let model: LoadedModel
    do {
        model = try LoadedModel(path: opts.model, backend: backend, options: exOptions)
    } catch {
        printLine("fipsd: \(error.message)", fd: 2)
        return ExitStatus.modelOrIO
    }
    if opts.topKGiven, let why = model.classifier.topKRefusal(model: opts.model) {
        printLine("fipsd: \(why)", fd: 2)
        return ExitStatus.usage
    }
    // The served model's planned limits (kept across SIGHUP reloads: the
    // sockets and buffers are sized once).
    for note in opts.resolveLimits(model.artifact) { logLine(note) }
    let camera = opts.resolveCamera(planned: model.artifact.inputLimits)
    for note in camera.notes { logLine(note) }
    if let why = camera.refusal {
        printLine("fipsd: \(why)", fd: 2)
        return ExitStatus.usage
    }
    if let dir = opts.featuresOut {
        let e = fips_mkdir_p(dir)
        if e != 0 { printLine("fipsd: \(dir): cannot create the features directory: \(errnoString(e))", fd: 2); return ExitStatus.modelOrIO }
    }
    let sink: OutputSink
    do {
        sink = try OutputSink(path: opts.output, rotateBytes: opts.rotateBytes)
    } catch {
        printLine("fipsd: \(error.message)", fd: 2)
        return error.exitStatus
    }
    let d = Daemon(options: opts, model: model, backend: backend, exOptions: exOptions, sink: sink, signalFd: sfd)
    do {
        try d.openSources()
    } catch {
        printLine("fipsd: \(error.message)", fd: 2)
        return error.exitStatus
    }
    if !opts.quiet {
        let c = model.artifact.config
        logLine("model \(opts.model): version \(model.version), checksum \(hex8(model.checksum)), \(c.hasHead ? "\(c.numClasses) classes" : "no head (cls_norm)"), integer kernel \(kernelName(model.classifier.executor.kernel)), \(backend.parallelism) threads")
    }
    return d.run()
}

/// C entry point for the cross-built program (boards/build links a C main
/// that calls this); the host executable's main.swift calls daemonMain too.
@_cdecl("fipsd_entry")
public func fipsdEntry(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    daemonMain(programArguments(argc, argv))
}
