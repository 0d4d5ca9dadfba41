/// The memory fipsd's camera capture adds to a process serving a planned
/// model (`fips-plan --camera`), beside the inputs' `DecodeMemory`:
///
///   the V4L2 mmap buffers   `buffers` of them (FIPSD_CAM_BUFFERS, fipsd_sys.c's
///                           VIDIOC_REQBUFS count; a driver that grants fewer
///                           only lowers it), each `bytesPerPixel` per pixel
///   the waiting frame       the newest grabbed frame as RGB, 3 bytes per pixel,
///                           held while another source's image is decoded
///
/// A YUYV buffer is 2 bytes per pixel (bytesperline = 2 * width, as fipsd
/// assumes when the driver reports none). An MJPEG buffer's size is the
/// driver's choice (uvcvideo: the camera's dwMaxVideoFrameSize); the bound
/// assumes it is at most the YUYV size, as UVC cameras report it. The frame
/// being grabbed (converted or decoded while the waiting one is still held) and
/// the one being classified are no more than a decode of `maxPixels`, which the
/// plan counts already, as long as the camera has no more pixels than that:
/// fips-plan refuses a camera larger than its --max-pixels.
public enum CameraMemory {
    /// fipsd's V4L2 buffer count (`FIPSD_CAM_BUFFERS` in CFipsDaemon; a test checks they agree).
    public static let buffers = 4
    /// Bytes per pixel of one capture buffer: YUYV 4:2:2, and the bound assumed for MJPEG.
    public static let bytesPerPixel = 2

    /// The capture memory for a `width` x `height` camera: its buffers and the waiting RGB frame.
    public static func bytes(width: Int, height: Int) -> Int {
        bufferBytes(width: width, height: height) + 3 * max(0, width) * max(0, height)
    }

    /// The V4L2 buffers alone, what fipsd compares the driver's mapping against.
    public static func bufferBytes(width: Int, height: Int) -> Int {
        buffers * bytesPerPixel * max(0, width) * max(0, height)
    }
}
