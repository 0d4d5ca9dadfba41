import Foundation
import FipsArtifact
import FipsImage

/// Errors of the data layer: one line naming the file or folder and the problem.
public struct DataError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A finite, indexed set of images that can be turned into model inputs.
/// Host code, so an existential (`any ImageSet`) is fine here: the feature
/// extractor, the calibration recorder and `fips eval` take any source
/// (Fashion-MNIST, a folder, in-memory tensors) through this one interface.
public protocol ImageSet {
    /// Number of model inputs (for an augmented folder: the stretched count).
    var count: Int { get }
    /// Class index per input when the set is labelled, else nil.
    var labels: [Int]? { get }
    /// Class names, indexed by label (empty when unlabelled).
    var classNames: [String] { get }
    /// Writes input `index` as CHW float [channels, imageSize, imageSize],
    /// normalised with the model configuration's mean/std.
    func write(_ index: Int, config: ViTConfig, into dst: UnsafeMutablePointer<Float>) throws
}

/// Already-preprocessed CHW tensors (tests, or inputs prepared elsewhere).
public struct TensorImageSet: ImageSet {
    public var tensors: [[Float]]
    public var labels: [Int]?
    public var classNames: [String]

    public init(tensors: [[Float]], labels: [Int]? = nil, classNames: [String] = []) {
        self.tensors = tensors
        self.labels = labels
        self.classNames = classNames
    }
    public var count: Int { tensors.count }
    public func write(_ index: Int, config c: ViTConfig, into dst: UnsafeMutablePointer<Float>) throws {
        let n = c.channels * c.imageSize * c.imageSize
        guard tensors[index].count == n else {
            throw DataError("input \(index) has \(tensors[index].count) values, the model takes \(n)")
        }
        tensors[index].withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: n) }
    }
}

/// A subset of another set, by index (keeps labels and class names).
public struct ImageSubset: ImageSet {
    public let base: any ImageSet
    public let indices: [Int]
    public init(_ base: any ImageSet, indices: [Int]) {
        self.base = base
        self.indices = indices
    }
    public var count: Int { indices.count }
    public var labels: [Int]? { base.labels.map { l in indices.map { l[$0] } } }
    public var classNames: [String] { base.classNames }
    public func write(_ index: Int, config: ViTConfig, into dst: UnsafeMutablePointer<Float>) throws {
        try base.write(indices[index], config: config, into: dst)
    }
}

/// Model-input normalisation shared by every source: an image that is
/// already imageSize x imageSize → CHW float with the config's mean/std
/// (the same float32 arithmetic as `Preprocessor`, so results match fips-run).
enum InputNormalizer {
    static func preprocessor(_ c: ViTConfig) -> Preprocessor {
        Preprocessor(resizeShorter: c.imageSize, cropSize: c.imageSize, mean: c.mean, std: c.std)
    }
}

/// Progress on stderr, one overwritten line, only when stderr is a terminal:
/// piped or captured output (CI logs, tests) stays clean.
public final class ProgressLine {
    let label: String
    let total: Int
    let enabled: Bool
    let start = Date()
    var lastDraw = Date.distantPast

    public init(_ label: String, total: Int, enabled: Bool = isatty(2) != 0) {
        self.label = label
        self.total = total
        self.enabled = enabled
    }

    public func update(_ done: Int) {
        guard enabled else { return }
        let now = Date()
        if done < total && now.timeIntervalSince(lastDraw) < 0.2 { return }
        lastDraw = now
        let el = now.timeIntervalSince(start)
        let rate = done > 0 ? el / Double(done) : 0
        let eta = rate * Double(total - done)
        let line = String(format: "\r%@: %d/%d (%.0f%%), %.1f s, ~%.0f s left   ", label, done, total,
                          total > 0 ? 100 * Double(done) / Double(total) : 100, el, eta)
        FileHandle.standardError.write(line.data(using: .utf8)!)
    }

    public func finish() {
        guard enabled else { return }
        FileHandle.standardError.write("\n".data(using: .utf8)!)
    }
}

/// One line on stderr (warnings, reports that must not mix with JSON on stdout).
public func printError(_ s: String) {
    FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}
