import CFipsDaemon
import CFipsSys
import FipsDeviceSupport
import FipsImage

/// `--listen`: the HTTP listener and its clients. POST /classify is
/// classified at once, in the loop's turn for this connection; GET /healthz
/// and GET /metrics answer from the shared state.
final class HttpSource: FrameSource {
    let ctx: FrameContext
    let listenFd: Int32
    let boundPort: Int
    var conns: [HttpConnection] = []
    var nextConnId = 0
    /// Connections finished in this poll round, closed by `afterPoll`.
    var closed: [Int] = []

    var o: DaemonOptions { ctx.o }

    init(host: String, port: Int, ctx: FrameContext) throws(DaemonError) {
        self.ctx = ctx
        let fd = fipsd_listen(host, Int32(port), 64)
        if fd < 0 { throw .listen(host: host, port: port, errno: -fd) }
        listenFd = fd
        boundPort = Int(fipsd_local_port(fd))
        let hostText = host.utf8.contains(58) ? "[\(host)]" : host
        logLine("listening on http://\(hostText):\(boundPort) (POST /classify, GET /healthz, GET /metrics)")
    }

    deinit {
        fipsd_close(listenFd)
        closeAll()
    }

    func closeAll() {
        for c in conns { fipsd_close(c.fd) }
        conns.removeAll()
    }

    // MARK: the loop's questions

    /// Tag 0 is the listener, tag i + 1 connection i.
    func register(_ poll: inout PollSet, now: Int64) {
        poll.add(listenFd, Int32(FIPSD_POLLIN), tag: 0)
        for (i, c) in conns.enumerated() {
            poll.add(c.fd, Int32(c.state == .writing ? FIPSD_POLLOUT : FIPSD_POLLIN), tag: i + 1)
        }
    }

    /// Wake for the clients' deadlines.
    func waitLimitMs(now: Int64) -> Int64 {
        var t = Int64.max
        for c in conns { t = min(t, max(0, (c.deadlineNs - now) / 1_000_000 + 1)) }
        return t
    }

    func ready(tag: Int, revents: Int32) {
        if tag == 0 { acceptClients(); return }
        if !service(conns[tag - 1], revents) { closed.append(tag - 1) }
    }

    /// Deadlines: a client that has not sent its request (or taken the answer)
    /// in time. Then the finished connections are closed.
    func afterPoll() {
        let after = fips_now_ns()
        for (i, c) in conns.enumerated() where after >= c.deadlineNs && !closed.contains(i) {
            if c.state == .draining { closed.append(i); continue }
            ctx.metrics.error("http_timeout")
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
            closed.removeAll()
        }
    }

    // MARK: connections

