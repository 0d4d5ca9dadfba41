import CZlib
import Foundation
import FipsArtifact
import FipsImage

/// Reads a whole gzip file (or a plain file: zlib's gzread passes
/// uncompressed data through) into memory.
public enum Gzip {
    public static func readFile(_ path: String, maxBytes: Int = 1 << 30) throws -> [UInt8] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw DataError("\(path): no such file") }
        if isDir.boolValue { throw DataError("\(path): is a directory") }
        guard let f = gzopen(path, "rb") else { throw DataError("\(path): cannot open: \(String(cString: strerror(errno)))") }
        defer { gzclose(f) }
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { gzread(f, $0.baseAddress, UInt32($0.count)) }
            if n < 0 {
                var code: Int32 = 0
                let msg = gzerror(f, &code).map { String(cString: $0) } ?? "error \(code)"
                throw DataError("\(path): corrupt gzip data: \(msg)")
            }
            if n == 0 { break }
            out += chunk[0..<Int(n)]
            if out.count > maxBytes { throw DataError("\(path): more than \(maxBytes) bytes uncompressed") }
        }
        return out
    }
}

/// The idx format of (Fashion-)MNIST: big-endian magic 0x0000 0x08 ndim,
/// ndim big-endian UInt32 dimensions, then unsigned bytes in C order.
public struct IDXFile {
    public var dimensions: [Int]
    public var bytes: [UInt8]

    public static func parse(_ b: [UInt8], name: String) throws -> IDXFile {
        guard b.count >= 4, b[0] == 0, b[1] == 0 else { throw DataError("\(name): not an idx file (bad magic)") }
        guard b[2] == 0x08 else { throw DataError("\(name): idx element type 0x\(String(b[2], radix: 16)) is not unsigned byte") }
        let ndim = Int(b[3])
        guard ndim >= 1 && ndim <= 4, b.count >= 4 + 4 * ndim else { throw DataError("\(name): bad idx header (\(ndim) dimensions)") }
        var dims = [Int]()
        for i in 0..<ndim {
            let o = 4 + 4 * i
            dims.append(Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3]))
        }
        let n = dims.reduce(1, *)
        let start = 4 + 4 * ndim
        guard b.count - start == n else {
            throw DataError("\(name): idx dimensions \(dims) need \(n) bytes, the file holds \(b.count - start)")
        }
        return IDXFile(dimensions: dims, bytes: Array(b[start...]))
    }

    public static func load(_ path: String) throws -> IDXFile {
        try parse(try Gzip.readFile(path), name: path)
    }
}

/// Fashion-MNIST (Zalando), as Debian's `dataset-fashion-mnist` installs it.
public struct FashionMNIST: ImageSet {
    public enum Split: String { case train, test }

    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    public static let names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    public static let side = 28

    public let split: Split
    /// [count][28*28], row-major, 0 = background.
    public let images: [[UInt8]]
    public let labelValues: [Int]

    public var count: Int { images.count }
    public var labels: [Int]? { labelValues }
    public var classNames: [String] { FashionMNIST.names }

    public init(split: Split, images: [[UInt8]], labels: [Int]) {
        precondition(images.count == labels.count)
        self.split = split
        self.images = images
        self.labelValues = labels
    }

    /// Reads `{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz` from `directory`.
    public static func load(split: Split, directory: String = defaultDirectory) throws -> FashionMNIST {
        let prefix = split == .train ? "train" : "t10k"
        let dir = URL(fileURLWithPath: directory)
        let ip = dir.appendingPathComponent("\(prefix)-images-idx3-ubyte.gz").path
        let lp = dir.appendingPathComponent("\(prefix)-labels-idx1-ubyte.gz").path
        let imgs = try IDXFile.load(ip)
        let labs = try IDXFile.load(lp)
        guard imgs.dimensions.count == 3, imgs.dimensions[1] == side, imgs.dimensions[2] == side else {
            throw DataError("\(ip): expected [count, 28, 28], found \(imgs.dimensions)")
        }
        guard labs.dimensions.count == 1, labs.dimensions[0] == imgs.dimensions[0] else {
            throw DataError("\(lp): \(labs.dimensions) labels for \(imgs.dimensions[0]) images")
        }
        let n = imgs.dimensions[0], px = side * side
        var images = [[UInt8]]()
        images.reserveCapacity(n)
        for i in 0..<n { images.append(Array(imgs.bytes[(i * px)..<((i + 1) * px)])) }
        let labels = labs.bytes.map { Int($0) }
        if let bad = labels.first(where: { $0 >= names.count }) { throw DataError("\(lp): label \(bad) outside 0...9") }
        return FashionMNIST(split: split, images: images, labels: labels)
    }

    // MARK: selections for the evaluation protocol (all deterministic, file order)

    /// The first `perClass` images of each class, in file order.
    public func firstPerClass(_ perClass: Int, skipping skip: Int = 0) -> [Int] {
        var seen = [Int](repeating: 0, count: FashionMNIST.names.count)
        var out = [Int]()
        for (i, l) in labelValues.enumerated() where seen[l] < skip + perClass {
            if seen[l] >= skip { out.append(i) }
            seen[l] += 1
        }
        return out
    }

    /// `count` images none of which is among the first `skipPerClass` of its
    /// class: per class the next ones in file order, taken round-robin over
    /// the classes so the set stays balanced (256 → 26 or 25 per class).
    /// The calibration set of the protocol: disjoint from the head's
    /// training images and from the test set.
    public func calibrationIndices(count: Int, skipPerClass: Int) -> [Int] {
        let classes = FashionMNIST.names.count
        var queues = [[Int]](repeating: [], count: classes)
        var seen = [Int](repeating: 0, count: classes)
        let need = (count + classes - 1) / classes
        for (i, l) in labelValues.enumerated() {
            seen[l] += 1
            if seen[l] > skipPerClass && queues[l].count < need { queues[l].append(i) }
        }
        var out = [Int]()
        var k = 0
        while out.count < count && k < need {
            for c in 0..<classes where k < queues[c].count && out.count < count { out.append(queues[c][k]) }
            k += 1
        }
        return out
    }

    // MARK: model input

    /// The 28x28 greyscale image as RGB (grey replicated), upsampled to
    /// `size` x `size` with Pillow's bicubic (bit-exact `BicubicResize`).
    /// Resizing the replicated RGB equals resizing the grey image and
    /// replicating, which is what a PIL pipeline `fromarray(a).resize().convert("RGB")` gives.
    public static func upsample(_ grey: [UInt8], size: Int) -> RGBImage {
        precondition(grey.count == side * side, "Fashion-MNIST images are 28x28")
        var rgb = [UInt8](repeating: 0, count: side * side * 3)
        for i in 0..<(side * side) { rgb[3 * i] = grey[i]; rgb[3 * i + 1] = grey[i]; rgb[3 * i + 2] = grey[i] }
        let img = RGBImage(width: side, height: side, pixels: rgb)
        return size == side ? img : BicubicResize.resize(img, width: size, height: size)
    }

    public func write(_ index: Int, config c: ViTConfig, into dst: UnsafeMutablePointer<Float>) throws {
        guard c.channels == 3 else { throw DataError("Fashion-MNIST input needs a 3-channel model, this one has \(c.channels)") }
        InputNormalizer.preprocessor(c).normalize(FashionMNIST.upsample(images[index], size: c.imageSize), into: dst)
    }
}
