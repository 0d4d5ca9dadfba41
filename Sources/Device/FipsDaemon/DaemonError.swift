import CFipsSys

/// What stops fipsd at start-up, with its message.
public enum DaemonError: Error {
    case output(path: String, errno: Int32)
    case listen(host: String, port: Int, errno: Int32)
    case watch(path: String, errno: Int32)
    case signals(errno: Int32)

    public var message: String {
        switch self {
        case .output(let p, let e): return "--output \(p): cannot open for appending: \(errnoString(e))"
        case .listen(let h, let p, let e):
            if e == 22 { return "--listen \(h):\(p): '\(h)' is not a numeric IPv4 or IPv6 address" }
            return "--listen \(h):\(p): cannot listen: \(errnoString(e))"
        case .watch(let p, let e): return "--watch \(p): \(errnoString(e))"
        case .signals(let e): return "cannot set up signal handling: \(errnoString(e))"
        }
    }
}

public func errnoString(_ e: Int32) -> String {
    guard let s = fips_strerror(e) else { return "error \(e)" }
    return String(cString: s)
}
