import CFipsDaemon
import CFipsSys
import FipsDeviceSupport

/// Counters for /metrics, by the Prometheus conventions: every known series
/// exists from the start (at 0), counters end in _total, units in the name,
/// labels that do not grow (no byte counts or times as labels).
/// Single-threaded: only the event loop touches them.
public struct Metrics {
    /// Errors that are not a frame's: the kinds the daemon counts, each from 0.
    public static let errorKinds = [
        "camera_lost", "camera_open", "features_write",
        "folder_event_overflow", "folder_move", "folder_scan", "folder_watch",
        "http_accept", "http_bad_request", "http_body_too_large", "http_incomplete_request", "http_not_found",
        "http_read", "http_timeout", "http_too_many_connections", "http_write",
        "model_reload",
        "output_reopen", "output_rotate", "output_write",
        "stdin_broken_frame", "stdin_frame_too_large", "stdin_incomplete_frame", "stdin_not_jpeg", "stdin_read",
    ]
    /// The HTTP answers every daemon with --listen gives, shown from 0.
    static let httpSeries: [(handler: String, code: Int)] = [
        ("/classify", 200), ("/classify", 422), ("/healthz", 200), ("/metrics", 200),
    ]
    /// Frame time (decode + preprocess + forward) and forward time buckets, as
    /// multiples of the forward time measured when the model was loaded.
    static let frameFactors: [Double] = [0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10, 20, 50]
    static let forwardFactors: [Double] = [0.5, 0.75, 0.9, 1, 1.1, 1.25, 1.5, 2, 3, 5, 10]

    public var frames = [Int](repeating: 0, count: SourceKind.all.count)    // by SourceKind, classified
    public var dropped = [Int](repeating: 0, count: SourceKind.all.count)   // by SourceKind, superseded by a newer frame
    /// Unix time of each source's last classified frame; 0 before the first.
    public var lastFrameTime = [Double](repeating: 0, count: SourceKind.all.count)
    /// Frames that could not be classified, by the JSON line's "error_kind".
    public var frameErrors: [(kind: String, count: Int)] = imageErrorKinds.map { (kind: $0, count: 0) }
    public var errors: [(kind: String, count: Int)] = Metrics.errorKinds.map { (kind: $0, count: 0) }
    public var http: [(handler: String, code: Int, count: Int)] = Metrics.httpSeries.map { (handler: $0.handler, code: $0.code, count: 0) }
    public var frameSeconds: Histogram
    public var forwardSeconds: Histogram
    public var reloadsOK = 0
    public var reloadsFailed = 0
    public let startTime = fipsd_unix_time()

    /// `expectedForward`: seconds of one forward pass on this board (measured at load).
    public init(expectedForward: Double) {
        let e = expectedForward > 0 ? expectedForward : 0.1
        frameSeconds = Histogram(around: e, factors: Metrics.frameFactors)
        forwardSeconds = Histogram(around: e, factors: Metrics.forwardFactors)
    }

    public mutating func frame(_ s: SourceKind, seconds: Double, forwardSeconds f: Double) {
        frames[s.rawValue] += 1
        lastFrameTime[s.rawValue] = fipsd_unix_time()
        frameSeconds.observe(seconds)
        forwardSeconds.observe(f)
    }

    public mutating func frameError(_ kind: String) { Metrics.bump(&frameErrors, kind) }

    public mutating func error(_ kind: String) { Metrics.bump(&errors, kind) }

    public mutating func httpAnswer(handler: String, code: Int) {
        for i in 0..<http.count where http[i].handler == handler && http[i].code == code {
            http[i].count += 1
            return
        }
        http.append((handler: handler, code: code, count: 1))
    }

    public func errorCount(_ kind: String) -> Int {
        for e in errors where e.kind == kind { return e.count }
        return 0
    }

    /// A kind missing from the tables (a new error nobody listed) is still counted.
    static func bump(_ list: inout [(kind: String, count: Int)], _ kind: String) {
        for i in 0..<list.count where list[i].kind == kind {
            list[i].count += 1
            return
        }
        list.append((kind: kind, count: 1))
    }

