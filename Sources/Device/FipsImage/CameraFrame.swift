/// Conversion of raw camera frames (V4L2 buffers) to `RGBImage`.
public enum CameraFrame {
    /// Packed 24-bit RGB rows (V4L2_PIX_FMT_RGB24), `stride` bytes apart.
    public static func fromRGB24(_ p: UnsafeRawBufferPointer, width: Int, height: Int, stride: Int) -> RGBImage {
        precondition(width > 0 && height > 0 && stride >= width * 3, "CameraFrame.fromRGB24: bad geometry")
        precondition(p.count >= stride * (height - 1) + width * 3, "CameraFrame.fromRGB24: buffer too small")
        var out = RGBImage(width: width, height: height)
        let rowBytes = width * 3
        out.pixels.withUnsafeMutableBufferPointer { o in
            let src = p.baseAddress!.assumingMemoryBound(to: UInt8.self)
            for y in 0..<height {
                (o.baseAddress! + y * rowBytes).update(from: src + y * stride, count: rowBytes)
            }
        }
        return out
    }

    /// YUYV 4:2:2 (V4L2_PIX_FMT_YUYV: bytes Y0 U Y1 V per pixel pair), BT.601
    /// limited range (Y 16...235, Cb/Cr 16...240), integer arithmetic:
    ///
    ///     C = Y - 16, D = U - 128, E = V - 128
    ///     R = clamp((298 C           + 409 E + 128) >> 8)
    ///     G = clamp((298 C - 100 D   - 208 E + 128) >> 8)
    ///     B = clamp((298 C + 516 D           + 128) >> 8)
    ///
    /// (coefficients are 256 x 1.164, 1.596, 0.391, 0.813, 2.018; `>>` is an
    /// arithmetic shift; clamp to 0...255). Both pixels of a pair share U and
    /// V. An odd width uses the first half of the last pair.
    public static func fromYUYV(_ p: UnsafeRawBufferPointer, width: Int, height: Int, stride: Int) -> RGBImage {
        let pairBytes = ((width + 1) / 2) * 4
        precondition(width > 0 && height > 0 && stride >= pairBytes, "CameraFrame.fromYUYV: bad geometry")
        precondition(p.count >= stride * (height - 1) + pairBytes, "CameraFrame.fromYUYV: buffer too small")
        var out = RGBImage(width: width, height: height)
        out.pixels.withUnsafeMutableBufferPointer { o in
            let src = p.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let dst = o.baseAddress!
            for y in 0..<height {
                let s = src + y * stride
                let d = dst + y * width * 3
                var x = 0
                while x < width {
                    let q = s + (x / 2) * 4
                    let d0 = Int32(q[1]) - 128
                    let e0 = Int32(q[3]) - 128
                    let rAdd = 409 * e0 + 128
                    let gAdd = -100 * d0 - 208 * e0 + 128
                    let bAdd = 516 * d0 + 128
                    let c0 = 298 * (Int32(q[0]) - 16)
                    d[x * 3] = clamp((c0 + rAdd) >> 8)
                    d[x * 3 + 1] = clamp((c0 + gAdd) >> 8)
                    d[x * 3 + 2] = clamp((c0 + bAdd) >> 8)
                    if x + 1 < width {
                        let c1 = 298 * (Int32(q[2]) - 16)
                        d[x * 3 + 3] = clamp((c1 + rAdd) >> 8)
                        d[x * 3 + 4] = clamp((c1 + gAdd) >> 8)
                        d[x * 3 + 5] = clamp((c1 + bAdd) >> 8)
                    }
                    x += 2
                }
            }
        }
        return out
    }

    @inline(__always)
    static func clamp(_ v: Int32) -> UInt8 {
        v < 0 ? 0 : (v > 255 ? 255 : UInt8(truncatingIfNeeded: v))
    }
}
