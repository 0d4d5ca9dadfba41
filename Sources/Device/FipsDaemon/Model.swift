import CFipsDaemon
import CFipsSys
import FipsArtifact
import FipsDeviceSupport
import FipsImage
import FipsViT

/// A mapped model with its `Classifier` (executor, preprocessing, buffers):
/// everything a frame needs, allocated once at load. Replaced as a whole on SIGHUP.
public final class LoadedModel {
    public let path: String
    public let classifier: Classifier
    public let loadedAt: String
    /// Unix time of the load, and how long mapping, checks and the test pass took.
    public let loadedAtSeconds: Double
    public let loadSeconds: Double

    public var artifact: Artifact { classifier.artifact }
    /// From the header: format version, payload CRC-32 (the model's identity), bytes.
    public var version: UInt32 { artifact.version }
    public var checksum: UInt32 { artifact.checksum }
    public var fileBytes: Int { artifact.fileBytes }

    /// Maps, validates and runs one test forward pass on a grey image; a
    /// model whose outputs are not finite is refused.
    public init(path: String, backend: PooledBackend, options: ExecutorOptions) throws(ArtifactError) {
        let t0 = fips_now_ns()
        let m = try Classifier(path: path, backend: backend, options: options)
        self.path = path
        self.classifier = m
        self.loadedAt = utcNow()
        self.loadedAtSeconds = fipsd_unix_time()
        if !m.outputsFiniteOnGrey() {
            throw .malformed(path: path, reason: "a test forward pass gives non-finite outputs")
        }
        loadSeconds = Double(fips_now_ns() - t0) / 1e9
    }

    /// One more forward pass on the test image, timed: after the load's pass has
    /// faulted the mapped weights in, what a frame's forward pass costs on this
    /// board. Run once at start-up (the metrics' buckets), not on every reload.
    public func timedForwardSeconds() -> Double {
        let t0 = fips_now_ns()
        classifier.forward()
        return Double(fips_now_ns() - t0) / 1e9
    }

    /// Preprocesses and runs a decoded image; the forward pass's time, and
    /// decode + preprocess + forward since `startedNs`, in milliseconds.
    public func run(_ img: RGBImage, startedNs: Int64) -> (forwardMs: Double, totalMs: Double) {
        classifier.preprocess(img)
        let t0 = fips_now_ns()
        classifier.forward()
        let t1 = fips_now_ns()
        return (Double(t1 - t0) / 1e6, Double(t1 - startedNs) / 1e6)
    }
}

/// "2026-12-01T06:15:00.123Z"
public func utcNow() -> String {
    var buf = [CChar](repeating: 0, count: 48)
    let n = Int(fipsd_utc_now(&buf, 48))
    var bytes = [UInt8]()
    for i in 0..<min(n, 47) { bytes.append(UInt8(bitPattern: buf[i])) }
    return String(decoding: bytes, as: UTF8.self)
}

/// Every `errorKind` (fipsd_frame_errors_total shows each from 0).
public let imageErrorKinds = [
    "not_found", "not_a_file", "io", "too_many_bytes", "empty", "not_an_image", "truncated", "corrupt",
    "too_many_pixels", "decoder_memory", "zero_size", "unsupported", "out_of_memory", "extension_mismatch",
]

/// A short machine-readable kind for each image error: the result line's
/// "error_kind" and fipsd_frame_errors_total's kind label.
public func errorKind(_ e: ImageError) -> String {
    switch e {
    case .notFound: return "not_found"
    case .isDirectory: return "not_a_file"
    case .io: return "io"
    case .fileTooLarge: return "too_many_bytes"
    case .empty: return "empty"
    case .notAnImage: return "not_an_image"
    case .truncated: return "truncated"
    case .corrupt: return "corrupt"
    case .tooManyPixels, .tooManyPixelsReduced: return "too_many_pixels"
    case .decoderMemory: return "decoder_memory"
    case .zeroSize: return "zero_size"
    case .unsupported: return "unsupported"
    case .outOfMemory: return "out_of_memory"
    case .extensionMismatch: return "extension_mismatch"
    }
}
