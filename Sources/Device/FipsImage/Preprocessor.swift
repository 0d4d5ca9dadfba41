/// The ImageNet-style evaluation transform, matching torchvision on PIL
/// images exactly:
///
///     Resize(resizeShorter, interpolation=BICUBIC)   # shorter side -> resizeShorter
///     CenterCrop(cropSize)
///     ToTensor(); Normalize(mean, std)
///
/// - Resize: the shorter side becomes `resizeShorter`, the longer one
///   `Int(resizeShorter * long / short)` (truncated, as torchvision's
///   `_compute_resized_output_size`), resampled with PIL's BICUBIC (see
///   `BicubicResize`, bit-exact).
/// - CenterCrop: top = round((h - crop) / 2) with Python's round (half to
///   even), left likewise; a side shorter than the crop is padded with zeros
///   first, as torchvision's `center_crop` does.
/// - Tensor: float32 CHW, `(x / 255 - mean[c]) / std[c]` in float32.
///
/// Only the cropped window of the resized image is computed.
public struct Preprocessor {
    public let resizeShorter: Int
    public let cropSize: Int
    public let mean: (Float, Float, Float)
    public let std: (Float, Float, Float)
    /// 3 x 256 lookup of the normalised value of each byte per channel.
    let table: [Float]

    public init(resizeShorter: Int, cropSize: Int, mean: (Float, Float, Float), std: (Float, Float, Float)) {
        precondition(resizeShorter > 0 && cropSize > 0, "Preprocessor: sizes must be positive")
        self.resizeShorter = resizeShorter
        self.cropSize = cropSize
        self.mean = mean
        self.std = std
        var t = [Float](repeating: 0, count: 3 * 256)
        let m = [mean.0, mean.1, mean.2]
        let s = [std.0, std.1, std.2]
        for c in 0..<3 {
            for v in 0..<256 {
                t[c * 256 + v] = (Float(v) / 255 - m[c]) / s[c]
            }
        }
        self.table = t
    }

    /// ImageNet defaults: 256 -> 224, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
    public static var imageNet: Preprocessor {
        Preprocessor(resizeShorter: 256, cropSize: 224, mean: (0.485, 0.456, 0.406), std: (0.229, 0.224, 0.225))
    }

    /// Size after the resize step for a `width` x `height` input.
    public func resizedSize(width: Int, height: Int) -> (width: Int, height: Int) {
        precondition(width > 0 && height > 0, "Preprocessor: empty image")
        let short = min(width, height), long = max(width, height)
        // Python: int(size * long / short); the quotient is a correctly rounded double.
        let newLong = Int(Double(resizeShorter * long) / Double(short))
        return width <= height ? (resizeShorter, newLong) : (newLong, resizeShorter)
    }

    /// Offset of the crop in a resized side of length `dim` (negative: padding).
    func cropOffset(_ dim: Int) -> Int {
        if dim < cropSize { return -((cropSize - dim) / 2) }
        let d = dim - cropSize
        let f = d / 2
        if d % 2 == 0 { return f }
        return f % 2 == 0 ? f : f + 1   // round(f + 0.5) with ties to even
    }

    /// Resize (shorter side) and centre crop: a cropSize x cropSize image.
    public func resizeAndCrop(_ img: RGBImage) -> RGBImage {
        let (rw, rh) = resizedSize(width: img.width, height: img.height)
        let ox = cropOffset(rw), oy = cropOffset(rh)
        let c = cropSize
        if ox >= 0 && oy >= 0 {
            return BicubicResize.resizeWindow(img, width: rw, height: rh, x: ox, y: oy, windowWidth: c, windowHeight: c)
        }
        // A side shorter than the crop: zero padding around the valid window.
        let x0 = max(ox, 0), y0 = max(oy, 0)
        let x1 = min(ox + c, rw), y1 = min(oy + c, rh)
        let win = BicubicResize.resizeWindow(img, width: rw, height: rh, x: x0, y: y0, windowWidth: x1 - x0, windowHeight: y1 - y0)
        var out = RGBImage(width: c, height: c)
        let dx = x0 - ox, dy = y0 - oy
        for r in 0..<win.height {
            for b in 0..<(win.width * 3) {
                out.pixels[((dy + r) * c + dx) * 3 + b] = win.pixels[r * win.width * 3 + b]
            }
        }
        return out
    }

    /// The whole transform: resize, crop, normalise; 3 * cropSize * cropSize floats, CHW.
    public func tensor(_ img: RGBImage) -> [Float] {
        var out = [Float](repeating: 0, count: 3 * cropSize * cropSize)
        out.withUnsafeMutableBufferPointer { tensor(img, into: $0.baseAddress!) }
        return out
    }

    /// The whole transform into caller-owned memory of 3 * cropSize * cropSize floats.
    public func tensor(_ img: RGBImage, into dst: UnsafeMutablePointer<Float>) {
        normalize(resizeAndCrop(img), into: dst)
    }

    /// Only the last step, for an image that is already cropSize x cropSize.
    public func normalize(_ cropped: RGBImage, into dst: UnsafeMutablePointer<Float>) {
        precondition(cropped.width == cropSize && cropped.height == cropSize, "Preprocessor.normalize: image is not cropSize x cropSize")
        let plane = cropSize * cropSize
        cropped.pixels.withUnsafeBufferPointer { pBuf in
            table.withUnsafeBufferPointer { tBuf in
                let p = pBuf.baseAddress!
                let t = tBuf.baseAddress!
                for i in 0..<plane {
                    dst[i] = t[Int(p[i * 3])]
                    dst[plane + i] = t[256 + Int(p[i * 3 + 1])]
                    dst[2 * plane + i] = t[512 + Int(p[i * 3 + 2])]
                }
            }
        }
    }
}
