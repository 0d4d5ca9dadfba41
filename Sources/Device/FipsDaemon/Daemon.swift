import CFipsDaemon
import CFipsSys
import FipsArtifact
import FipsDeviceSupport
import FipsImage
import FipsViT

/// The daemon: one thread runs a poll() loop over the signalfd, the HTTP
/// listener and its clients, the folder's inotify fd, the camera and stdin,
/// and classifies one frame at a time on the worker pool.
public final class Daemon {
    let o: DaemonOptions
    var model: LoadedModel
    let backend: PooledBackend
    let exOptions: ExecutorOptions
    var metrics = Metrics()
    let sink: OutputSink
    let limits: DecodeLimits
    let signalFd: Int32
    var stopping = false

    // HTTP
    var listenFd: Int32 = -1
    public private(set) var boundPort = 0
    var conns: [HttpConnection] = []
    var nextConnId = 0
    // folder
    var watchFd: Int32 = -1
    var doneDir = ""
    var failedDir = ""
    var pendingFiles: [String] = []
    var pendingHead = 0
    // stdin
    var stdinOpen = false
    var splitter: MjpegSplitter
    var stdinFrame: [UInt8]? = nil
    var stdinInGarbage = false
    // camera
    var camera: CameraSource? = nil
    var cameraReady = false

    var frameNo = [Int](repeating: 0, count: 4)
    /// Round-robin start among the sources with work, so none starves.
    var turn = 0

    init(options: DaemonOptions, model: LoadedModel, backend: PooledBackend, exOptions: ExecutorOptions,
         sink: OutputSink, signalFd: Int32) {
        self.o = options
        self.model = model
        self.backend = backend
        self.exOptions = exOptions
        self.sink = sink
        self.signalFd = signalFd
        var l = DecodeLimits()
        l.maxPixels = options.maxPixels
        l.maxFileBytes = max(options.maxBodyBytes, 64 << 20)
        self.limits = l
        self.splitter = MjpegSplitter(maxFrameBytes: options.maxBodyBytes)
    }

    deinit {
        fipsd_close(listenFd)
        fipsd_close(watchFd)
        for c in conns { fipsd_close(c.fd) }
    }

    // MARK: set-up

    func openSources() throws(DaemonError) {
        if let host = o.listenHost {
            let fd = fipsd_listen(host, Int32(o.listenPort), 64)
            if fd < 0 { throw .listen(host: host, port: o.listenPort, errno: -fd) }
            listenFd = fd
            boundPort = Int(fipsd_local_port(fd))
            let hostText = host.utf8.contains(58) ? "[\(host)]" : host
            logLine("listening on http://\(hostText):\(boundPort) (POST /classify, GET /healthz, GET /metrics)")
        }
        if let dir = o.watch {
            guard fips_path_kind(dir) == 2 else {
                throw .watch(path: dir, errno: fips_path_kind(dir) == 0 ? 2 : 20)
            }
            doneDir = o.doneDir ?? dir + "/done"
            failedDir = o.failedDir ?? dir + "/failed"
            for d in [doneDir, failedDir] {
                let e = fips_mkdir_p(d)
                if e != 0 { throw .watch(path: d, errno: e) }
            }
            let fd = fipsd_watch_dir(dir)
            if fd < 0 { throw .watch(path: dir, errno: -fd) }
            watchFd = fd
            rescanFolder()
            if !o.quiet { logLine("watching \(dir) (\(pendingFiles.count) images waiting; results move to \(doneDir), bad ones to \(failedDir))") }
        }
        if o.stdin {
            stdinOpen = true
        }
        if let dev = o.camera {
            camera = CameraSource(device: dev, width: o.cameraWidth, height: o.cameraHeight, fps: o.cameraFPS, format: o.cameraFormat)
        }
    }

    // MARK: the loop

