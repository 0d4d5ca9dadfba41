import FipsDeviceSupport

/// The request line and the headers fipsd cares about.
public struct HttpRequestHead {
    public var method = ""
    public var path = ""
    public var contentLength = 0
    public var expectContinue = false
    /// The boundary of a multipart/form-data body (`curl -F`, browsers); nil otherwise.
    public var multipartBoundary: [UInt8]? = nil
    /// Bytes of the head including the blank line.
    public var headBytes = 0
}

public enum HttpParse {
    case incomplete
    case head(HttpRequestHead)
    /// A status to answer with and why.
    case error(Int, String)
}

public enum Http {
    /// Largest request head (request line + headers).
    public static let maxHeadBytes = 8192

    /// Parses the head at the start of `buf` once the blank line has arrived.
    /// Only what POST /classify, GET /healthz and GET /metrics need: no
    /// chunked bodies (411), no bodies larger than `maxBody` (413).
    public static func parseHead(_ buf: UnsafeBufferPointer<UInt8>, maxBody: Int) -> HttpParse {
        // Find CRLFCRLF (or a bare LFLF, tolerated).
        var end = -1
        var i = 0
        let n = buf.count
        while i < n {
            if buf[i] == 10 {
                if i + 1 < n && buf[i + 1] == 10 { end = i + 2; break }
                if i + 2 < n && buf[i + 1] == 13 && buf[i + 2] == 10 { end = i + 3; break }
            }
            i += 1
        }
        if end < 0 {
            if n >= maxHeadBytes { return .error(431, "request head larger than \(maxHeadBytes) bytes") }
            return .incomplete
        }
        if end > maxHeadBytes { return .error(431, "request head larger than \(maxHeadBytes) bytes") }
        // Split into lines.
        var lines: [[UInt8]] = []
        var line: [UInt8] = []
        for k in 0..<end {
            let b = buf[k]
            if b == 10 {
                if line.last == 13 { line.removeLast() }
                lines.append(line)
                line = []
            } else {
                if b == 0 { return .error(400, "NUL byte in the request head") }
                line.append(b)
            }
        }
        guard let first = lines.first, !first.isEmpty else { return .error(400, "empty request line") }
        let parts = first.split(separator: 32, omittingEmptySubsequences: true)
        guard parts.count == 3 else { return .error(400, "malformed request line") }
        let version = String(decoding: parts[2], as: UTF8.self)
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
            return .error(505, "unsupported protocol version")
        }
        var h = HttpRequestHead()
        h.method = String(decoding: parts[0], as: UTF8.self)
        h.path = String(decoding: parts[1], as: UTF8.self)
        h.headBytes = end
        var sawLength = false
        for l in lines.dropFirst() where !l.isEmpty {
            guard let colon = l.firstIndex(of: 58), colon > 0 else { return .error(400, "malformed header line") }
            let name = lowercase(Array(l[..<colon]))
            let value = trim(Array(l[(colon + 1)...]))
            if name == "content-length" {
                let text = String(decoding: value, as: UTF8.self)
                guard let v = parseInt(text) else { return .error(400, "bad Content-Length") }
                if sawLength && v != h.contentLength { return .error(400, "conflicting Content-Length headers") }
                if v > maxBody { return .error(413, "body of \(v) bytes is over the limit of \(maxBody) (--max-body)") }
                h.contentLength = v
                sawLength = true
            } else if name == "content-type" {
                let v = Array(lowercase(value).utf8)
                if v.starts(with: Array("multipart/form-data".utf8)) {
                    guard let b = Multipart.boundary(contentType: value) else {
                        return .error(400, "multipart/form-data without a boundary")
                    }
                    h.multipartBoundary = b
                }
            } else if name == "transfer-encoding" {
                return .error(411, "chunked bodies are not supported; send Content-Length")
            } else if name == "expect" {
                if lowercase(value) == "100-continue" { h.expectContinue = true }
                else { return .error(417, "unsupported Expect header") }
            }
        }
        if h.method == "POST" && !sawLength { return .error(411, "POST needs a Content-Length") }
        return .head(h)
    }

    static func lowercase(_ b: [UInt8]) -> String {
        var o = b
        for i in 0..<o.count where o[i] >= 65 && o[i] <= 90 { o[i] += 32 }
        return String(decoding: o, as: UTF8.self)
    }

    static func trim(_ b: [UInt8]) -> [UInt8] {
        var lo = 0, hi = b.count
        while lo < hi && (b[lo] == 32 || b[lo] == 9) { lo += 1 }
        while hi > lo && (b[hi - 1] == 32 || b[hi - 1] == 9) { hi -= 1 }
        return Array(b[lo..<hi])
    }

    public static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 400: return "Bad Request"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 411: return "Length Required"
        case 413: return "Payload Too Large"
        case 417: return "Expectation Failed"
        case 422: return "Unprocessable Entity"
        case 431: return "Request Header Fields Too Large"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Error"
        }
    }

    /// A complete response; the connection closes after it.
    public static func response(_ status: Int, contentType: String, body: [UInt8], extraHeaders: String = "") -> [UInt8] {
        var t = TextBuffer()
        t.append("HTTP/1.1 \(status) \(reason(status))\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n")
        t.append(extraHeaders)
        t.append("\r\n")
        t.bytes += body
        return t.bytes
    }

    /// {"error": "..."} with a newline.
    public static func errorBody(_ message: String) -> [UInt8] {
        var t = TextBuffer()
        t.append("{\"error\": ")
        t.appendJSONString(message)
        t.append("}\n")
        return t.bytes
    }
}

/// One HTTP client. Reads the head and the body into `buf`; then the
/// response goes out from `out`, and the connection closes.
final class HttpConnection {
    /// draining: the answer went out before the whole request was read (an
    /// error); the rest is read and thrown away until the client closes, so
    /// closing does not reset the connection and lose the answer.
    enum State { case reading, writing, draining }
    let fd: Int32
    let id: Int
    var state = State.reading
    var buf: [UInt8] = []
    var head: HttpRequestHead? = nil
    var out: [UInt8] = []
    var outPos = 0
    var deadlineNs: Int64
    var sentContinue = false
    /// The whole request had been read when the answer was queued.
    var requestComplete = false
    /// The endpoint for fipsd_http_requests_total; "none" until a request is routed.
    var handler = "none"

    init(fd: Int32, id: Int, deadlineNs: Int64) {
        self.fd = fd
        self.id = id
        self.deadlineNs = deadlineNs
    }

    /// Bytes still needed for the whole request (head parsed), or nil.
    var bodyComplete: Bool {
        guard let h = head else { return false }
        return buf.count >= h.headBytes + h.contentLength
    }
}
