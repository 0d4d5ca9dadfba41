/// Bicubic resampling of 8-bit RGB that reproduces Pillow's
/// `Image.resize((w, h), Image.BICUBIC)` bit for bit (libImaging/Resample.c,
/// Pillow 11): separable, a horizontal pass then a vertical pass, each with
/// the Keys cubic (a = -0.5) whose support is widened by the downscale factor
/// (antialiasing), weights normalised to sum 1, converted to fixed point with
/// 22 fractional bits (PIL's PRECISION_BITS = 32 - 8 - 2), accumulated in
/// 32-bit integers starting from half a unit, and shifted and clipped to
/// uint8 after each pass. A pass whose size does not change is skipped, as
/// in PIL.
///
/// `resizeWindow` computes only a window of the resized image (for a centre
/// crop); each output pixel is computed exactly as in the full resize, so
/// the result equals resize-then-crop.
public enum BicubicResize {
    static let precisionBits: Int32 = 22

    /// The whole image resized to `width` x `height`.
    public static func resize(_ img: RGBImage, width: Int, height: Int) -> RGBImage {
        resizeWindow(img, width: width, height: height, x: 0, y: 0, windowWidth: width, windowHeight: height)
    }

    /// Pixels `[x, x + windowWidth) x [y, y + windowHeight)` of `img` resized
    /// to `width` x `height`.
    public static func resizeWindow(_ img: RGBImage, width: Int, height: Int,
                                    x: Int, y: Int, windowWidth: Int, windowHeight: Int) -> RGBImage {
        precondition(img.width > 0 && img.height > 0, "BicubicResize: empty source image")
        precondition(width > 0 && height > 0, "BicubicResize: empty target size")
        precondition(x >= 0 && y >= 0 && windowWidth >= 0 && windowHeight >= 0
                     && x + windowWidth <= width && y + windowHeight <= height,
                     "BicubicResize: window outside the resized image")
        var out = RGBImage(width: windowWidth, height: windowHeight)
        if windowWidth == 0 || windowHeight == 0 { return out }

        let needHorizontal = width != img.width
        let needVertical = height != img.height
        let vertical = needVertical ? ResampleCoefficients(inSize: img.height, outSize: height, first: y, count: windowHeight) : nil
        let horizontal = needHorizontal ? ResampleCoefficients(inSize: img.width, outSize: width, first: x, count: windowWidth) : nil

        // Source rows that the vertical pass reads.
        var rowLo = y, rowHi = y + windowHeight
        if let v = vertical {
            rowLo = Int.max
            rowHi = 0
            for i in 0..<windowHeight {
                rowLo = min(rowLo, v.start[i])
                rowHi = max(rowHi, v.start[i] + v.taps[i])
            }
        }
        let tempRows = rowHi - rowLo
        let rowBytes = windowWidth * 3
        var temp = [UInt8](repeating: 0, count: tempRows * rowBytes)

        // Horizontal pass (or a column copy) into `temp`.
        img.pixels.withUnsafeBufferPointer { srcBuf in
            temp.withUnsafeMutableBufferPointer { tmpBuf in
                let src = srcBuf.baseAddress!
                let tmp = tmpBuf.baseAddress!
                let srcStride = img.width * 3
                if let h = horizontal {
                    h.weights.withUnsafeBufferPointer { wBuf in
                        h.start.withUnsafeBufferPointer { sBuf in
                            h.taps.withUnsafeBufferPointer { nBuf in
                                horizontalPass(src: src, srcStride: srcStride, rowLo: rowLo, rows: tempRows,
                                               dst: tmp, outWidth: windowWidth, ksize: h.ksize,
                                               weights: wBuf.baseAddress!, start: sBuf.baseAddress!, taps: nBuf.baseAddress!)
                            }
                        }
                    }
                } else {
                    for r in 0..<tempRows {
                        (tmp + r * rowBytes).update(from: src + (rowLo + r) * srcStride + x * 3, count: rowBytes)
                    }
                }
            }
        }

        // Vertical pass (or a row copy) into the output.
        temp.withUnsafeBufferPointer { tmpBuf in
            out.pixels.withUnsafeMutableBufferPointer { outBuf in
                let tmp = tmpBuf.baseAddress!
                let dst = outBuf.baseAddress!
                if let v = vertical {
                    var acc = [Int32](repeating: 0, count: rowBytes)
                    acc.withUnsafeMutableBufferPointer { accBuf in
                        v.weights.withUnsafeBufferPointer { wBuf in
                            verticalPass(src: tmp, rowBytes: rowBytes, rowLo: rowLo, dst: dst, outRows: windowHeight,
                                         ksize: v.ksize, weights: wBuf.baseAddress!, start: v.start, taps: v.taps,
                                         acc: accBuf.baseAddress!)
                        }
                    }
                } else {
                    dst.update(from: tmp + (y - rowLo) * rowBytes, count: windowHeight * rowBytes)
                }
            }
        }
        return out
    }

