import CFipsDaemon
import CFipsSys
import FipsDeviceSupport
import FipsImage

/// `--stdin`: an MJPEG stream (concatenated JPEGs) on standard input. A live
/// stream keeps only its newest frame; `--stdin-no-drop` classifies every one.
final class StdinSource: FrameSource {
    let ctx: FrameContext
    var open = true
    var splitter: MjpegSplitter
    var frame: [UInt8]? = nil
    var inGarbage = false

    var o: DaemonOptions { ctx.o }

    init(ctx: FrameContext) {
        self.ctx = ctx
        splitter = MjpegSplitter(maxFrameBytes: ctx.o.maxBodyBytes)
    }

    /// The stream has ended and every frame in it is used.
    var ended: Bool { !open && frame == nil }

    /// Read only while open, and with --stdin-no-drop only while no frame waits.
    func register(_ poll: inout PollSet, now: Int64) {
        if open && !(o.stdinNoDrop && frame != nil) { poll.add(0, Int32(FIPSD_POLLIN)) }
    }

    func waitLimitMs(now: Int64) -> Int64 { hasFrame ? 0 : Int64.max }

    func ready(tag: Int, revents: Int32) { readChunk() }

    var hasFrame: Bool { frame != nil }

    func readChunk() {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { fipsd_read(0, $0.baseAddress, $0.count) }
        if n == -Int(FIPSD_EAGAIN) { return }
        if n <= 0 {
            if n < 0 {
                ctx.metrics.error("stdin_read")
                logLine("stdin: read failed: \(errnoString(Int32(-n)))")
            }
            open = false
            pump()
            return
        }
        splitter.append(Array(chunk[0..<n]))
        pump()
    }

    /// Takes complete frames out of the splitter: all of them, keeping the
    /// newest (live streams: older ones are dropped and counted), or with
    /// --stdin-no-drop one, and only when none is waiting (the rest stay in
    /// the splitter, and stdin is not read until they are used up).
    func pump() {
        let garbage0 = splitter.garbageBytes, big0 = splitter.oversizedFrames, broken0 = splitter.brokenFrames
        var gotFrame = false
        while !(o.stdinNoDrop && frame != nil), let f = splitter.next() {
            if frame != nil { ctx.metrics.dropped[SourceKind.stdin.rawValue] += 1 }
            frame = f
            gotFrame = true
        }
        if splitter.garbageBytes > garbage0 {
            // Once per stretch of junk, not once per read.
            if !inGarbage {
                ctx.metrics.error("stdin_not_jpeg")
                logLine("stdin: skipping bytes that are not part of a JPEG (looking for the next start of image)")
            }
            inGarbage = true
        } else if gotFrame {
            inGarbage = false
        }
        if splitter.oversizedFrames > big0 {
            ctx.metrics.error("stdin_frame_too_large")
            logLine("stdin: dropped a frame over \(o.maxBodyBytes) bytes (--max-body)")
        }
        if splitter.brokenFrames > broken0 {
            for _ in broken0..<splitter.brokenFrames { ctx.metrics.error("stdin_broken_frame") }
            logLine("stdin: dropped \(splitter.brokenFrames - broken0) frame(s) with a broken JPEG marker structure")
        }
        // The stream has ended and every whole frame is out: what is left is a cut frame.
        if !open && frame == nil && splitter.pending > 0 {
            ctx.metrics.error("stdin_incomplete_frame")
            logLine("stdin: the stream ended inside a frame (\(splitter.pending) bytes); dropped")
            splitter.discard()
        }
    }

    func processFrame() {
        guard let f = frame else { return }
        frame = nil
        let start = fips_now_ns()
        let n = ctx.nextFrame(.stdin)
        let limits = ctx.limits
        let result: Result<RGBImage, ImageError> = f.withUnsafeBytes { b in
            Classifier.decode(b, name: "stdin frame \(n)", limits: limits)
        }
        ctx.finish(result, source: .stdin, frame: n, file: nil, start: start)
        if o.stdinNoDrop { pump() }
    }
}
