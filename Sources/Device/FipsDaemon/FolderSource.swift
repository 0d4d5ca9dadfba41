import CFipsDaemon
import CFipsSys
import FipsDeviceSupport
import FipsImage

/// `--watch`: a folder watched with inotify. Every image closed after
/// writing in it (or moved into it), and those there at start, is
/// classified once, then moved to the done or failed folder.
final class FolderSource: FrameSource {
    let ctx: FrameContext
    let dir: String
    let doneDir: String
    let failedDir: String
    let watchFd: Int32
    /// Names waiting, in order; those before `pendingHead` are done.
    var pendingFiles: [String] = []
    var pendingHead = 0

    init(dir: String, ctx: FrameContext) throws(DaemonError) {
        self.ctx = ctx
        self.dir = dir
        guard fips_path_kind(dir) == 2 else {
            throw .watch(path: dir, errno: fips_path_kind(dir) == 0 ? 2 : 20)
        }
        doneDir = ctx.o.doneDir ?? dir + "/done"
        failedDir = ctx.o.failedDir ?? dir + "/failed"
        for d in [doneDir, failedDir] {
            let e = fips_mkdir_p(d)
            if e != 0 { throw .watch(path: d, errno: e) }
        }
        let fd = fipsd_watch_dir(dir)
        if fd < 0 { throw .watch(path: dir, errno: -fd) }
        watchFd = fd
        rescan()
        if !ctx.o.quiet { logLine("watching \(dir) (\(pendingFiles.count) images waiting; results move to \(doneDir), bad ones to \(failedDir))") }
    }

    deinit { fipsd_close(watchFd) }

    func register(_ poll: inout PollSet, now: Int64) {
        poll.add(watchFd, Int32(FIPSD_POLLIN))
    }

    func waitLimitMs(now: Int64) -> Int64 { hasFrame ? 0 : Int64.max }

    func ready(tag: Int, revents: Int32) { readWatch() }

    var hasFrame: Bool { pendingHead < pendingFiles.count }

    func rescan() {
        var cap = 1 << 16
        while true {
            var names = [CChar](repeating: 0, count: cap)
            let n = names.withUnsafeMutableBufferPointer { fipsd_list_files(dir, $0.baseAddress, cap) }
            if n == -105 /* ENOBUFS */ && cap < (1 << 26) { cap *= 4; continue }
            if n < 0 {
                ctx.metrics.error("folder_scan")
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
            ctx.metrics.error("folder_watch")
            logLine("watch: read failed: \(errnoString(Int32(-n)))")
            return
        }
        for f in splitNames(names, Int(n)) where f.utf8.first != 46 { enqueue(f) }
        if overflow != 0 {
            ctx.metrics.error("folder_event_overflow")
            logLine("watch: the kernel's event queue overflowed; rescanning the folder")
            rescan()
        }
    }

    func processFrame() {
        guard pendingHead < pendingFiles.count else { return }
        let name = pendingFiles[pendingHead]
        pendingHead += 1
        if pendingHead > 256 && pendingHead * 2 > pendingFiles.count {
            pendingFiles.removeFirst(pendingHead)
            pendingHead = 0
        }
        let path = dir + "/" + name
        if fips_path_kind(path) != 1 { return }   // gone already (or not a file any more)
        let start = fips_now_ns()
        let n = ctx.nextFrame(.folder)
        let result = Classifier.decode(path: path, limits: ctx.limits)
        ctx.finish(result, source: .folder, frame: n, file: name, start: start)
        var ok = true
        if case .failure = result { ok = false }
        let target = (ok ? doneDir : failedDir) + "/" + name
        let e = fipsd_rename(path, target)
        if e != 0 {
            ctx.metrics.error("folder_move")
            logLine("watch: cannot move \(path) to \(target): \(errnoString(e))")
        }
    }
}

/// NUL-separated names from the C side.
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
