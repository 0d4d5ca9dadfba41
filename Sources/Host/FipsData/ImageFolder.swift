import Foundation
import FipsArtifact
import FipsHostModel
import FipsImage

/// Random resized crop + horizontal flip, as torchvision's
/// `RandomResizedCrop(size, scale, ratio=(3/4, 4/3))` + `RandomHorizontalFlip()`,
/// resized with Pillow's bicubic. Used to stretch a small calibration folder:
/// input k of an augmented folder is image k % n with crop parameters drawn
/// from a generator seeded by (seed, k), so every input is reproducible and
/// independent of batching and order.
public struct Augmentation {
    public var scale: (Double, Double) = (0.25, 1.0)
    public var ratio: (Double, Double) = (3.0 / 4.0, 4.0 / 3.0)
    public var flip = true
    public var seed: UInt64 = 0

    public init(seed: UInt64 = 0, scale: (Double, Double) = (0.25, 1.0), flip: Bool = true) {
        self.seed = seed
        self.scale = scale
        self.flip = flip
    }

    /// (x, y, w, h, flip) of the crop for input `k` of an image of `width` x `height`.
    public func crop(k: Int, width: Int, height: Int) -> (x: Int, y: Int, w: Int, h: Int, flip: Bool) {
        var rng = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(k) &+ 1)
        let area = Double(width * height)
        let logLo = log(ratio.0), logHi = log(ratio.1)
        for _ in 0..<10 {
            let target = area * (scale.0 + (scale.1 - scale.0) * rng.nextUnit())
            let aspect = exp(logLo + (logHi - logLo) * rng.nextUnit())
            let w = Int((target * aspect).squareRoot().rounded())
            let h = Int((target / aspect).squareRoot().rounded())
            if w > 0 && h > 0 && w <= width && h <= height {
                let x = Int(rng.next() % UInt64(width - w + 1))
                let y = Int(rng.next() % UInt64(height - h + 1))
                return (x, y, w, h, flip && rng.nextUnit() < 0.5)
            }
        }
        // torchvision's fallback: the central crop at the clamped aspect ratio.
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < ratio.0 { h = Int((Double(w) / ratio.0).rounded()) }
        else if inRatio > ratio.1 { w = Int((Double(h) * ratio.1).rounded()) }
        return ((width - w) / 2, (height - h) / 2, w, h, flip && rng.nextUnit() < 0.5)
    }
}

/// JPEG/PNG files in a folder, optionally labelled by subfolder.
///
/// - Unlabelled (`open(path, recursive:)`): every .jpg/.jpeg/.png under the
///   folder (recursively by default), sorted by path.
/// - Labelled (`openLabelled`): one subfolder per class; class names are the
///   subfolder names, sorted; the images of a class are searched recursively.
///
/// Every file is decoded once when the folder is opened: one that fails is
/// skipped with a warning on stderr naming it (`skipped` lists them), so a
/// run never stops half way on a bad file. What is kept per image is small:
/// the model-size centre crop (Resize + CenterCrop as `fips-run` does), or,
/// with augmentation, the image scaled down so its shorter side is at most
/// twice the model input (random crops are taken from that).
public struct ImageFolder: ImageSet {
    public let root: String
    public let files: [String]
    /// Class index per file (labelled folders).
    public let fileLabels: [Int]?
    public let classNames: [String]
    /// Files that failed to decode, with the reason.
    public let skipped: [(path: String, reason: String)]
    public let augmentation: Augmentation?
    /// Inputs produced: the image count, or the stretched count with augmentation.
    public let count: Int
    /// Per file: the prepared image (see above).
    let prepared: [RGBImage]
    let preparedFor: ViTConfig

    public static let extensions: Set<String> = ["jpg", "jpeg", "png"]

    /// An unlabelled folder. `augmentedCount` (with `augmentation`) stretches
    /// the set to that many inputs.
    public static func open(_ path: String, config: ViTConfig, recursive: Bool = true,
                            augmentation: Augmentation? = nil, augmentedCount: Int? = nil,
                            warn: (String) -> Void = printError) throws -> ImageFolder {
        try checkFolder(path)
        let files = try listImages(path, recursive: recursive)
        if files.isEmpty { throw DataError("\(path): no JPEG or PNG images in the folder") }
        return try make(root: path, files: files, labels: nil, classNames: [], config: config,
                        augmentation: augmentation, augmentedCount: augmentedCount, warn: warn)
    }

    /// A folder with one subfolder per class.
    public static func openLabelled(_ path: String, config: ViTConfig, augmentation: Augmentation? = nil,
                                    augmentedCount: Int? = nil, warn: (String) -> Void = printError) throws -> ImageFolder {
        try checkFolder(path)
        let fm = FileManager.default
        let entries: [String]
        do { entries = try fm.contentsOfDirectory(atPath: path) } catch {
            throw DataError("\(path): cannot read folder: \(error.localizedDescription)")
        }
        let classes = entries.filter { name in
            var isDir: ObjCBool = false
            return !name.hasPrefix(".") && fm.fileExists(atPath: (path as NSString).appendingPathComponent(name), isDirectory: &isDir) && isDir.boolValue
        }.sorted()
        if classes.isEmpty { throw DataError("\(path): no class subfolders (a labelled folder holds one subfolder of images per class)") }
        var files = [String](), labels = [Int]()
        for (c, name) in classes.enumerated() {
            let sub = (path as NSString).appendingPathComponent(name)
            let found = try listImages(sub, recursive: true)
            if found.isEmpty { throw DataError("\(sub): class folder '\(name)' holds no JPEG or PNG images") }
            files += found
            labels += [Int](repeating: c, count: found.count)
        }
        return try make(root: path, files: files, labels: labels, classNames: classes, config: config,
                        augmentation: augmentation, augmentedCount: augmentedCount, warn: warn)
    }

