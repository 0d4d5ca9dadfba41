import CFipsSys

/// Everything that can go wrong while reading or decoding an image. `message`
/// is one line that names the file (or the name given to `decode`) and the
/// problem.
public enum ImageError: Error {
    case notFound(path: String)
    case isDirectory(path: String)
    case io(path: String, errno: Int32)
    case fileTooLarge(path: String, limit: Int)
    case empty(path: String)
    case notAnImage(path: String)
    case truncated(path: String, format: String)
    case corrupt(path: String, format: String, reason: String)
    case tooManyPixels(path: String, width: Int, height: Int, limit: Int)
    /// A JPEG still over the limit at the reduced size it would decode at.
    case tooManyPixelsReduced(path: String, width: Int, height: Int, scale: Int, reducedWidth: Int, reducedHeight: Int, limit: Int)
    /// A progressive JPEG: libjpeg keeps every coefficient of the full-size image.
    case decoderMemory(path: String, width: Int, height: Int, bytes: Int, limit: Int)
    case zeroSize(path: String, format: String)
    case unsupported(path: String, format: String, reason: String)
    case outOfMemory(path: String)
    case extensionMismatch(path: String, named: String, holds: String)

    public var message: String {
        switch self {
        case .notFound(let p):
            return "\(p): no such file"
        case .isDirectory(let p):
            return "\(p): is a directory"
        case .io(let p, let e):
            return "\(p): cannot read image: \(imageErrnoText(e))"
        case .fileTooLarge(let p, let limit):
            return "\(p): file is larger than the limit of \(limit) bytes"
        case .empty(let p):
            return "\(p): empty file (0 bytes)"
        case .notAnImage(let p):
            return "\(p): not a JPEG or PNG image"
        case .truncated(let p, let f):
            return "\(p): truncated \(f) (premature end of data)"
        case .corrupt(let p, let f, let r):
            return "\(p): corrupt \(f): \(r)"
        case .tooManyPixels(let p, let w, let h, let limit):
            return "\(p): image is \(w)x\(h) = \(w * h) pixels, over the limit of \(limit)"
        case .tooManyPixelsReduced(let p, let w, let h, let s, let rw, let rh, let limit):
            return "\(p): image is \(w)x\(h) = \(w * h) pixels; decoded at 1/\(s) it is \(rw)x\(rh) = \(rw * rh) pixels, over the limit of \(limit)"
        case .decoderMemory(let p, let w, let h, let bytes, let limit):
            return "\(p): progressive JPEG of \(w)x\(h) needs \(bytes) bytes of decoder memory at any scale, over the limit of \(limit) (3 bytes per allowed pixel)"
        case .zeroSize(let p, let f):
            return "\(p): \(f) has zero width or height"
        case .unsupported(let p, let f, let r):
            return "\(p): unsupported \(f): \(r)"
        case .outOfMemory(let p):
            return "\(p): out of memory while decoding"
        case .extensionMismatch(let p, let named, let holds):
            return "\(p): file is named as \(named) but holds \(holds) data; rename or re-encode it"
        }
    }
}

func imageErrnoText(_ e: Int32) -> String {
    guard let s = fips_strerror(e) else { return "error \(e)" }
    return String(cString: s)
}