    public func run() -> Int32 {
        var fds: [Int32] = []
        var events: [Int16] = []
        var revents: [Int16] = []
        enum Slot { case signal, listener, conn(Int), watch, camera, stdin }
        var slots: [Slot] = []
        while !stopping {
            let now = fips_now_ns()
            if let cam = camera, !cameraReady {
                cameraReady = cam.ensureOpen(now: now, metrics: &metrics, quiet: o.quiet)
            }
            fds.removeAll(keepingCapacity: true)
            events.removeAll(keepingCapacity: true)
            slots.removeAll(keepingCapacity: true)
            func add(_ fd: Int32, _ ev: Int32, _ s: Slot) {
                fds.append(fd); events.append(Int16(ev)); slots.append(s)
            }
            add(signalFd, Int32(FIPSD_POLLIN), .signal)
            if listenFd >= 0 { add(listenFd, Int32(FIPSD_POLLIN), .listener) }
            for (i, c) in conns.enumerated() {
                add(c.fd, Int32(c.state == .writing ? FIPSD_POLLOUT : FIPSD_POLLIN), .conn(i))
            }
            if watchFd >= 0 { add(watchFd, Int32(FIPSD_POLLIN), .watch) }
            if cameraReady, let cam = camera { add(cam.fd, Int32(FIPSD_POLLIN), .camera) }
            let readStdin = stdinOpen && !(o.stdinNoDrop && stdinFrame != nil)
            if readStdin { add(0, Int32(FIPSD_POLLIN), .stdin) }

            // Wait for I/O unless a frame is waiting; wake for HTTP deadlines and camera retries.
            var timeout: Int64 = 1000
            if hasWork { timeout = 0 }
            for c in conns { timeout = min(timeout, max(0, (c.deadlineNs - now) / 1_000_000 + 1)) }
            if let cam = camera, !cameraReady { timeout = min(timeout, max(0, (cam.nextAttemptNs - now) / 1_000_000 + 1)) }
            revents = [Int16](repeating: 0, count: fds.count)
            let r = fds.withUnsafeBufferPointer { f in
                events.withUnsafeBufferPointer { e in
                    revents.withUnsafeMutableBufferPointer { rv in
                        fipsd_poll(f.baseAddress, e.baseAddress, rv.baseAddress, Int32(fds.count), Int32(timeout))
                    }
                }
            }
            if r < 0 && r != -Int32(FIPSD_EINTR) {
                logLine("poll failed: \(errnoString(-r))")
                return 1
            }
            var closed: [Int] = []
            if r > 0 {
                for (k, s) in slots.enumerated() where revents[k] != 0 {
                    let ev = Int32(revents[k])
                    switch s {
                    case .signal: handleSignals()
                    case .listener: acceptClients()
                    case .conn(let i): if !service(conns[i], ev) { closed.append(i) }
                    case .watch: readWatch()
                    case .camera: grabCamera()
                    case .stdin: readStdinChunk()
                    }
                }
            }
            // Deadlines: a client that has not sent its request (or taken the answer) in time.
            let after = fips_now_ns()
            for (i, c) in conns.enumerated() where after >= c.deadlineNs && !closed.contains(i) {
                if c.state == .draining { closed.append(i); continue }
                metrics.error("http_timeout")
                if c.state == .reading {
                    if !o.quiet { logLine("http client \(c.id): no complete request within \(o.httpTimeoutMs) ms; closing") }
                    respond(c, 408, Http.errorBody("request not complete within \(o.httpTimeoutMs) ms"))
                    _ = flush(c)
                }
                closed.append(i)
            }
            if !closed.isEmpty {
                closed.sort()
                for i in closed.reversed() {
                    fipsd_close(conns[i].fd)
                    conns.remove(at: i)
                }
            }
            if stopping { break }
            // One frame per turn: the sources take turns.
            processOneFrame()
            if !stdinOpen && stdinFrame == nil && o.stdin && camera == nil && watchFd < 0 && listenFd < 0 {
                if !o.quiet { logLine("standard input ended; exiting") }
                break
            }
        }
        // SIGTERM/SIGINT: the frame in flight has finished (frames run to completion
        // before the next poll); answer nothing new and leave.
        if stopping && !o.quiet { logLine("stopping on signal: \(metrics.frames.reduce(0, +)) frames classified") }
        for c in conns { fipsd_close(c.fd) }
        conns.removeAll()
        return 0
    }

