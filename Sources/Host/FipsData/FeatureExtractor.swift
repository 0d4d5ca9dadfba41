import Foundation
import FipsArtifact
import FipsBLASBackend
import FipsHostModel
import FipsViT

/// Fills the executor's input buffer for images `start ..< start + n`.
enum BatchInput {
    static func fill(_ images: any ImageSet, start: Int, count n: Int, config c: ViTConfig,
                     into buf: UnsafeMutablePointer<Float>) throws {
        let per = c.channels * c.imageSize * c.imageSize
        for i in 0..<n { try images.write(start + i, config: c, into: buf + i * per) }
    }
}

extension ViTExecutor where Backend == BLASBackend {
    /// The executor of a pass over a data set: packed integer weights run as
    /// the device runs them (the artifact mapped, integer kernels), a float
    /// model on the host's OpenBLAS.
    static func forDataPass(_ model: ViTModel, runtimeArtifact: Artifact?, options: ExecutorOptions,
                            maxBatch: Int, threads: Int) throws -> ViTExecutor<BLASBackend> {
        guard let a = runtimeArtifact else { return try .host(model, maxBatch: maxBatch, threads: threads) }
        do { return try ViTExecutor(artifact: a, backend: BLASBackend(threads: threads), maxBatch: maxBatch, options: options) }
        catch { throw DataError(error.message) }
    }
}

/// Pooled features of an image set (final LayerNorm output).
public struct Features {
    public var count: Int
    public var dim: Int
    /// [count, dim]: the CLS token.
    public var cls: [Float]
    /// [count, dim]: the mean over patch tokens (when asked for).
    public var patchMean: [Float]?
    /// [count, dim]: the distillation token (distilled DeiT only).
    public var distillation: [Float]?
    /// [count, classes]: the artifact head's logits (when the model has a head).
    public var logits: [Float]?
    /// Wall time of the whole extraction (preprocessing included).
    public var seconds: Double
    /// Of which the forward passes alone.
    public var forwardSeconds: Double

    /// The head input for `pooling`: CLS, or CLS ‖ patch mean, or CLS ‖ distillation token ([count, 2·dim]).
    public func headInput(_ pooling: ViTConfig.HeadPooling) -> [Float] {
        guard pooling != .cls else { return cls }
        guard let pm = pooling == .clsAndPatchMean ? patchMean : distillation else {
            preconditionFailure("features were extracted without the second half of \(pooling)")
        }
        var out = [Float](repeating: 0, count: count * 2 * dim)
        for i in 0..<count {
            for k in 0..<dim {
                out[i * 2 * dim + k] = cls[i * dim + k]
                out[i * 2 * dim + dim + k] = pm[i * dim + k]
            }
        }
        return out
    }
}

/// Batched feature extraction: fp32 on OpenBLAS (the host executor), or,
/// given `runtimeArtifact`, its packed integer weights run as the device runs
/// them, so a head trained on these features sees what it will see on the board.
public enum FeatureExtractor {
    public static func extract(_ model: ViTModel, images: any ImageSet, batch: Int = 8, threads: Int = 2,
                               patchMean: Bool = false, progressLabel: String = "features",
                               runtimeArtifact: Artifact? = nil,
                               runtimeOptions: ExecutorOptions = ExecutorOptions()) throws -> Features {
        let c = model.config, d = c.dim, T = c.tokenCount
        let B = max(1, min(batch, images.count))
        let ex = try ViTExecutor.forDataPass(model, runtimeArtifact: runtimeArtifact, options: runtimeOptions,
                                             maxBatch: B, threads: threads)
        let per = c.channels * c.imageSize * c.imageSize
        var input = [Float](repeating: 0, count: B * per)
        var tokens = [Float](repeating: 0, count: B * T * d)
        var logitBuf = [Float](repeating: 0, count: B * max(1, c.numClasses))
        var f = Features(count: images.count, dim: d, cls: [Float](repeating: 0, count: images.count * d),
                         patchMean: patchMean ? [Float](repeating: 0, count: images.count * d) : nil,
                         distillation: c.hasDistillationToken ? [Float](repeating: 0, count: images.count * d) : nil,
                         logits: c.hasHead ? [Float](repeating: 0, count: images.count * c.numClasses) : nil,
                         seconds: 0, forwardSeconds: 0)
        let progress = ProgressLine(progressLabel, total: images.count)
        let t0 = Date()
        var start = 0
        while start < images.count {
            let n = min(B, images.count - start)
            try input.withUnsafeMutableBufferPointer { try BatchInput.fill(images, start: start, count: n, config: c, into: $0.baseAddress!) }
            let tf = Date()
            input.withUnsafeBufferPointer { inp in
                tokens.withUnsafeMutableBufferPointer { tok in
                    logitBuf.withUnsafeMutableBufferPointer { lg in
                        ex.forward(batch: n, images: inp.baseAddress!, features: tok.baseAddress!,
                                   logits: c.hasHead ? lg.baseAddress! : nil)
                    }
                }
            }
            f.forwardSeconds += Date().timeIntervalSince(tf)
            for b in 0..<n {
                let i = start + b, base = b * T * d
                for k in 0..<d { f.cls[i * d + k] = tokens[base + k] }
                if c.hasDistillationToken {
                    for k in 0..<d { f.distillation![i * d + k] = tokens[base + d + k] }
                }
                if patchMean {
                    var acc = [Double](repeating: 0, count: d)
                    for t in 1..<T { for k in 0..<d { acc[k] += Double(tokens[base + t * d + k]) } }
                    for k in 0..<d { f.patchMean![i * d + k] = Float(acc[k] / Double(T - 1)) }
                }
                if c.hasHead {
                    for k in 0..<c.numClasses { f.logits![i * c.numClasses + k] = logitBuf[b * c.numClasses + k] }
                }
            }
            start += n
            progress.update(start)
        }
        progress.finish()
        f.seconds = Date().timeIntervalSince(t0)
        return f
    }
}
