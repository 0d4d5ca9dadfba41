import CFipsDaemon
import CFipsSys
import FipsDeviceSupport

/// Counters for /metrics. Single-threaded: only the event loop touches them.
public struct Metrics {
    /// Upper bounds of the latency histogram, seconds.
    public static let buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    public var frames = [Int](repeating: 0, count: 4)    // by SourceKind, classified
    public var dropped = [Int](repeating: 0, count: 4)   // by SourceKind, superseded by a newer frame
    /// (kind, count) in first-seen order.
    public var errors: [(kind: String, count: Int)] = []
    public var bucketCounts = [Int](repeating: 0, count: Metrics.buckets.count)
    public var latencySum: Double = 0
    public var latencyCount = 0
    public var reloadsOK = 0
    public var reloadsFailed = 0
    public var httpRequests = 0
    public let startNs = fips_now_ns()

    public init() {}

    public mutating func frame(_ s: SourceKind, seconds: Double) {
        frames[s.rawValue] += 1
        latencySum += seconds
        latencyCount += 1
        for (i, b) in Metrics.buckets.enumerated() where seconds <= b { bucketCounts[i] += 1 }
    }

    public mutating func error(_ kind: String) {
        for i in 0..<errors.count where errors[i].kind == kind {
            errors[i].count += 1
            return
        }
        errors.append((kind: kind, count: 1))
    }

    public func errorCount(_ kind: String) -> Int {
        for e in errors where e.kind == kind { return e.count }
        return 0
    }

    /// The Prometheus text exposition format (version 0.0.4).
    public func render(model: LoadedModel?) -> [UInt8] {
        var t = TextBuffer()
        t.append("# HELP fipsd_frames_total Frames classified, by source.\n# TYPE fipsd_frames_total counter\n")
        for s in SourceKind.all { t.append("fipsd_frames_total{source=\"\(s.name)\"} \(frames[s.rawValue])\n") }
        t.append("# HELP fipsd_frames_dropped_total Frames skipped because a newer one arrived while the model was busy.\n# TYPE fipsd_frames_dropped_total counter\n")
        for s in SourceKind.all { t.append("fipsd_frames_dropped_total{source=\"\(s.name)\"} \(dropped[s.rawValue])\n") }
        t.append("# HELP fipsd_errors_total Errors by kind (bad images, HTTP, output, camera, model reloads).\n# TYPE fipsd_errors_total counter\n")
        for e in errors { t.append("fipsd_errors_total{kind=\"\(e.kind)\"} \(e.count)\n") }
        t.append("# HELP fipsd_latency_seconds Decode + preprocess + forward time per classified frame.\n# TYPE fipsd_latency_seconds histogram\n")
        var cumulative = 0
        for (i, b) in Metrics.buckets.enumerated() {
            cumulative = bucketCounts[i]
            t.append("fipsd_latency_seconds_bucket{le=\"")
            t.append(b, precision: 6)
            t.append("\"} \(cumulative)\n")
        }
        t.append("fipsd_latency_seconds_bucket{le=\"+Inf\"} \(latencyCount)\n")
        t.append("fipsd_latency_seconds_sum ")
        t.append(latencySum, precision: 9)
        t.append("\nfipsd_latency_seconds_count \(latencyCount)\n")
        t.append("# HELP fipsd_http_requests_total HTTP requests answered.\n# TYPE fipsd_http_requests_total counter\n")
        t.append("fipsd_http_requests_total \(httpRequests)\n")
        t.append("# HELP fipsd_model_reloads_total SIGHUP reloads, by result.\n# TYPE fipsd_model_reloads_total counter\n")
        t.append("fipsd_model_reloads_total{result=\"ok\"} \(reloadsOK)\nfipsd_model_reloads_total{result=\"failed\"} \(reloadsFailed)\n")
        if let m = model {
            t.append("# HELP fipsd_model_info The model being served (value 1): path, format version, payload CRC-32, bytes, load time.\n# TYPE fipsd_model_info gauge\n")
            t.append("fipsd_model_info{path=")
            appendLabelValue(&t, m.path)
            t.append(",version=\"\(m.version)\",checksum=\"\(hex8(m.checksum))\",bytes=\"\(m.fileBytes)\",loaded=\"\(m.loadedAt)\"} 1\n")
        }
        t.append("# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\n")
        t.append("process_resident_memory_bytes \(fipsd_rss_bytes())\n")
        t.append("# HELP process_cpu_seconds_total User and system CPU time.\n# TYPE process_cpu_seconds_total counter\n")
        t.append("process_cpu_seconds_total ")
        t.append(fipsd_cpu_seconds(), precision: 6)
        t.append("\n# HELP fipsd_uptime_seconds Seconds since start.\n# TYPE fipsd_uptime_seconds gauge\nfipsd_uptime_seconds ")
        t.append(Double(fips_now_ns() - startNs) / 1e9, precision: 6)
        t.append("\n")
        return t.bytes
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