    var hasWork: Bool {
        pendingHead < pendingFiles.count || stdinFrame != nil
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
                reload()
            default:
                break
            }
        }
    }

    func reload() {
        let t0 = fips_now_ns()
        do {
            let m = try LoadedModel(path: o.model, backend: backend, options: exOptions)
            if !sameInput(m.artifact.config, model.artifact.config) && !o.quiet {
                logLine("model reload: input size or preprocessing changed")
            }
            model = m   // the old model is unmapped once nothing refers to it
            metrics.reloadsOK += 1
            logLine("model reloaded: \(o.model) (version \(m.version), checksum \(hex8(m.checksum)), \(m.fileBytes) bytes) in \(Int((fips_now_ns() - t0) / 1_000_000)) ms")
        } catch {
            metrics.reloadsFailed += 1
            metrics.error("model_reload")
            logLine("model reload failed, still serving the previous model (checksum \(hex8(model.checksum))): \(error.message)")
        }
    }

    func sameInput(_ a: ViTConfig, _ b: ViTConfig) -> Bool {
        a.imageSize == b.imageSize && a.resizeShorter == b.resizeShorter
    }

    // MARK: HTTP

    func acceptClients() {
        while true {
            let fd = fipsd_accept(listenFd)
            if fd < 0 {
                if fd != -Int32(FIPSD_EAGAIN) && fd != -Int32(FIPSD_EINTR) {
                    metrics.error("http_accept")
                    logLine("http: accept failed: \(errnoString(-fd))")
                }
                return
            }
            nextConnId += 1
            let c = HttpConnection(fd: fd, id: nextConnId, deadlineNs: fips_now_ns() + Int64(o.httpTimeoutMs) * 1_000_000)
            var active = 0
            for k in conns where k.state != .draining { active += 1 }
            if active >= o.maxConnections {
                metrics.error("http_too_many_connections")
                respond(c, 503, Http.errorBody("too many connections (--max-connections \(o.maxConnections)); retry later"))
                // Answered at once; kept (draining, at most 1 s) only while the
                // table has room, so the client reads the 503 rather than a reset.
                if flush(c) && conns.count < 2 * o.maxConnections + 16 { conns.append(c) } else { fipsd_close(fd) }
                continue
            }
            conns.append(c)
        }
    }

    /// Reads or writes; false when the connection is finished (close it).
    func service(_ c: HttpConnection, _ ev: Int32) -> Bool {
        if c.state == .writing { return flush(c) }
        if c.state == .draining {
            var sink = [UInt8](repeating: 0, count: 16384)
            while true {
                let n = sink.withUnsafeMutableBytes { fipsd_read(c.fd, $0.baseAddress, $0.count) }
                if n == -Int(FIPSD_EAGAIN) { return true }
                if n <= 0 { return false }
            }
        }
        if ev & Int32(FIPSD_POLLIN | FIPSD_POLLHUP | FIPSD_POLLERR) == 0 { return true }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let want = c.head.map { min(65536, $0.headBytes + $0.contentLength - c.buf.count) } ?? 65536
            if want <= 0 { break }
            let n = chunk.withUnsafeMutableBytes { fipsd_read(c.fd, $0.baseAddress, want) }
            if n == -Int(FIPSD_EAGAIN) { break }
            if n < 0 {
                metrics.error("http_read")
                return false
            }
            if n == 0 {
                // The client closed before a complete request.
                if !c.buf.isEmpty { metrics.error("http_incomplete_request") }
                return false
            }
            c.buf.append(contentsOf: chunk[0..<n])
            if c.head == nil {
                let parsed = c.buf.withUnsafeBufferPointer { Http.parseHead($0, maxBody: o.maxBodyBytes) }
                switch parsed {
                case .incomplete: continue
                case .error(let status, let why):
                    metrics.error(status == 413 ? "http_body_too_large" : "http_bad_request")
                    if !o.quiet { logLine("http client \(c.id): \(status) \(why)") }
                    respond(c, status, Http.errorBody(why))
                    return flush(c)
                case .head(let h):
                    c.head = h
                    c.buf.reserveCapacity(h.headBytes + h.contentLength)
                    if h.expectContinue && !c.bodyComplete {
                        let cont = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
                        _ = cont.withUnsafeBytes { fipsd_write(c.fd, $0.baseAddress, $0.count) }
                    }
                }
            }
            if c.bodyComplete { break }
        }
        guard c.bodyComplete, let h = c.head else { return true }
        handleRequest(c, h)
        return flush(c)
    }

    func handleRequest(_ c: HttpConnection, _ h: HttpRequestHead) {
        metrics.httpRequests += 1
        var path = h.path
        if let q = path.utf8.firstIndex(of: 63) { path = String(path[..<q]) }
        switch path {
        case "/classify":
            guard h.method == "POST" else {
                respond(c, 405, Http.errorBody("use POST /classify with an image body"), extra: "Allow: POST\r\n")
                return
            }
            let start = fips_now_ns()
            frameNo[SourceKind.http.rawValue] += 1
            let n = frameNo[SourceKind.http.rawValue]
            let name = "http request \(n)"
            let result: Result<RGBImage, ImageError> = c.buf.withUnsafeBytes { all in
                let body = UnsafeRawBufferPointer(rebasing: all[h.headBytes..<(h.headBytes + h.contentLength)])
                return Classifier.decode(body, name: name, limits: limits)
            }
            let line = finish(result, source: .http, frame: n, file: nil, start: start)
            switch result {
            case .success: respond(c, 200, line)
            case .failure: respond(c, 422, line)
            }
        case "/healthz":
            guard h.method == "GET" || h.method == "HEAD" else { respond(c, 405, Http.errorBody("use GET /healthz"), extra: "Allow: GET\r\n"); return }
            respond(c, 200, Array("ok\n".utf8), contentType: "text/plain; charset=utf-8", headOnly: h.method == "HEAD")
        case "/metrics":
            guard h.method == "GET" || h.method == "HEAD" else { respond(c, 405, Http.errorBody("use GET /metrics"), extra: "Allow: GET\r\n"); return }
            respond(c, 200, metrics.render(model: model), contentType: "text/plain; version=0.0.4; charset=utf-8",
                    headOnly: h.method == "HEAD")
        default:
            metrics.error("http_not_found")
            respond(c, 404, Http.errorBody("no such endpoint \(path): POST /classify, GET /healthz, GET /metrics"))
        }
    }

    func respond(_ c: HttpConnection, _ status: Int, _ body: [UInt8], contentType: String = "application/json",
                 extra: String = "", headOnly: Bool = false) {
        c.out = Http.response(status, contentType: contentType, body: body, extraHeaders: extra)
        if headOnly { c.out.removeLast(body.count) }   // HEAD: the headers (with the length) only
        c.outPos = 0
        c.state = .writing
        c.requestComplete = c.bodyComplete
        c.buf = []
        // The answer must be taken within the timeout too.
        c.deadlineNs = fips_now_ns() + Int64(o.httpTimeoutMs) * 1_000_000
    }

    /// Writes what the socket takes; false when done (or failed). An answer
    /// sent before the whole request arrived (an error) is followed by a
    /// half-close and draining, so the client reads it instead of a reset.
    func flush(_ c: HttpConnection) -> Bool {
        while c.outPos < c.out.count {
            let n = c.out.withUnsafeBytes { fipsd_write(c.fd, $0.baseAddress! + c.outPos, $0.count - c.outPos) }
            if n == -Int(FIPSD_EAGAIN) { return true }
            if n <= 0 {
                metrics.error("http_write")
                return false
            }
            c.outPos += n
        }
        _ = fipsd_shutdown_write(c.fd)
        if c.requestComplete { return false }
        c.state = .draining
        c.deadlineNs = fips_now_ns() + 1_000_000_000
        return true
    }

    // MARK: folder

    func rescanFolder() {
        guard let dir = o.watch else { return }
        var cap = 1 << 16
        while true {
            var names = [CChar](repeating: 0, count: cap)
            let n = names.withUnsafeMutableBufferPointer { fipsd_list_files(dir, $0.baseAddress, cap) }
            if n == -105 /* ENOBUFS */ && cap < (1 << 26) { cap *= 4; continue }
            if n < 0 {
                metrics.error("folder_scan")
                logLine("watch \(dir): cannot list: \(errnoString(Int32(-n)))")
                return
            }
            var found = splitNames(names, Int(n))
            found.sort { lessBytes($0, $1) }
            for f in found { enqueue(f) }
            return
        }
    }

    func enqueue(_ name: String) {
        var i = pendingHead
        while i < pendingFiles.count {
            if pendingFiles[i] == name { return }
            i += 1
        }
        pendingFiles.append(name)
    }

    func readWatch() {
        var names = [CChar](repeating: 0, count: 1 << 16)
        var overflow: Int32 = 0
        let n = names.withUnsafeMutableBufferPointer { fipsd_watch_read(watchFd, $0.baseAddress, $0.count, &overflow) }
        if n < 0 {
            metrics.error("folder_watch")
            logLine("watch: read failed: \(errnoString(Int32(-n)))")
            return
        }
        for f in splitNames(names, Int(n)) where f.utf8.first != 46 { enqueue(f) }
        if overflow != 0 {
            metrics.error("folder_event_overflow")
            logLine("watch: the kernel's event queue overflowed; rescanning the folder")
            rescanFolder()
        }
    }

    func processFolderFile() {
        guard let dir = o.watch, pendingHead < pendingFiles.count else { return }
        let name = pendingFiles[pendingHead]
        pendingHead += 1
        if pendingHead > 256 && pendingHead * 2 > pendingFiles.count {
            pendingFiles.removeFirst(pendingHead)
            pendingHead = 0
        }
        let path = dir + "/" + name
        if fips_path_kind(path) != 1 { return }   // gone already (or not a file any more)
        let start = fips_now_ns()
        frameNo[SourceKind.folder.rawValue] += 1
        let n = frameNo[SourceKind.folder.rawValue]
        let result = Classifier.decode(path: path, limits: limits)
        _ = finish(result, source: .folder, frame: n, file: name, start: start)
        var ok = true
        if case .failure = result { ok = false }
        let target = (ok ? doneDir : failedDir) + "/" + name
        let e = fipsd_rename(path, target)
        if e != 0 {
            metrics.error("folder_move")
            logLine("watch: cannot move \(path) to \(target): \(errnoString(e))")
        }
    }

    // MARK: stdin

    func readStdinChunk() {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { fipsd_read(0, $0.baseAddress, $0.count) }
        if n == -Int(FIPSD_EAGAIN) { return }
        if n <= 0 {
            if n < 0 {
                metrics.error("stdin_read")
                logLine("stdin: read failed: \(errnoString(Int32(-n)))")
            }
            stdinOpen = false
            pumpStdin()
            return
        }
        splitter.append(Array(chunk[0..<n]))
        pumpStdin()
    }

    /// Takes complete frames out of the splitter: all of them, keeping the
    /// newest (live streams: older ones are dropped and counted), or with
    /// --stdin-no-drop one, and only when none is waiting (the rest stay in
    /// the splitter, and stdin is not read until they are used up).
    func pumpStdin() {
        let garbage0 = splitter.garbageBytes, big0 = splitter.oversizedFrames, broken0 = splitter.brokenFrames
        var gotFrame = false
        while !(o.stdinNoDrop && stdinFrame != nil), let f = splitter.next() {
            if stdinFrame != nil { metrics.dropped[SourceKind.stdin.rawValue] += 1 }
            stdinFrame = f
            gotFrame = true
        }
        if splitter.garbageBytes > garbage0 {
            // Once per stretch of junk, not once per read.
            if !stdinInGarbage {
                metrics.error("stdin_not_jpeg")
                logLine("stdin: skipping bytes that are not part of a JPEG (looking for the next start of image)")
            }
            stdinInGarbage = true
        } else if gotFrame {
            stdinInGarbage = false
        }
        if splitter.oversizedFrames > big0 {
            metrics.error("stdin_frame_too_large")
            logLine("stdin: dropped a frame over \(o.maxBodyBytes) bytes (--max-body)")
        }
        if splitter.brokenFrames > broken0 {
            for _ in broken0..<splitter.brokenFrames { metrics.error("stdin_broken_frame") }
            logLine("stdin: dropped \(splitter.brokenFrames - broken0) frame(s) with a broken JPEG marker structure")
        }
        // The stream has ended and every whole frame is out: what is left is a cut frame.
        if !stdinOpen && stdinFrame == nil && splitter.pending > 0 {
            metrics.error("stdin_incomplete_frame")
            logLine("stdin: the stream ended inside a frame (\(splitter.pending) bytes); dropped")
            splitter.discard()
        }
    }

    func processStdinFrame() {
        guard let f = stdinFrame else { return }
        stdinFrame = nil
        let start = fips_now_ns()
        frameNo[SourceKind.stdin.rawValue] += 1
        let n = frameNo[SourceKind.stdin.rawValue]
        let result: Result<RGBImage, ImageError> = f.withUnsafeBytes { b in
            Classifier.decode(b, name: "stdin frame \(n)", limits: limits)
        }
        _ = finish(result, source: .stdin, frame: n, file: nil, start: start)
        if o.stdinNoDrop { pumpStdin() }
    }

    // MARK: camera

    var cameraImage: RGBImage? = nil
    var cameraError: ImageError? = nil
    var cameraStart: Int64 = 0

    func grabCamera() {
        guard let cam = camera else { return }
        let start = fips_now_ns()
        guard let r = cam.grab(now: start, metrics: &metrics, frameNo: frameNo[SourceKind.camera.rawValue] + 1, limits: limits) else {
            if cam.cam == nil { cameraReady = false }
            return
        }
        if cameraImage != nil || cameraError != nil { metrics.dropped[SourceKind.camera.rawValue] += 1 }
        switch r {
        case .success(let img): cameraImage = img; cameraError = nil
        case .failure(let e): cameraError = e; cameraImage = nil
        }
        cameraStart = start
    }

    func processCameraFrame() {
        guard cameraImage != nil || cameraError != nil else { return }
        frameNo[SourceKind.camera.rawValue] += 1
        let n = frameNo[SourceKind.camera.rawValue]
        let result: Result<RGBImage, ImageError>
        if let img = cameraImage { result = .success(img) } else { result = .failure(cameraError!) }
        cameraImage = nil
        cameraError = nil
        _ = finish(result, source: .camera, frame: n, file: nil, start: cameraStart)
    }

    // MARK: frames

    func processOneFrame() {
        for k in 0..<3 {
            let which = (turn + k) % 3
            var did = false
            switch which {
            case 0:
                if pendingHead < pendingFiles.count { processFolderFile(); did = true }
            case 1:
                if stdinFrame != nil { processStdinFrame(); did = true }
            default:
                if cameraImage != nil || cameraError != nil { processCameraFrame(); did = true }
            }
            if did {
                turn = which + 1
                return
            }
        }
    }

    /// Classifies a decoded frame (or reports its error): writes the JSON
    /// line, updates the metrics, and returns the line.
    @discardableResult
    func finish(_ result: Result<RGBImage, ImageError>, source: SourceKind, frame: Int, file: String?, start: Int64) -> [UInt8] {
        var t = TextBuffer()
        t.append("{\"time\": \"")
        t.append(utcNow())
        t.append("\", \"source\": \"\(source.name)\", \"frame\": \(frame)")
        if let f = file {
            t.append(", \"file\": ")
            t.appendJSONString(f)
        }
        switch result {
        case .success(let img):
            let r = model.run(img, startedNs: start)
            metrics.frame(source, seconds: r.totalMs / 1000)
            model.classifier.appendPrediction(to: &t, topK: o.topK)
            t.append(", \"ms\": ")
            t.appendFixed(r.totalMs, decimals: 3)
            t.append(", \"forward_ms\": ")
            t.appendFixed(r.forwardMs, decimals: 3)
        case .failure(let e):
            metrics.error("image_" + errorKind(e))
            logLine("\(source.name): \(e.message)")
            t.append(", \"error\": ")
            t.appendJSONString(e.message)
            t.append(", \"error_kind\": \"\(errorKind(e))\"")
            t.append(", \"ms\": ")
            t.appendFixed(Double(fips_now_ns() - start) / 1e6, decimals: 3)
        }
        t.append("}\n")
        _ = sink.write(t.bytes, metrics: &metrics)
        return t.bytes
    }
}

