import FipsArtifact
import FipsImage
import FipsViT

/// The per-image buffers a `Classifier` allocates next to the executor's
/// arena: the preprocessed input, the final features and the logits.
/// fips-plan counts `bytes` in a model's memory (`PlanMemory.ioBytes`) from
/// this same definition, so its figure is exact for fips-run and fipsd alike.
public struct ClassifierBuffers {
    public let inputFloats, featureFloats, logitFloats: Int
    public init(config c: ViTConfig) {
        inputFloats = c.channels * c.imageSize * c.imageSize
        featureFloats = c.tokenCount * c.dim
        logitFloats = max(1, c.numClasses)
    }
    public var bytes: Int { 4 * (inputFloats + featureFloats + logitFloats) }
}

/// A mapped model with its executor, preprocessing and buffers: decodes an
/// image, preprocesses it, runs the forward pass and formats the prediction
/// the way fips-run and fipsd print it.
public final class Classifier {
    public let artifact: Artifact
    public let executor: ViTExecutor<PooledBackend>
    public let preprocessor: Preprocessor
    public let buffers: ClassifierBuffers
    public let input: UnsafeMutablePointer<Float>
    /// The final LayerNorm output, [tokens, dim]; the CLS feature first.
    public let features: UnsafeMutablePointer<Float>
    public let logits: UnsafeMutablePointer<Float>

    public var config: ViTConfig { artifact.config }

    /// Maps and validates the model at `path` and builds its executor.
    public init(path: String, backend: PooledBackend, options: ExecutorOptions) throws(ArtifactError) {
        let a = try Artifact(path: path)
        executor = try ViTExecutor(artifact: a, backend: backend, options: options)
        artifact = a
        let c = a.config
        preprocessor = Preprocessor(resizeShorter: c.resizeShorter, cropSize: c.cropSize, mean: c.mean, std: c.std)
        buffers = ClassifierBuffers(config: c)
        input = .allocate(capacity: buffers.inputFloats)
        features = .allocate(capacity: buffers.featureFloats)
        logits = .allocate(capacity: buffers.logitFloats)
    }

    deinit {
        input.deallocate()
        features.deallocate()
        logits.deallocate()
    }

    /// `base` with the shorter side this model's preprocessing resizes to, so
    /// that a large JPEG decodes at 1/2, 1/4 or 1/8 of its size (DCT scaling)
    /// instead of at full size and is then resized exactly as before.
    public func decodeLimits(_ base: DecodeLimits) -> DecodeLimits {
        var l = base
        l.minShorterSide = preprocessor.resizeShorter
        return l
    }

    /// An image file, decoded.
    public static func decode(path: String, limits: DecodeLimits) -> Result<RGBImage, ImageError> {
        do { return .success(try ImageDecoder.load(path: path, limits: limits)) }
        catch { return .failure(error) }
    }

    /// An image in memory (an HTTP body, a stdin frame), decoded; `name` names it in errors.
    public static func decode(_ bytes: UnsafeRawBufferPointer, name: String, limits: DecodeLimits) -> Result<RGBImage, ImageError> {
        do { return .success(try ImageDecoder.decode(bytes, name: name, limits: limits)) }
        catch { return .failure(error) }
    }

    /// Resize, crop and normalise `img` into the input buffer.
    public func preprocess(_ img: RGBImage) {
        preprocessor.tensor(img, into: input)
    }

    /// One forward pass of the input buffer into the features (and logits, with a head).
    public func forward() {
        executor.forward(batch: 1, images: input, features: features, logits: config.hasHead ? logits : nil)
    }

    /// The test pass at load: a mid-grey image through the whole network;
    /// false when the outputs are not finite.
    public func outputsFiniteOnGrey() -> Bool {
        let c = config
        let grey = RGBImage(width: c.cropSize, height: c.cropSize,
                            pixels: [UInt8](repeating: 128, count: c.cropSize * c.cropSize * 3))
        preprocessor.normalize(grey, into: input)
        forward()
        var finite = true
        for k in 0..<c.dim where !features[k].isFinite { finite = false }
        if c.hasHead { for k in 0..<c.numClasses where !logits[k].isFinite { finite = false } }
        return finite
    }

    /// Why `--top-k` cannot be honoured: the model has no head (nil when it has one).
    public func topKRefusal(model path: String) -> String? {
        config.hasHead ? nil
            : "\(path) has no classification head, so --top-k has no labels to rank: use --embedding for its CLS feature, or train a head with `fips head`"
    }

    /// The last forward pass's prediction as JSON members: `, "top": [{"label":
    /// ..., "score": ...}, ...]` (the `topK` best, by softmax) for a model with a
    /// head, else `, "cls_norm": <L2 norm of the CLS feature>`; with
    /// `embedding`, also `, "embedding": [...]`: the CLS token's final
    /// LayerNorm output (dim floats, 9 significant digits, which round-trip a
    /// float exactly), the image's feature vector for retrieval or a
    /// nearest-neighbour search against labelled examples.
    public func appendPrediction(to t: inout TextBuffer, topK: Int, embedding: Bool = false) {
        let c = config
        if embedding {
            t.append(", \"embedding\": [")
            for k in 0..<c.dim {
                if k > 0 { t.append(", ") }
                t.append(Double(features[k]), precision: 9)
            }
            t.append("]")
        }
        if c.hasHead {
            t.append(", \"top\": [")
            let probs = softmax(logits, c.numClasses)
            let order = topIndices(probs, k: min(topK, c.numClasses))
            for (i, k) in order.enumerated() {
                t.append(i == 0 ? "{\"label\": " : ", {\"label\": ")
                t.appendJSONString(k < artifact.labels.count ? artifact.labels[k] : "class_\(k)")
                t.append(", \"score\": ")
                t.append(Double(probs[k]), precision: 6)
                t.append("}")
            }
            t.append("]")
        } else {
            var s: Double = 0
            for k in 0..<c.dim { s += Double(features[k]) * Double(features[k]) }
            t.append(", \"cls_norm\": ")
            t.append(s.squareRoot(), precision: 9)
        }
    }
}
