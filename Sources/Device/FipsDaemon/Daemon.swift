import CFipsDaemon
import CFipsSys
import FipsArtifact
import FipsDeviceSupport
import FipsViT

/// The daemon: one thread runs a poll() loop over the signalfd and the
/// sources (HTTP listener and clients, the folder's inotify fd, the camera,
/// stdin), and classifies one frame at a time on the worker pool; the
/// sources with a frame waiting take turns. SIGHUP reloads the model, SIGUSR1
/// reopens the output file (logrotate), and systemd hears about all of it.
public final class Daemon {
    let ctx: FrameContext
    let backend: PooledBackend
    let exOptions: ExecutorOptions
    let signalFd: Int32
    var stopping = false
    var http: HttpSource? = nil
    var folder: FolderSource? = nil
    var stdin: StdinSource? = nil
    var camera: CameraSource? = nil
    var poll = PollSet()
    var notifier = ServiceNotifier()
    /// Round-robin start among the sources with a frame, so none starves.
    var turn = 0

    var o: DaemonOptions { ctx.o }
    public var boundPort: Int { http?.boundPort ?? 0 }

    init(options: DaemonOptions, model: LoadedModel, backend: PooledBackend, exOptions: ExecutorOptions,
         sink: OutputSink, signalFd: Int32) {
        self.ctx = FrameContext(options: options, model: model, sink: sink)
        self.backend = backend
        self.exOptions = exOptions
        self.signalFd = signalFd
    }

    /// The folder first: its done/ and failed/ folders exist before the "listening on" line,
    /// which clients (and Tests/Integration/check_fipsd.py) take as "ready".
    func openSources() throws(DaemonError) {
        if let dir = o.watch { folder = try FolderSource(dir: dir, ctx: ctx) }
        if let host = o.listenHost { http = try HttpSource(host: host, port: o.listenPort, ctx: ctx) }
        if o.stdin { stdin = StdinSource(ctx: ctx) }
        if let dev = o.camera { camera = CameraSource(device: dev, ctx: ctx) }
    }

    // MARK: the loop

    /// The poll owners: 0 is the signalfd.
    enum Owner { static let signal = 0, http = 1, folder = 2, camera = 3, stdin = 4 }

    public func run() -> Int32 {
        notifier.ready(readyStatus())
        var status: Int32 = 0
        while !stopping {
            let now = fips_now_ns()
            notifier.watchdog(now: now)
            poll.reset()
            poll.owner = Owner.signal
            poll.add(signalFd, Int32(FIPSD_POLLIN))
            register(http, Owner.http, now)
            register(folder, Owner.folder, now)
            register(camera, Owner.camera, now)
            register(stdin, Owner.stdin, now)
            // Wait for I/O unless a frame is waiting; wake for HTTP deadlines and camera retries.
            var timeout: Int64 = 1000
            timeout = min(timeout, waitLimit(http, now), waitLimit(folder, now), waitLimit(camera, now), waitLimit(stdin, now),
                          notifier.waitLimitMs(now: now))
            let r = poll.wait(timeoutMs: timeout)
            if r < 0 && r != -Int32(FIPSD_EINTR) {
                logLine("poll failed: \(errnoString(-r))")
                return ExitStatus.system
            }
            if r > 0 {
                for k in 0..<poll.fds.count where poll.revents[k] != 0 {
                    let tag = poll.tags[k], ev = Int32(poll.revents[k])
                    switch poll.owners[k] {
                    case Owner.signal: handleSignals()
                    case Owner.http: http?.ready(tag: tag, revents: ev)
                    case Owner.folder: folder?.ready(tag: tag, revents: ev)
                    case Owner.camera: camera?.ready(tag: tag, revents: ev)
                    default: stdin?.ready(tag: tag, revents: ev)
                    }
                }
            }
            http?.afterPoll()
            if stopping { break }
            // One frame per turn: the sources take turns.
            processOneFrame()
            if let s = stdin, s.ended, camera == nil, folder == nil, http == nil {
                // As fips-run: 1 when some inputs failed (bad frames, bytes that were no image).
                status = s.failures > 0 ? ExitStatus.someInputsFailed : ExitStatus.ok
                if !o.quiet || status != 0 {
                    logLine("standard input ended; exiting" + (status != 0 ? " with status 1: \(s.failures) input(s) on stdin failed" : ""))
                }
                break
            }
        }
        // SIGTERM/SIGINT: the frame in flight has finished (frames run to completion
        // before the next poll); answer nothing new and leave.
        if stopping { notifier.stopping() }
        if stopping && !o.quiet { logLine("stopping on signal: \(ctx.metrics.frames.reduce(0, +)) frames classified") }
        http?.closeAll()
        return status
    }

