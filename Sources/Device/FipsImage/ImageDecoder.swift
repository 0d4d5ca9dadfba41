import CFipsSys
import CImageCodecs

/// Limits checked before anything large is allocated, and how small an
/// image the caller can use.
public struct DecodeLimits {
    /// The default pixel limit: an 8-megapixel RGB image is 24 MB, the most a
    /// decode may hold beyond the model (a small board's budget is tens of MB).
    public static let defaultMaxPixels = 8_000_000
    /// Largest accepted decoded width*height (for a JPEG, at the reduced
    /// size it decodes at), checked against the header before the pixel
    /// buffer is allocated. A multi-scan (progressive) JPEG's full-size
    /// coefficient buffer may take at most 3 * maxPixels bytes.
    public var maxPixels: Int = defaultMaxPixels
    /// Largest accepted file, checked before the file is read.
    public var maxFileBytes: Int = 64 << 20
    /// The shorter side the caller needs (the preprocessing's resize size):
    /// a JPEG is decoded at 1/2, 1/4 or 1/8 of its size in the DCT domain when
    /// its shorter side stays at least this. 0: always at full size.
    public var minShorterSide: Int = 0

    public init(maxPixels: Int = defaultMaxPixels, maxFileBytes: Int = 64 << 20, minShorterSide: Int = 0) {
        self.maxPixels = maxPixels
        self.maxFileBytes = maxFileBytes
        self.minShorterSide = minShorterSide
    }
}

/// JPEG and PNG to RGB8. The format is decided by the content (magic bytes).
/// A file whose name says one format and whose bytes hold the other (a PNG
/// named `x.jpg`) is refused by `load(path:)`: that is almost always a broken
/// export or upload and the user should hear about it. Unnamed buffers
/// (camera frames, HTTP bodies) go through `decode` by content alone. Greyscale is
/// replicated to RGB, palettes, CMYK and 16-bit samples are converted and
/// alpha is dropped, as PIL's `convert("RGB")` does. Truncated or corrupt
/// data is an error, never padded.
public enum ImageDecoder {
    // Linux errno values (identical on x86-64 and aarch64); Embedded Swift
    // cannot import Glibc for the names.
    static let ENOENT: Int32 = 2
    static let EISDIR: Int32 = 21
    static let EFBIG: Int32 = 27

    public static func load(path: String, limits: DecodeLimits = .init()) throws(ImageError) -> RGBImage {
        switch fips_path_kind(path) {
        case 0: throw .notFound(path: path)
        case 2: throw .isDirectory(path: path)
        default: break
        }
        var size = 0
        var err: Int32 = 0
        guard let buf = fips_read_file(path, max(0, limits.maxFileBytes), &size, &err) else {
            switch err {
            case EFBIG: throw .fileTooLarge(path: path, limit: limits.maxFileBytes)
            case EISDIR: throw .isDirectory(path: path)
            case ENOENT: throw .notFound(path: path)
            default: throw .io(path: path, errno: err)
            }
        }
        defer { fips_free(buf) }
        if let named = formatNamedBy(path: path), size > 0 {
            let sniffed = Int(fips_sniff_format(buf, size))
            let holds = sniffed == FIPS_FORMAT_JPEG ? "JPEG" : (sniffed == FIPS_FORMAT_PNG ? "PNG" : "")
            if !holds.isEmpty && holds != named { throw .extensionMismatch(path: path, named: named, holds: holds) }
        }
        return try decode(UnsafeRawBufferPointer(start: UnsafeRawPointer(buf), count: size), name: path, limits: limits)
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer, name: String, limits: DecodeLimits = .init()) throws(ImageError) -> RGBImage {
        guard let base = bytes.baseAddress, bytes.count > 0 else { throw .empty(path: name) }
        let data = base.assumingMemoryBound(to: UInt8.self)
        let format = Int(fips_sniff_format(data, bytes.count))
        let formatName: String
        switch format {
        case FIPS_FORMAT_JPEG: formatName = "JPEG"
        case FIPS_FORMAT_PNG: formatName = "PNG"
        default: throw .notAnImage(path: name)
        }
        var img = fips_image()
        var msg = [CChar](repeating: 0, count: 256)
        let maxPixels = UInt64(max(0, limits.maxPixels))
        let minShort = UInt32(clamping: max(0, limits.minShorterSide))
        let rc: Int32 = msg.withUnsafeMutableBufferPointer { m in
            if format == FIPS_FORMAT_JPEG {
                return fips_decode_jpeg(data, bytes.count, maxPixels, minShort, &img, m.baseAddress, m.count)
            } else {
                return fips_decode_png(data, bytes.count, maxPixels, &img, m.baseAddress, m.count)
            }
        }
        switch Int(rc) {
        case FIPS_DECODE_OK:
            break
        case FIPS_DECODE_TOO_LARGE where img.scale_denom > 1:
            throw .tooManyPixelsReduced(path: name, width: Int(img.source_width), height: Int(img.source_height),
                                        scale: Int(img.scale_denom), reducedWidth: Int(img.width),
                                        reducedHeight: Int(img.height), limit: limits.maxPixels)
        case FIPS_DECODE_TOO_LARGE:
            throw .tooManyPixels(path: name, width: Int(img.source_width), height: Int(img.source_height), limit: limits.maxPixels)
        case FIPS_DECODE_TOO_MUCH_MEMORY:
            // 3 * maxPixels cannot overflow: this needs maxPixels under a third of
            // a JPEG's coefficient bytes, which are under 2^36.
            throw .decoderMemory(path: name, width: Int(img.source_width), height: Int(img.source_height),
                                 bytes: Int(img.work_bytes), limit: 3 * limits.maxPixels)
        case FIPS_DECODE_TRUNCATED:
            throw .truncated(path: name, format: formatName)
        case FIPS_DECODE_NO_MEMORY:
            throw .outOfMemory(path: name)
        case FIPS_DECODE_BAD_SIZE:
            throw .zeroSize(path: name, format: formatName)
        case FIPS_DECODE_UNSUPPORTED:
            throw .unsupported(path: name, format: formatName, reason: cText(msg))
        default:
            throw .corrupt(path: name, format: formatName, reason: cText(msg))
        }
        let w = Int(img.width), h = Int(img.height)
        guard let px = img.pixels else { throw .outOfMemory(path: name) }
        let pixels = [UInt8](UnsafeBufferPointer(start: px, count: w * h * 3))
        fips_image_free(&img)
        return RGBImage(width: w, height: h, pixels: pixels)
    }

    /// "JPEG" for .jpg/.jpeg, "PNG" for .png (any case), else nil.
    static func formatNamedBy(path: String) -> String? {
        var ext: [UInt8] = []
        for b in path.utf8.reversed() {
            if b == 46 { break }
            if b == 47 || ext.count > 5 { return nil }
            ext.append(b >= 65 && b <= 90 ? b + 32 : b)
        }
        let e = String(decoding: ext.reversed(), as: UTF8.self)
        if e == "jpg" || e == "jpeg" { return "JPEG" }
        if e == "png" { return "PNG" }
        return nil
    }

    static func cText(_ buf: [CChar]) -> String {
        var bytes: [UInt8] = []
        for c in buf {
            if c == 0 { break }
            bytes.append(UInt8(bitPattern: c))
        }
        if bytes.isEmpty { return "malformed data" }
        return String(decoding: bytes, as: UTF8.self)
    }
}
