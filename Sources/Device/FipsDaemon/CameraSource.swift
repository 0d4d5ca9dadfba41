import CFipsDaemon
import CFipsSys
import FipsImage

/// `--camera`: frames from a V4L2 camera (`CameraDevice`, which reopens it
/// with backoff). Only the newest grabbed frame waits; an older one not yet
/// classified is dropped and counted.
final class CameraSource: FrameSource {
    let ctx: FrameContext
    let device: CameraDevice
    var isOpen = false
    var image: RGBImage? = nil
    var error: ImageError? = nil
    var grabbedNs: Int64 = 0

    init(device: String, ctx: FrameContext) {
        self.ctx = ctx
        let o = ctx.o
        self.device = CameraDevice(device: device, width: o.cameraWidth, height: o.cameraHeight, fps: o.cameraFPS, format: o.cameraFormat)
    }

    /// Opens the camera when it is time to try; waits on it once open.
    func register(_ poll: inout PollSet, now: Int64) {
        if !isOpen { isOpen = device.ensureOpen(now: now, metrics: &ctx.metrics, quiet: ctx.o.quiet) }
        if isOpen { poll.add(device.fd, Int32(FIPSD_POLLIN)) }
    }

    /// Wake for the next attempt to open it.
    func waitLimitMs(now: Int64) -> Int64 {
        isOpen ? Int64.max : max(0, (device.nextAttemptNs - now) / 1_000_000 + 1)
    }

    func ready(tag: Int, revents: Int32) { grab() }

    var hasFrame: Bool { image != nil || error != nil }

    func grab() {
        let start = fips_now_ns()
        guard let r = device.grab(now: start, metrics: &ctx.metrics, frameNo: ctx.frameNo[SourceKind.camera.rawValue] + 1,
                                  limits: ctx.limits) else {
            if device.cam == nil { isOpen = false }
            return
        }
        if hasFrame { ctx.metrics.dropped[SourceKind.camera.rawValue] += 1 }
        switch r {
        case .success(let img): image = img; error = nil
        case .failure(let e): error = e; image = nil
        }
        grabbedNs = start
    }

    func processFrame() {
        guard hasFrame else { return }
        let n = ctx.nextFrame(.camera)
        let result: Result<RGBImage, ImageError>
        if let img = image { result = .success(img) } else { result = .failure(error!) }
        image = nil
        error = nil
        ctx.finish(result, source: .camera, frame: n, file: nil, start: grabbedNs)
    }
}