func splitNames(_ names: [CChar], _ n: Int) -> [String] {
    var out = [String]()
    var cur = [UInt8]()
    for i in 0..<min(n, names.count) {
        let c = names[i]
        if c == 0 {
            if !cur.isEmpty { out.append(String(decoding: cur, as: UTF8.self)) }
            cur = []
        } else {
            cur.append(UInt8(bitPattern: c))
        }
    }
    return out
}

/// Byte-wise string order (no Unicode collation: the same on every build).
func lessBytes(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    for i in 0..<min(x.count, y.count) where x[i] != y[i] { return x[i] < y[i] }
    return x.count < y.count
}

// MARK: entry

public func daemonMain(_ args: [String]) -> Int32 {
    daemonFlags.run(args, program: "fipsd", usage: daemonUsage, startDaemon)
}

func startDaemon(_ opts: DaemonOptions) -> Int32 {
    // Signals first: the worker threads created below inherit the blocked mask,
    // so SIGTERM/SIGHUP reach only the signalfd.
    let sfd = fipsd_signals_init()
    if sfd < 0 {
        printLine("fipsd: " + DaemonError.signals(errno: -sfd).message, fd: 2)
        return 1
    }
    var exOptions = opts.nonlinear
    if let msg = selectKernel(opts.kernel, into: &exOptions) {
        printLine("fipsd: \(msg)", fd: 2)
        return 2
    }
    let backend = PooledBackend(threads: opts.threads ?? WorkerPool.defaultThreads)
    let model: LoadedModel
    do {
        model = try LoadedModel(path: opts.model, backend: backend, options: exOptions)
    } catch {
        printLine("fipsd: \(error.message)", fd: 2)
        return 2
    }
    let sink: OutputSink
    do {
        sink = try OutputSink(path: opts.output, rotateBytes: opts.rotateBytes)
    } catch {
        printLine("fipsd: \(error.message)", fd: 2)
        return 2
    }
    let d = Daemon(options: opts, model: model, backend: backend, exOptions: exOptions, sink: sink, signalFd: sfd)
    do {
        try d.openSources()
    } catch {
        printLine("fipsd: \(error.message)", fd: 2)
        return 2
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
