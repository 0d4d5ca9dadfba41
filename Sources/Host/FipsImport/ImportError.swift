import FipsArtifact

/// Why a model could not be imported. `description` is one line naming the
/// file and the problem.
public struct ImportError: Error, CustomStringConvertible {
    public let path: String
    public let problem: String

    public init(path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { "\(path): \(problem)" }
}

/// Choices the source file cannot always answer.
public struct ImportOptions {
    /// Input resolution to run at (a multiple of the patch size). Default:
    /// 224 for DINOv2 (its checkpoints are stored for 518), else the
    /// checkpoint's own (config.json `image_size`, else from pos_embed).
    public var imageSize: Int?
    /// Attention heads when no config.json says (default dim / 64).
    public var heads: Int?
    /// Family for layouts that do not reveal it (timm without a hint).
    public var family: ViTConfig.Family?

    public init(imageSize: Int? = nil, heads: Int? = nil, family: ViTConfig.Family? = nil) {
        self.imageSize = imageSize
        self.heads = heads
        self.family = family
    }
}

extension ViTConfig {
    /// Preprocessing of the family's reference checkpoints: google/vit uses
    /// 0.5 mean/std and resizes straight to the crop; DeiT and DINOv2 use
    /// ImageNet statistics and resize the shorter side to 256/224 of the crop.
    mutating func setPreprocessing(for family: Family) {
        if family == .vit {
            mean = (0.5, 0.5, 0.5)
            std = (0.5, 0.5, 0.5)
            resizeShorter = imageSize
        } else {
            mean = (0.485, 0.456, 0.406)
            std = (0.229, 0.224, 0.225)
            resizeShorter = imageSize * 256 / 224   // crop_pct 0.875, as timm
        }
        cropSize = imageSize
    }
}
