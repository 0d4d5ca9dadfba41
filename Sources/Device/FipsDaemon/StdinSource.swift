import CFipsDaemon
import CFipsSys
import FipsDeviceSupport
import FipsImage

/// `--stdin`: an MJPEG stream (concatenated JPEGs) on standard input. A live
/// stream keeps only its newest frame; `--stdin-no-drop` classifies every one.
/// A stream that starts with a PNG signature is one PNG image, classified when
/// the stream ends (`fipsd --stdin < photo.png`).
final class StdinSource: FrameSource {
    let ctx: FrameContext
    var open = true
    var splitter: MjpegSplitter
    var frame: [UInt8]? = nil
    var inGarbage = false
    /// nil until the first bytes arrive; then whether the stream is one PNG.
    var isPNG: Bool? = nil
    var png: [UInt8] = []
    var pngTooLarge = false
    /// Inputs on stdin that gave no result or an error result: the daemon's exit
    /// status is 1 when stdin ends with any (as fips-run's for failed images).
    var failures = 0

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
                failures += 1
                logLine("stdin: read failed: \(errnoString(Int32(-n)))")
            }
            open = false
            if isPNG == true { finishPNG() } else { pump() }
            return
        }
        if isPNG == nil {
            let sig: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
            isPNG = n >= 8 && Array(chunk[0..<8]) == sig
        }
        if isPNG == true {
            appendPNG(chunk[0..<n])
            return
        }
        splitter.append(Array(chunk[0..<n]))
        pump()
    }

    /// A PNG on stdin: collected whole (up to --max-body), one frame at the end;
    /// past the limit the rest of the stream is read and thrown away.
    func appendPNG(_ bytes: ArraySlice<UInt8>) {
        if pngTooLarge { return }
        if png.count + bytes.count > o.maxBodyBytes {
            ctx.metrics.error("stdin_frame_too_large")
            failures += 1
            logLine("stdin: the PNG image is over \(o.maxBodyBytes) bytes (--max-body); dropped")
            png = []
            pngTooLarge = true
            return
        }
        png.append(contentsOf: bytes)
    }

    func finishPNG() {
        if !pngTooLarge && !png.isEmpty { frame = png }
        png = []
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
                failures += 1
                logLine("stdin: skipping bytes that are not part of a JPEG (looking for the next start of image)")
            }
            inGarbage = true
        } else if gotFrame {
            inGarbage = false
        }
        if splitter.oversizedFrames > big0 {
            ctx.metrics.error("stdin_frame_too_large")
            failures += splitter.oversizedFrames - big0
            logLine("stdin: dropped a frame over \(o.maxBodyBytes) bytes (--max-body)")
        }
        if splitter.brokenFrames > broken0 {
            for _ in broken0..<splitter.brokenFrames { ctx.metrics.error("stdin_broken_frame") }
            failures += splitter.brokenFrames - broken0
            logLine("stdin: dropped \(splitter.brokenFrames - broken0) frame(s) with a broken JPEG marker structure")
        }
        // The stream has ended and every whole frame is out: what is left is a cut frame.
        if !open && frame == nil && splitter.pending > 0 {
            ctx.metrics.error("stdin_incomplete_frame")
            failures += 1
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
        if case .failure = result { failures += 1 }
        if o.stdinNoDrop && isPNG != true { pump() }
    }
}