    /// The Prometheus text exposition format (version 0.0.4).
    public func render(model: LoadedModel?) -> [UInt8] {
        var t = TextBuffer()
        t.append("# HELP fipsd_frames_total Frames classified, by source.\n# TYPE fipsd_frames_total counter\n")
        for s in SourceKind.all { t.append("fipsd_frames_total{source=\"\(s.name)\"} \(frames[s.rawValue])\n") }
        t.append("# HELP fipsd_frames_dropped_total Frames skipped because a newer one arrived while the model was busy.\n# TYPE fipsd_frames_dropped_total counter\n")
        for s in SourceKind.all { t.append("fipsd_frames_dropped_total{source=\"\(s.name)\"} \(dropped[s.rawValue])\n") }
        t.append("# HELP fipsd_frame_errors_total Frames that could not be classified, by the result line's error_kind.\n# TYPE fipsd_frame_errors_total counter\n")
        for e in frameErrors { t.append("fipsd_frame_errors_total{kind=\"\(e.kind)\"} \(e.count)\n") }
        t.append("# HELP fipsd_errors_total Errors outside a frame (HTTP, camera, folder, stdin, output, model reloads), by kind.\n# TYPE fipsd_errors_total counter\n")
        for e in errors { t.append("fipsd_errors_total{kind=\"\(e.kind)\"} \(e.count)\n") }
        t.append("# HELP fipsd_last_frame_timestamp_seconds Unix time of the last classified frame, by source (0: none yet).\n# TYPE fipsd_last_frame_timestamp_seconds gauge\n")
        for s in SourceKind.all {
            t.append("fipsd_last_frame_timestamp_seconds{source=\"\(s.name)\"} ")
            t.append(lastFrameTime[s.rawValue], precision: 13)
            t.append("\n")
        }
        frameSeconds.render(&t, name: "fipsd_frame_duration_seconds", help: "Decode + preprocess + forward time per classified frame.")
        forwardSeconds.render(&t, name: "fipsd_forward_duration_seconds", help: "Forward pass time per classified frame.")
        t.append("# HELP fipsd_http_requests_total HTTP answers by handler and status code (handler \"none\": refused before routing).\n# TYPE fipsd_http_requests_total counter\n")
        for h in http {
            t.append("fipsd_http_requests_total{handler=")
            appendLabelValue(&t, h.handler)
            t.append(",code=\"\(h.code)\"} \(h.count)\n")
        }
        t.append("# HELP fipsd_model_reloads_total SIGHUP reloads, by result.\n# TYPE fipsd_model_reloads_total counter\n")
        t.append("fipsd_model_reloads_total{result=\"ok\"} \(reloadsOK)\nfipsd_model_reloads_total{result=\"failed\"} \(reloadsFailed)\n")
        if let m = model {
            t.append("# HELP fipsd_model_info The model being served (value 1): path, format version, payload CRC-32 (the \"model\" of every result line).\n# TYPE fipsd_model_info gauge\n")
            t.append("fipsd_model_info{path=")
            appendLabelValue(&t, m.path)
            t.append(",version=\"\(m.version)\",checksum=\"\(hex8(m.checksum))\"} 1\n")
            t.append("# HELP fipsd_model_size_bytes Size of the model file being served.\n# TYPE fipsd_model_size_bytes gauge\n")
            t.append("fipsd_model_size_bytes \(m.fileBytes)\n")
            t.append("# HELP fipsd_model_load_timestamp_seconds Unix time the model being served was loaded.\n# TYPE fipsd_model_load_timestamp_seconds gauge\n")
            t.append("fipsd_model_load_timestamp_seconds ")
            t.append(m.loadedAtSeconds, precision: 13)
            t.append("\n# HELP fipsd_model_load_duration_seconds Time to map, check and test-run the model being served.\n# TYPE fipsd_model_load_duration_seconds gauge\n")
            t.append("fipsd_model_load_duration_seconds ")
            t.append(m.loadSeconds, precision: 6)
            t.append("\n")
        }
        t.append("# HELP fipsd_build_info The fipsd build (value 1), as fipsd --version prints it.\n# TYPE fipsd_build_info gauge\n")
        t.append("fipsd_build_info{version=\"\(BuildInfo.version)\",revision=")
        appendLabelValue(&t, BuildInfo.revision)
        t.append(",mode=\"\(BuildInfo.mode)\",cpu=\"\(BuildInfo.cpu)\",board=")
        appendLabelValue(&t, BuildInfo.board)
        t.append("} 1\n")
        appendProcessMetrics(&t)
        return t.bytes
    }

    /// The standard process_* series (the Prometheus client libraries' names).
    func appendProcessMetrics(_ t: inout TextBuffer) {
        t.append("# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ")
        t.append(fipsd_cpu_seconds(), precision: 6)
        t.append("\n# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds ")
        t.append(startTime, precision: 13)
        t.append("\n# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\n")
        t.append("process_resident_memory_bytes \(fipsd_rss_bytes())\n")
        t.append("# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n# TYPE process_virtual_memory_bytes gauge\n")
        t.append("process_virtual_memory_bytes \(fipsd_virtual_bytes())\n")
        t.append("# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\n")
        t.append("process_open_fds \(fipsd_open_fds())\n")
        let maxFds = fipsd_max_fds()
        if maxFds >= 0 {
            t.append("# HELP process_max_fds Maximum number of open file descriptors.\n# TYPE process_max_fds gauge\n")
            t.append("process_max_fds \(maxFds)\n")
        }
    }
}

/// A Prometheus label value: quoted, with \\, \" and \n escaped.
func appendLabelValue(_ t: inout TextBuffer, _ s: String) {
    var b: [UInt8] = [34]
    for c in s.utf8 {
        switch c {
        case 92: b += [92, 92]
        case 34: b += [92, 34]
        case 10: b += [92, 110]
        default: b.append(c)
        }
    }
    b.append(34)
    t.bytes += b
}

func hex8(_ v: UInt32) -> String {
    let digits: [UInt8] = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    for i in stride(from: 28, through: 0, by: -4) { out.append(digits[Int((v >> UInt32(i)) & 0xF)]) }
    return String(decoding: out, as: UTF8.self)
}
