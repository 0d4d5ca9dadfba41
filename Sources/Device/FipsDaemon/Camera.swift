import CFipsDaemon
import CFipsSys
import FipsImage

/// A V4L2 camera that may be missing or unplugged: opened lazily, reopened
/// with backoff (1 s doubling to 30 s) after any failure, each attempt logged.
final class CameraDevice {
    let device: String
    let width, height, fps: Int
    let format: Int32
    var cam: OpaquePointer? = nil
    var nextAttemptNs: Int64 = 0
    var backoffMs = 1000
    var lastMessage = ""
    var failures = 0

    init(device: String, width: Int, height: Int, fps: Int, format: Int32) {
        self.device = device
        self.width = width
        self.height = height
        self.fps = fps
        self.format = format
    }

    deinit { close() }

    var fd: Int32 { cam.map { fipsd_camera_fd($0) } ?? -1 }

    /// Tries to open when it is time; returns true when the camera is open.
    func ensureOpen(now: Int64, metrics: inout Metrics, quiet: Bool) -> Bool {
        if cam != nil { return true }
        if now < nextAttemptNs { return false }
        var err: Int32 = 0
        var msg = [CChar](repeating: 0, count: 256)
        let c = msg.withUnsafeMutableBufferPointer { m in
            fipsd_camera_open(device, Int32(width), Int32(height), Int32(fps), format, &err, m.baseAddress, m.count)
        }
        guard let opened = c else {
            let text = cString(msg)
            metrics.error("camera_open")
            failures += 1
            logLine("camera \(device): \(text); retrying in \(backoffMs / 1000) s")
            lastMessage = text
            nextAttemptNs = now + Int64(backoffMs) * 1_000_000
            backoffMs = min(backoffMs * 2, 30_000)
            return false
        }
        cam = opened
        let fmt = fipsd_camera_format(opened) == 1 ? "MJPEG" : "YUYV"
        let w = Int(fipsd_camera_width(opened)), h = Int(fipsd_camera_height(opened))
        if !quiet || failures > 0 {
            logLine("camera \(device): streaming \(fmt) \(w)x\(h)")
        }
        // fips-plan counts the buffers of the size asked for (`CameraMemory`); a
        // driver may pick a larger nearest size, or size MJPEG buffers above 2
        // bytes a pixel. Said once per open, since the budget may then not hold.
        let mapped = Int(fipsd_camera_buffer_bytes(opened))
        let counted = CameraMemory.bufferBytes(width: width, height: height)
        if mapped > counted || w * h > width * height {
            logLine("warning: camera \(device): the driver streams \(fmt) \(w)x\(h) in \(mapped) bytes of buffers; "
                    + "fips-plan --camera \(width)x\(height) counts \(counted), so the budget may not hold")
        }
        backoffMs = 1000
        failures = 0
        return true
    }

    func close() {
        if let c = cam { fipsd_camera_close(c) }
        cam = nil
    }

    /// Lost the camera (unplugged, I/O error): close and retry after the backoff.
    func lost(_ errno: Int32, now: Int64, metrics: inout Metrics) {
        metrics.error("camera_lost")
        logLine("camera \(device): lost (\(errnoString(errno))); retrying in \(backoffMs / 1000) s")
        close()
        failures += 1
        nextAttemptNs = now + Int64(backoffMs) * 1_000_000
        backoffMs = min(backoffMs * 2, 30_000)
    }

    /// The newest frame decoded to RGB, or nil (no frame, or an error that was counted).
    func grab(now: Int64, metrics: inout Metrics, frameNo: Int, limits: DecodeLimits) -> Result<RGBImage, ImageError>? {
        guard let c = cam else { return nil }
        var data: UnsafeRawPointer? = nil
        var bytes = 0
        var dropped: Int32 = 0
        let idx = fipsd_camera_dequeue_latest(c, &data, &bytes, &dropped)
        metrics.dropped[SourceKind.camera.rawValue] += Int(dropped)
        if idx == -Int32(FIPSD_EAGAIN) { return nil }
        if idx < 0 {
            lost(-idx, now: now, metrics: &metrics)
            return nil
        }
        defer { _ = fipsd_camera_requeue(c, idx) }
        let raw = UnsafeRawBufferPointer(start: data, count: bytes)
        let name = "camera frame \(frameNo)"
        if fipsd_camera_format(c) == 1 {
            do {
                return .success(try ImageDecoder.decode(raw, name: name, limits: limits))
            } catch {
                return .failure(error)
            }
        }
        let w = Int(fipsd_camera_width(c)), h = Int(fipsd_camera_height(c)), stride = Int(fipsd_camera_stride(c))
        let pairBytes = ((w + 1) / 2) * 4
        if w <= 0 || h <= 0 || stride < pairBytes || bytes < stride * (h - 1) + pairBytes {
            return .failure(.truncated(path: name, format: "YUYV"))
        }
        return .success(CameraFrame.fromYUYV(raw, width: w, height: h, stride: stride))
    }
}

func cString(_ buf: [CChar]) -> String {
    var bytes: [UInt8] = []
    for c in buf {
        if c == 0 { break }
        bytes.append(UInt8(bitPattern: c))
    }
    return String(decoding: bytes, as: UTF8.self)
}
