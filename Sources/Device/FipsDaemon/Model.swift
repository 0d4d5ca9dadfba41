import CFipsDaemon
import CFipsSys
import FipsArtifact
import FipsImage
import FipsKernels
import FipsRunner
import FipsViT

/// What one frame gave.
public struct Classification {
    /// (label, probability), best first; empty for a model without a head.
    public var top: [(label: String, score: Float)] = []
    /// L2 norm of the CLS feature (models without a head, as fips-run prints it).
    public var clsNorm: Double = 0
    /// Forward pass only, and decode + preprocess + forward.
    public var forwardMs: Double = 0
    public var totalMs: Double = 0
}

/// A mapped model with its executor and buffers: everything a frame needs,
/// allocated once at load. Replaced as a whole on SIGHUP.
public final class LoadedModel {
    public let path: String
    public let artifact: Artifact
    public let executor: ViTExecutor<PooledBackend>
    public let pre: Preprocessor
    /// From the header: format version, payload CRC-32 (the model's identity), bytes.
    public let version: UInt32
    public let checksum: UInt32
    public let fileBytes: Int
    public let loadedAt: String
    let input: UnsafeMutablePointer<Float>
    let features: UnsafeMutablePointer<Float>
    let logits: UnsafeMutablePointer<Float>

    deinit {
        input.deallocate()
        features.deallocate()
        logits.deallocate()
    }

    /// Maps, validates and runs one test forward pass on a grey image; a
    /// model whose outputs are not finite is refused.
    public init(path: String, backend: PooledBackend, options: ExecutorOptions) throws(ArtifactError) {
        let a = try Artifact(path: path)
        let ex = try ViTExecutor(artifact: a, backend: backend, options: options)
        let c = a.config
        self.path = path
        self.artifact = a
        self.executor = ex
        self.pre = Preprocessor(resizeShorter: c.resizeShorter, cropSize: c.cropSize, mean: c.mean, std: c.std)
        self.version = a.version
        self.fileBytes = a.fileBytes
        var header = [UInt8](repeating: 0, count: 64)
        let got = header.withUnsafeMutableBytes { fipsd_read_prefix(path, $0.baseAddress, 64) }
        if got == 64 {
            checksum = UInt32(header[56]) | UInt32(header[57]) << 8 | UInt32(header[58]) << 16 | UInt32(header[59]) << 24
        } else {
            checksum = 0
        }
        self.loadedAt = utcNow()
        input = .allocate(capacity: c.channels * c.imageSize * c.imageSize)
        features = .allocate(capacity: c.tokenCount * c.dim)
        logits = .allocate(capacity: max(1, c.numClasses))
        // The test pass: a mid-grey image through the whole network.
        let grey = RGBImage(width: c.cropSize, height: c.cropSize,
                            pixels: [UInt8](repeating: 128, count: c.cropSize * c.cropSize * 3))
        pre.normalize(grey, into: input)
        ex.forward(batch: 1, images: input, features: features, logits: c.hasHead ? logits : nil)
        var finite = true
        for k in 0..<c.dim where !features[k].isFinite { finite = false }
        if c.hasHead { for k in 0..<c.numClasses where !logits[k].isFinite { finite = false } }
        if !finite {
            throw .malformed(path: path, reason: "a test forward pass gives non-finite outputs")
        }
    }

    /// Decoded image -> classification (times the preprocessing and forward pass).
    public func classify(_ img: RGBImage, topK: Int, startedNs: Int64) -> Classification {
        let c = artifact.config
        pre.tensor(img, into: input)
        let t0 = fips_now_ns()
        executor.forward(batch: 1, images: input, features: features, logits: c.hasHead ? logits : nil)
        let t1 = fips_now_ns()
        var r = Classification()
        r.forwardMs = Double(t1 - t0) / 1e6
        r.totalMs = Double(t1 - startedNs) / 1e6
        if c.hasHead {
            // The same softmax and ordering as fips-run, so both print the same labels and scores.
            let probs = softmax(logits, c.numClasses)
            for k in topIndices(probs, k: min(topK, c.numClasses)) {
                r.top.append((label: k < artifact.labels.count ? artifact.labels[k] : "class_\(k)", score: probs[k]))
            }
        } else {
            var s: Double = 0
            for k in 0..<c.dim { s += Double(features[k]) * Double(features[k]) }
            r.clsNorm = s.squareRoot()
        }
        return r
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

/// A short machine-readable kind for each image error, for /metrics.
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
    case .tooManyPixels: return "too_many_pixels"
    case .zeroSize: return "zero_size"
    case .unsupported: return "unsupported"
    case .outOfMemory: return "out_of_memory"
    case .extensionMismatch: return "extension_mismatch"
    }
}