    static func checkFolder(_ path: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw DataError("\(path): no such folder") }
        guard isDir.boolValue else { throw DataError("\(path): not a folder") }
        guard FileManager.default.isReadableFile(atPath: path), FileManager.default.isExecutableFile(atPath: path) else {
            throw DataError("\(path): folder is not readable (permission denied)")
        }
    }

    static func listImages(_ path: String, recursive: Bool) throws -> [String] {
        let fm = FileManager.default
        var out = [String]()
        var unreadable = [String]()
        func walk(_ dir: String) throws {
            let names: [String]
            do { names = try fm.contentsOfDirectory(atPath: dir) } catch {
                if dir == path { throw DataError("\(path): cannot read folder: \(error.localizedDescription)") }
                unreadable.append(dir)
                return
            }
            for name in names.sorted() where !name.hasPrefix(".") {
                let full = (dir as NSString).appendingPathComponent(name)
                var isDir: ObjCBool = false
                guard fm.fileExists(atPath: full, isDirectory: &isDir) else { continue }
                if isDir.boolValue {
                    if recursive { try walk(full) }
                } else if extensions.contains((name as NSString).pathExtension.lowercased()) {
                    out.append(full)
                }
            }
        }
        try walk(path)
        for d in unreadable { printError("warning: \(d): cannot read subfolder, skipped") }
        return out
    }

    /// The workstation keeps the old limit (40 MP) and full-size decodes, so
    /// calibration and training sets load as before; the 8 MP default and the
    /// reduced JPEG decode are the device programs' memory promise.
    static let hostLimits = DecodeLimits(maxPixels: 40_000_000)

    static func make(root: String, files: [String], labels: [Int]?, classNames: [String], config: ViTConfig,
                     augmentation: Augmentation?, augmentedCount: Int?, warn: (String) -> Void) throws -> ImageFolder {
        let pre = Preprocessor(resizeShorter: config.resizeShorter, cropSize: config.imageSize, mean: config.mean, std: config.std)
        var kept = [String](), keptLabels = [Int](), prepared = [RGBImage](), skipped = [(path: String, reason: String)]()
        let progress = ProgressLine("decoding \(root)", total: files.count)
        for (i, f) in files.enumerated() {
            progress.update(i)
            let img: RGBImage
            do { img = try ImageDecoder.load(path: f, limits: hostLimits) } catch {
                skipped.append((f, error.message))
                warn("warning: skipping \(error.message)")
                continue
            }
            kept.append(f)
            if let l = labels { keptLabels.append(l[i]) }
            if augmentation != nil {
                // Keep at most 2x the model input on the shorter side: enough
                // detail for a crop of a quarter of the area, bounded memory.
                let short = min(img.width, img.height), limit = 2 * config.imageSize
                if short > limit {
                    let w = max(1, img.width * limit / short), h = max(1, img.height * limit / short)
                    prepared.append(BicubicResize.resize(img, width: w, height: h))
                } else {
                    prepared.append(img)
                }
            } else {
                prepared.append(pre.resizeAndCrop(img))
            }
        }
        progress.update(files.count)
        progress.finish()
        if !skipped.isEmpty {
            warn("warning: \(skipped.count) of \(files.count) images in \(root) could not be decoded and were skipped")
        }
        if kept.isEmpty { throw DataError("\(root): none of the \(files.count) images could be decoded") }
        if labels != nil {
            let present = Set(keptLabels)
            for (c, name) in classNames.enumerated() where !present.contains(c) {
                throw DataError("\(root): class '\(name)' has no decodable image left")
            }
        }
        let n = augmentation != nil ? max(kept.count, augmentedCount ?? kept.count) : kept.count
        return ImageFolder(root: root, files: kept, fileLabels: labels == nil ? nil : keptLabels, classNames: classNames,
                           skipped: skipped, augmentation: augmentation, count: n, prepared: prepared, preparedFor: config)
    }

    /// File behind input `index` (with augmentation several inputs share a file).
    public func file(of index: Int) -> String { files[index % files.count] }

    /// Class index per input (with augmentation, the label of the input's file).
    public var labels: [Int]? {
        guard let l = fileLabels else { return nil }
        return (0..<count).map { l[$0 % l.count] }
    }

    public func write(_ index: Int, config c: ViTConfig, into dst: UnsafeMutablePointer<Float>) throws {
        guard c.imageSize == preparedFor.imageSize, c.resizeShorter == preparedFor.resizeShorter else {
            throw DataError("\(root): opened for a \(preparedFor.imageSize)-pixel model, asked for \(c.imageSize)")
        }
        let pre = InputNormalizer.preprocessor(c)
        let img = prepared[index % prepared.count]
        guard let aug = augmentation else { pre.normalize(img, into: dst); return }
        pre.normalize(aug.apply(k: index, to: img, size: c.imageSize), into: dst)
    }
}
