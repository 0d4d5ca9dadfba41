import Foundation
import FipsArtifact

/// Resolves the `--calib` argument of the CLIs to an image set.
public enum CalibrationSet {
    /// - `fashion-mnist` (or `fashion-mnist:DIR` for another idx directory):
    ///   `count` training images disjoint from the first `skipPerClass` of
    ///   each class (the head's training images) and from the test split,
    ///   balanced over the classes (`FashionMNIST.calibrationIndices`).
    /// - a folder: every JPEG/PNG under it (recursively); with `augment`,
    ///   stretched to at least `count` inputs by random resized crops and
    ///   flips (seeded). Undecodable files are skipped with a warning.
    public static func open(_ spec: String, config: ViTConfig, count: Int = 256, skipPerClass: Int = 200,
                            augment: Bool = false, seed: UInt64 = 0,
                            warn: (String) -> Void = printError) throws -> (set: any ImageSet, description: String) {
        if spec == "fashion-mnist" || spec.hasPrefix("fashion-mnist:") {
            let dir = spec == "fashion-mnist" ? FashionMNIST.defaultDirectory : String(spec.dropFirst("fashion-mnist:".count))
            let ds = try FashionMNIST.load(split: .train, directory: dir)
            let idx = ds.calibrationIndices(count: count, skipPerClass: skipPerClass)
            guard idx.count == count else { throw DataError("\(dir): only \(idx.count) calibration images available, \(count) asked") }
            return (ImageSubset(ds, indices: idx),
                    "Fashion-MNIST train, \(count) images after the first \(skipPerClass) of each class")
        }
        let f = try ImageFolder.open(spec, config: config, augmentation: augment ? Augmentation(seed: seed) : nil,
                                     augmentedCount: augment ? count : nil, warn: warn)
        var what = "\(spec): \(f.files.count) images"
        if augment && f.count > f.files.count { what += ", stretched to \(f.count) by random crops and flips" }
        if !f.skipped.isEmpty { what += ", \(f.skipped.count) undecodable skipped" }
        return (f, what)
    }
}