    func acceptClients() {
        while true {
            let fd = fipsd_accept(listenFd)
            if fd < 0 {
                if fd != -Int32(FIPSD_EAGAIN) && fd != -Int32(FIPSD_EINTR) {
                    ctx.metrics.error("http_accept")
                    logLine("http: accept failed: \(errnoString(-fd))")
                }
                return
            }
            nextConnId += 1
            let c = HttpConnection(fd: fd, id: nextConnId, deadlineNs: fips_now_ns() + Int64(o.httpTimeoutMs) * 1_000_000)
            var active = 0
            for k in conns where k.state != .draining { active += 1 }
            if active >= o.maxConnections {
                ctx.metrics.error("http_too_many_connections")
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
        switch readRequest(c) {
        case .waiting: return true
        case .closed: return false
        case .answered: return flush(c)
        case .complete(let h):
            handleRequest(c, h)
            return flush(c)
        }
    }

    enum ReadOutcome { case waiting, closed, answered, complete(HttpRequestHead) }

    /// Reads what the socket has of the request; parses its head once it is in.
    func readRequest(_ c: HttpConnection) -> ReadOutcome {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let want = c.head.map { min(65536, $0.headBytes + $0.contentLength - c.buf.count) } ?? 65536
            if want <= 0 { break }
            let n = chunk.withUnsafeMutableBytes { fipsd_read(c.fd, $0.baseAddress, want) }
            if n == -Int(FIPSD_EAGAIN) { break }
            if n < 0 {
                ctx.metrics.error("http_read")
                return .closed
            }
            if n == 0 {
                // The client closed before a complete request.
                if !c.buf.isEmpty { ctx.metrics.error("http_incomplete_request") }
                return .closed
            }
            c.buf.append(contentsOf: chunk[0..<n])
            if c.head == nil {
                let parsed = c.buf.withUnsafeBufferPointer { Http.parseHead($0, maxBody: o.maxBodyBytes) }
                switch parsed {
                case .incomplete: continue
                case .error(let status, let why):
                    ctx.metrics.error(status == 413 ? "http_body_too_large" : "http_bad_request")
                    if !o.quiet { logLine("http client \(c.id): \(status) \(why)") }
                    respond(c, status, Http.errorBody(why))
                    return .answered
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
        guard c.bodyComplete, let h = c.head else { return .waiting }
        return .complete(h)
    }

    func handleRequest(_ c: HttpConnection, _ h: HttpRequestHead) {
        var path = h.path
        if let q = path.utf8.firstIndex(of: 63) { path = String(path[..<q]) }
        // The metrics' handler label: the endpoints, and "other" for the rest (no
        // label per unknown path, so a scanner cannot grow the series).
        c.handler = (path == "/classify" || path == "/healthz" || path == "/metrics") ? path : "other"
        switch path {
        case "/classify":
            guard h.method == "POST" else {
                respond(c, 405, Http.errorBody("use POST /classify with an image body"), extra: "Allow: POST\r\n")
                return
            }
            let start = fips_now_ns()
            let n = ctx.nextFrame(.http)
            let name = "http request \(n)"
            let limits = ctx.limits
            var upload = h.headBytes..<(h.headBytes + h.contentLength)
            if let boundary = h.multipartBoundary {
                let part = c.buf.withUnsafeBytes { all in
                    Multipart.filePart(UnsafeRawBufferPointer(rebasing: all[upload]), boundary: boundary)
                }
                switch part {
                case .success(let r): upload = (upload.lowerBound + r.lowerBound)..<(upload.lowerBound + r.upperBound)
                case .failure(let e):
                    ctx.metrics.error("http_bad_request")
                    respond(c, 400, Http.errorBody(e.message))
                    return
                }
            }
            let result: Result<RGBImage, ImageError> = c.buf.withUnsafeBytes { all in
                Classifier.decode(UnsafeRawBufferPointer(rebasing: all[upload]), name: name, limits: limits)
            }
            let line = ctx.finish(result, source: .http, frame: n, file: nil, start: start)
            switch result {
            case .success: respond(c, 200, line)
            case .failure: respond(c, 422, line)
            }
        case "/healthz":
            guard h.method == "GET" || h.method == "HEAD" else { respond(c, 405, Http.errorBody("use GET /healthz"), extra: "Allow: GET\r\n"); return }
            respond(c, 200, Array("ok\n".utf8), contentType: "text/plain; charset=utf-8", headOnly: h.method == "HEAD")
        case "/metrics":
            guard h.method == "GET" || h.method == "HEAD" else { respond(c, 405, Http.errorBody("use GET /metrics"), extra: "Allow: GET\r\n"); return }
            respond(c, 200, ctx.metrics.render(model: ctx.model), contentType: "text/plain; version=0.0.4; charset=utf-8",
                    headOnly: h.method == "HEAD")
        default:
            ctx.metrics.error("http_not_found")
            respond(c, 404, Http.errorBody("no such endpoint \(path): POST /classify, GET /healthz, GET /metrics"))
        }
    }

    func respond(_ c: HttpConnection, _ status: Int, _ body: [UInt8], contentType: String = "application/json",
                 extra: String = "", headOnly: Bool = false) {
        ctx.metrics.httpAnswer(handler: c.handler, code: status)
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
                ctx.metrics.error("http_write")
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
}
