import FipsArtifact
import FipsDeviceSupport
import FipsImage
import FipsViT

/// The C API's error codes (include/fips.h).
enum CStatus {
    static let ok: Int32 = 0
    static let argument: Int32 = -1
    static let image: Int32 = -2
    static let noHead: Int32 = -3
    static let noImage: Int32 = -4
}

/// One open model behind a `fips_model *`: the classifier fips-run and fipsd
/// use (same decoder, preprocessing, kernels), the model's planned decode
/// limits, C copies of its labels, the last error, and whether the buffers
/// hold an image's result.
final class CModel {
    let classifier: Classifier
    let limits: DecodeLimits
    let labels: [UnsafeMutablePointer<CChar>]
    let error: UnsafeMutablePointer<CChar>
    static let errorBytes = 512
    var hasResult = false

    init(path: String, threads: Int) throws(ArtifactError) {
        let backend = PooledBackend(threads: threads > 0 ? threads : WorkerPool.defaultThreads)
        classifier = try Classifier(path: path, backend: backend, options: ExecutorOptions())
        // A planned model's input limits hold (its budget is a promise); an unplanned one gets fips-run's defaults.
        let planned = PlannedLimits(model: path, classifier.artifact, maxPixels: nil, maxInputBytes: nil,
                                    fallback: InputLimits(maxPixels: DecodeLimits.defaultMaxPixels, maxInputBytes: 64 << 20,
                                                          maxConnections: 1, budgetBytes: 0),
                                    inputBytesFlag: "max_input_bytes")
        limits = classifier.decodeLimits(planned.decodeLimits)
        let c = classifier.config, names = classifier.artifact.labels
        labels = (0..<c.numClasses).map { k in cStringCopy(k < names.count ? names[k] : "class_\(k)") }
        error = .allocate(capacity: CModel.errorBytes)
        error[0] = 0
    }

    deinit {
        for l in labels { l.deallocate() }
        error.deallocate()
    }

    /// Records `message` as the last error and returns `status`.
    func fail(_ status: Int32, _ message: String) -> Int32 {
        copyCString(message, into: error, capacity: CModel.errorBytes)
        return status
    }

    /// Preprocesses and runs a decoded image, or records why there is none.
    func run(_ r: Result<RGBImage, ImageError>) -> Int32 {
        switch r {
        case .success(let img):
            classifier.preprocess(img)
            classifier.forward()
            hasResult = true
            error[0] = 0
            return CStatus.ok
        case .failure(let e):
            hasResult = false   // never the previous image's answer for this one
            return fail(CStatus.image, e.message)
        }
    }

    /// A raw frame's geometry: positive sizes, rows of at least `rowBytes`, within the pixel limit.
    func checkFrame(width: Int, height: Int, stride: Int, rowBytes: Int, what: String) -> Int32? {
        if width <= 0 || height <= 0 || stride < rowBytes {
            return fail(CStatus.argument, "\(what): bad geometry \(width)x\(height), stride \(stride) (at least \(rowBytes))")
        }
        if width * height > limits.maxPixels {
            return fail(CStatus.image, "\(what): \(width)x\(height) is over the limit of \(limits.maxPixels) pixels")
        }
        return nil
    }
}

/// A NUL-terminated copy of `s` (freed with deallocate()).
func cStringCopy(_ s: String) -> UnsafeMutablePointer<CChar> {
    let bytes = Array(s.utf8)
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
    copyCString(s, into: p, capacity: bytes.count + 1)
    return p
}

/// `s` into `p` (capacity bytes), cut at a character boundary if too long, always terminated.
func copyCString(_ s: String, into p: UnsafeMutablePointer<CChar>, capacity: Int) {
    guard capacity > 0 else { return }
    var n = 0
    let bytes = Array(s.utf8)
    while n < bytes.count && n < capacity - 1 { n += 1 }
    while n > 0 && n < bytes.count && bytes[n] & 0xC0 == 0x80 { n -= 1 }   // not inside a UTF-8 sequence
    for i in 0..<n { p[i] = CChar(bitPattern: bytes[i]) }
    p[n] = 0
}
