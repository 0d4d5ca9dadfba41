/// Shape and preprocessing of a Vision Transformer, as stored in a `.fips`
/// artifact. Plain words on disk (see docs/ARTIFACT.md) so the device reader
/// needs no parser.
public struct ViTConfig: Equatable {
    public enum HeadPooling: UInt32 {
        /// head(LN(x)[0])
        case cls = 0
        /// head(concat(LN(x)[0], mean(LN(x)[1...]))), as HF `Dinov2ForImageClassification`.
        case clsAndPatchMean = 1
        /// head(concat(LN(x)[0], LN(x)[1])): distilled DeiT's two heads, averaged,
        /// as one Linear ([W_cls, W_dist] / 2, (b_cls + b_dist) / 2).
        case clsAndDistillation = 2
    }
    public enum Family: UInt32 { case dinov2 = 1, vit = 2, deit = 3 }

    public var family: Family = .dinov2
    public var imageSize: Int = 224
    public var patchSize: Int = 14
    public var channels: Int = 3
    public var dim: Int = 384
    public var depth: Int = 12
    public var heads: Int = 6
    public var mlpDim: Int = 1536
    public var numClasses: Int = 0
    public var layerNormEps: Float = 1e-6
    public var hasLayerScale: Bool = true
    public var geluTanh: Bool = false
    /// Distilled DeiT: a second learned token (`dist_token`) after the class token.
    public var hasDistillationToken: Bool = false
    public var headPooling: HeadPooling = .cls
    public var resizeShorter: Int = 256
    public var cropSize: Int = 224
    public var mean: (Float, Float, Float) = (0.485, 0.456, 0.406)
    public var std: (Float, Float, Float) = (0.229, 0.224, 0.225)

    public init() {}

    public var gridSize: Int { imageSize / patchSize }
    public var patchCount: Int { gridSize * gridSize }
    /// Tokens before the patches: the class token, and the distillation token.
    public var prefixTokenCount: Int { hasDistillationToken ? 2 : 1 }
    public var tokenCount: Int { patchCount + prefixTokenCount }
    public var headDim: Int { dim / heads }
    public var hasHead: Bool { numClasses > 0 }
    public var headInputDim: Int { headPooling == .cls ? dim : 2 * dim }

    public static func == (a: ViTConfig, b: ViTConfig) -> Bool {
        a.encode() == b.encode()
    }

    /// Number of 32-bit words `encode()` produces in this version.
    /// 25 since word 24 (the planned camera, `InputLimits`); readers accept 20 or more.
    public static let wordCount = 25

    public func encode() -> [UInt32] {
        var w = [UInt32](repeating: 0, count: ViTConfig.wordCount)
        w[0] = family.rawValue
        w[1] = UInt32(imageSize); w[2] = UInt32(patchSize); w[3] = UInt32(channels)
        w[4] = UInt32(dim); w[5] = UInt32(depth); w[6] = UInt32(heads); w[7] = UInt32(mlpDim)
        w[8] = UInt32(numClasses); w[9] = layerNormEps.bitPattern
        w[10] = (hasLayerScale ? 1 : 0) | (geluTanh ? 2 : 0) | (hasDistillationToken ? 4 : 0)
        w[11] = headPooling.rawValue
        w[12] = UInt32(resizeShorter); w[13] = UInt32(cropSize)
        w[14] = mean.0.bitPattern; w[15] = mean.1.bitPattern; w[16] = mean.2.bitPattern
        w[17] = std.0.bitPattern; w[18] = std.1.bitPattern; w[19] = std.2.bitPattern
        return w
    }

    /// Returns nil with a reason when the words do not describe a runnable ViT.
    public static func decode(_ w: [UInt32]) -> (ViTConfig?, String) {
        if w.count < 20 { return (nil, "configuration record too short") }
        var c = ViTConfig()
        guard let fam = Family(rawValue: w[0]) else { return (nil, "unknown model family \(w[0])") }
        c.family = fam
        c.imageSize = Int(w[1]); c.patchSize = Int(w[2]); c.channels = Int(w[3])
        c.dim = Int(w[4]); c.depth = Int(w[5]); c.heads = Int(w[6]); c.mlpDim = Int(w[7])
        c.numClasses = Int(w[8]); c.layerNormEps = Float(bitPattern: w[9])
        c.hasLayerScale = (w[10] & 1) != 0; c.geluTanh = (w[10] & 2) != 0; c.hasDistillationToken = (w[10] & 4) != 0
        if w[10] & ~7 != 0 { return (nil, "unknown model flags \(w[10])") }
        guard let pool = HeadPooling(rawValue: w[11]) else { return (nil, "unknown head pooling \(w[11])") }
        c.headPooling = pool
        c.resizeShorter = Int(w[12]); c.cropSize = Int(w[13])
        c.mean = (Float(bitPattern: w[14]), Float(bitPattern: w[15]), Float(bitPattern: w[16]))
        c.std = (Float(bitPattern: w[17]), Float(bitPattern: w[18]), Float(bitPattern: w[19]))
        if let reason = c.validate() { return (nil, reason) }
        return (c, "")
    }

    /// nil when consistent, else what is wrong.
    public func validate() -> String? {
        if patchSize <= 0 || imageSize <= 0 || imageSize % patchSize != 0 {
            return "image size \(imageSize) is not a multiple of patch size \(patchSize)"
        }
        if dim <= 0 || heads <= 0 || dim % heads != 0 { return "width \(dim) is not divisible by \(heads) heads" }
        if depth <= 0 || depth > 1024 || mlpDim <= 0 || channels <= 0 || channels > 4 {
            return "implausible depth \(depth), MLP width \(mlpDim) or channels \(channels)"
        }
        if headPooling == .clsAndDistillation && !hasDistillationToken {
            return "head pooling cls+distillation without a distillation token"
        }
        if headPooling == .clsAndPatchMean && hasDistillationToken {
            return "head pooling cls+patch mean with a distillation token"
        }
        if cropSize != imageSize { return "crop size \(cropSize) differs from model input \(imageSize)" }
        if resizeShorter < cropSize { return "resize size \(resizeShorter) is smaller than crop \(cropSize)" }
        return nil
    }
}
