import CFipsSys
import FipsDeviceSupport

/// What stops fipsd at start-up, with its message.
public enum DaemonError: Error {
    case output(path: String, errno: Int32)
    case listen(host: String, port: Int, errno: Int32)
    case watch(path: String, errno: Int32)
    case signals(errno: Int32)

    /// A --listen address that is not one is a usage error; the rest are I/O.
    public var exitStatus: Int32 {
        switch self {
        case .listen(_, _, let e) where e == 22: return ExitStatus.usage
        case .signals: return ExitStatus.system
        default: return ExitStatus.modelOrIO
        }
    }

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