    @inline(__always)
    static func clip8(_ v: Int32) -> UInt8 {
        let s = v >> precisionBits
        if s < 0 { return 0 }
        if s > 255 { return 255 }
        return UInt8(truncatingIfNeeded: s)
    }

    static func horizontalPass(src: UnsafePointer<UInt8>, srcStride: Int, rowLo: Int, rows: Int,
                               dst: UnsafeMutablePointer<UInt8>, outWidth: Int, ksize: Int,
                               weights: UnsafePointer<Int32>, start: UnsafePointer<Int>, taps: UnsafePointer<Int>) {
        let half: Int32 = 1 << (precisionBits - 1)
        for r in 0..<rows {
            let srow = src + (rowLo + r) * srcStride
            let drow = dst + r * outWidth * 3
            for j in 0..<outWidth {
                let k = weights + j * ksize
                var p = srow + start[j] * 3
                var s0 = half, s1 = half, s2 = half
                for t in 0..<taps[j] {
                    let c = k[t]
                    s0 &+= Int32(p[0]) &* c
                    s1 &+= Int32(p[1]) &* c
                    s2 &+= Int32(p[2]) &* c
                    p += 3
                }
                drow[j * 3] = clip8(s0)
                drow[j * 3 + 1] = clip8(s1)
                drow[j * 3 + 2] = clip8(s2)
            }
        }
    }

    static func verticalPass(src: UnsafePointer<UInt8>, rowBytes: Int, rowLo: Int,
                             dst: UnsafeMutablePointer<UInt8>, outRows: Int, ksize: Int,
                             weights: UnsafePointer<Int32>, start: [Int], taps: [Int],
                             acc: UnsafeMutablePointer<Int32>) {
        let half: Int32 = 1 << (precisionBits - 1)
        for i in 0..<outRows {
            let k = weights + i * ksize
            let first = start[i] - rowLo
            acc.update(repeating: half, count: rowBytes)
            for t in 0..<taps[i] {
                let c = k[t]
                let srow = src + (first + t) * rowBytes
                for b in 0..<rowBytes {
                    acc[b] &+= Int32(srow[b]) &* c
                }
            }
            let drow = dst + i * rowBytes
            for b in 0..<rowBytes { drow[b] = clip8(acc[b]) }
        }
    }
}

/// PIL's `precompute_coeffs` (BICUBIC, box = the whole image) followed by
/// `normalize_coeffs_8bpc`, for outputs `first ..< first + count`.
struct ResampleCoefficients {
    let ksize: Int
    var start: [Int]       // first input index per output (PIL's xmin)
    var taps: [Int]        // number of inputs per output (PIL's xmax after -= xmin)
    var weights: [Int32]   // count * ksize, fixed point, PRECISION_BITS fractional bits

    init(inSize: Int, outSize: Int, first: Int, count: Int) {
        let scale = Double(inSize) / Double(outSize)
        var filterScale = scale
        if filterScale < 1.0 { filterScale = 1.0 }
        let support = 2.0 * filterScale          // bicubic support 2, widened when downscaling
        let ksize = Int(support.rounded(.up)) * 2 + 1
        self.ksize = ksize
        start = [Int](repeating: 0, count: count)
        taps = [Int](repeating: 0, count: count)
        weights = [Int32](repeating: 0, count: count * ksize)
        var k = [Double](repeating: 0, count: ksize)
        let ss = 1.0 / filterScale
        let one = Double(Int32(1) << BicubicResize.precisionBits)
        for i in 0..<count {
            let xx = first + i
            let center = (Double(xx) + 0.5) * scale
            var ww = 0.0
            var xmin = Int(center - support + 0.5)   // C (int) cast: truncation toward zero
            if xmin < 0 { xmin = 0 }
            var xmax = Int(center + support + 0.5)
            if xmax > inSize { xmax = inSize }
            xmax -= xmin
            for x in 0..<xmax {
                let w = ResampleCoefficients.bicubic((Double(x + xmin) - center + 0.5) * ss)
                k[x] = w
                ww += w
            }
            for x in 0..<xmax {
                if ww != 0.0 { k[x] /= ww }
                let v = k[x]
                weights[i * ksize + x] = v < 0 ? Int32(-0.5 + v * one) : Int32(0.5 + v * one)
            }
            start[i] = xmin
            taps[i] = xmax
        }
    }

    /// Keys cubic convolution kernel with a = -0.5, written as PIL writes it.
    @inline(__always)
    static func bicubic(_ x0: Double) -> Double {
        let a = -0.5
        var x = x0
        if x < 0.0 { x = -x }
        if x < 1.0 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
        if x < 2.0 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0.0
    }
}
