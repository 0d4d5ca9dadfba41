import FipsArtifact
import FipsImage

extension Augmentation {
    /// Input `k`'s random resized crop of `img` (flipped when drawn), resized to
    /// `size` x `size` with Pillow's bicubic: torchvision's resized_crop on a PIL image.
    public func apply(k: Int, to img: RGBImage, size: Int) -> RGBImage {
        let cr = crop(k: k, width: img.width, height: img.height)
        var out = RGBImage(width: cr.w, height: cr.h)
        for y in 0..<cr.h {
            for x in 0..<cr.w {
                let sx = cr.flip ? (cr.x + cr.w - 1 - x) : (cr.x + x)
                let s = ((cr.y + y) * img.width + sx) * 3, d = (y * cr.w + x) * 3
                out.pixels[d] = img.pixels[s]; out.pixels[d + 1] = img.pixels[s + 1]; out.pixels[d + 2] = img.pixels[s + 2]
            }
        }
        return BicubicResize.resize(out, width: size, height: size)
    }
}

/// Fashion-MNIST images stretched to `count` inputs by random resized crops and
/// flips: input k is image `indices[k % n]` upsampled to the model size as the
/// plain set does, then cropped with the crop drawn for k (reproducible, independent of order).
public struct AugmentedFashionMNIST: ImageSet {
    public let base: FashionMNIST
    public let indices: [Int]
    public let augmentation: Augmentation
    public let count: Int

    public init(_ base: FashionMNIST, indices: [Int], count: Int, augmentation: Augmentation) {
        precondition(!indices.isEmpty, "no images to augment")
        self.base = base; self.indices = indices; self.count = count; self.augmentation = augmentation
    }

    public var labels: [Int]? { (0..<count).map { base.labelValues[indices[$0 % indices.count]] } }
    public var classNames: [String] { base.classNames }

    public func write(_ index: Int, config c: ViTConfig, into dst: UnsafeMutablePointer<Float>) throws {
        guard c.channels == 3 else { throw DataError("Fashion-MNIST input needs a 3-channel model, this one has \(c.channels)") }
        let img = FashionMNIST.upsample(base.images[indices[index % indices.count]], size: c.imageSize)
        InputNormalizer.preprocessor(c).normalize(augmentation.apply(k: index, to: img, size: c.imageSize), into: dst)
    }
}