    func register<S: FrameSource>(_ s: S?, _ owner: Int, _ now: Int64) {
        guard let s = s else { return }
        poll.owner = owner
        s.register(&poll, now: now)
    }

    func waitLimit<S: FrameSource>(_ s: S?, _ now: Int64) -> Int64 {
        s?.waitLimitMs(now: now) ?? Int64.max
    }

    /// Classifies one waiting frame: folder, stdin and camera take turns.
    func processOneFrame() {
        for k in 0..<3 {
            let which = (turn + k) % 3
            let did: Bool
            switch which {
            case 0: did = processFrame(folder)
            case 1: did = processFrame(stdin)
            default: did = processFrame(camera)
            }
            if did {
                turn = which + 1
                return
            }
        }
    }

    func processFrame<S: FrameSource>(_ s: S?) -> Bool {
        guard let s = s, s.hasFrame else { return false }
        s.processFrame()
        return true
    }

    // MARK: signals and reload

    func handleSignals() {
        while true {
            let s = fipsd_signal_next(signalFd)
            if s == 0 { return }
            switch s {
            case Int32(FIPSD_SIGTERM), Int32(FIPSD_SIGINT):
                stopping = true
            case Int32(FIPSD_SIGHUP):
                notifier.reloading()
                reload()
                notifier.ready(readyStatus())
            case Int32(FIPSD_SIGUSR1):
                ctx.sink.reopen(metrics: &ctx.metrics)
            default:
                break
            }
        }
    }

    func reload() {
        let t0 = fips_now_ns()
        do {
            let m = try LoadedModel(path: o.model, backend: backend, options: exOptions)
            if o.topKGiven, let why = m.classifier.topKRefusal(model: o.model) {
                ctx.metrics.reloadsFailed += 1
                ctx.metrics.error("model_reload")
                logLine("model reload failed, still serving the previous model (checksum \(hex8(ctx.model.checksum))): \(why)")
                return
            }
            if !sameInput(m.artifact.config, ctx.model.artifact.config) && !o.quiet {
                logLine("model reload: input size or preprocessing changed")
            }
            ctx.model = m   // the old model is unmapped once nothing refers to it
            ctx.metrics.reloadsOK += 1
            logLine("model reloaded: \(o.model) (version \(m.version), checksum \(hex8(m.checksum)), \(m.fileBytes) bytes) in \(Int((fips_now_ns() - t0) / 1_000_000)) ms")
        } catch {
            ctx.metrics.reloadsFailed += 1
            ctx.metrics.error("model_reload")
            logLine("model reload failed, still serving the previous model (checksum \(hex8(ctx.model.checksum))): \(error.message)")
        }
    }

    /// systemd's STATUS= line (`systemctl status fipsd`): what is served, from where.
    func readyStatus() -> String {
        var parts: [String] = []
        if let h = http { parts.append("http port \(h.boundPort)") }
        if let w = o.watch { parts.append("folder \(w)") }
        if let c = o.camera { parts.append("camera \(c)") }
        if o.stdin { parts.append("stdin") }
        return "serving \(o.model) (checksum \(hex8(ctx.model.checksum))) from \(parts.joined(separator: ", "))"
    }

    func sameInput(_ a: ViTConfig, _ b: ViTConfig) -> Bool {
        a.imageSize == b.imageSize && a.resizeShorter == b.resizeShorter
    }
}
