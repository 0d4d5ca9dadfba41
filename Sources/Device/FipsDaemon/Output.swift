import CFipsDaemon
import CFipsSys
import FipsDeviceSupport

/// One line on standard error: "fipsd: <UTC time> <message>".
public func logLine(_ msg: String) {
    var t = TextBuffer()
    t.append("fipsd: ")
    t.append(utcNow())
    t.append(" ")
    t.append(msg)
    t.append("\n")
    t.write(fd: 2)
}

/// JSON lines to standard output or a file, rotated by size. A failed write
/// (full disk, closed pipe) drops the line, is counted and logged once per
/// outage, and is retried with the next line.
public final class OutputSink {
    let path: String?
    let rotateBytes: Int
    var fd: Int32 = 1
    var size: Int64 = 0
    var failing = false
    var droppedLines = 0

    /// nil path: standard output.
    public init(path: String?, rotateBytes: Int) throws(DaemonError) {
        self.path = path
        self.rotateBytes = rotateBytes
        if let p = path {
            let f = fipsd_open_append(p)
            if f < 0 { throw .output(path: p, errno: -f) }
            fd = f
            size = max(0, fipsd_fd_file_size(f))
        }
    }

    deinit { if path != nil { fipsd_close(fd) } }

    /// Returns the errno of a failed write, 0 on success.
    public func write(_ line: [UInt8], metrics: inout Metrics) -> Int32 {
        if let p = path, rotateBytes > 0, size > 0, size + Int64(line.count) > Int64(rotateBytes),
           fipsd_fd_file_size(fd) >= 0 {
            rotate(p, metrics: &metrics)
        }
        let e = line.withUnsafeBytes { fipsd_write_all(fd, $0.baseAddress, $0.count) }
        if e != 0 {
            metrics.error("output_write")
            droppedLines += 1
            if !failing { logLine("output \(path ?? "stdout"): cannot write: \(errnoString(e)); dropping result lines until it works again") }
            failing = true
            // A partial line may have been written: start the next one on a fresh line.
            if path != nil { size = max(0, fipsd_fd_file_size(fd)) }
            return e
        }
        if failing {
            logLine("output \(path ?? "stdout"): writing again (\(droppedLines) result lines were dropped)")
            failing = false
            droppedLines = 0
        }
        size += Int64(line.count)
        return 0
    }

    /// SIGUSR1: after logrotate moved the file away, write to a new one at the
    /// same path. Without a path (stdout) there is nothing to reopen.
    public func reopen(metrics: inout Metrics) {
        guard let p = path else { return }
        let f = fipsd_open_append(p)
        if f < 0 {
            metrics.error("output_reopen")
            logLine("output \(p): cannot reopen on SIGUSR1: \(errnoString(-f)); still writing to the old file")
            return
        }
        fipsd_close(fd)
        fd = f
        size = max(0, fipsd_fd_file_size(f))
        logLine("output \(p): reopened on SIGUSR1")
    }

    func rotate(_ p: String, metrics: inout Metrics) {
        let old = p + ".1"
        let e = fipsd_rename(p, old)
        if e != 0 {
            metrics.error("output_rotate")
            logLine("output \(p): cannot rotate to \(old): \(errnoString(e)); still appending")
            size = 0   // do not retry on every line
            return
        }
        let f = fipsd_open_append(p)
        if f < 0 {
            metrics.error("output_rotate")
            logLine("output \(p): cannot reopen after rotation: \(errnoString(-f)); still writing to \(old)")
            size = 0
            return
        }
        fipsd_close(fd)
        fd = f
        size = 0
    }
}
