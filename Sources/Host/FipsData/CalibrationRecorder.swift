import Foundation
import FipsArtifact
import FipsBLASBackend
import FipsHostModel
import FipsViT

/// Runs the original model over calibration images with the executor's MLP
/// observer and keeps, per image, a subset of tokens: always the CLS token
/// (the one the head reads) plus `tokensPerImage − 1` distinct patch tokens
/// drawn from a generator seeded by (seed, image index), the same tokens for
/// every block. Memory is bounded by images · tokensPerImage · dim · 2 · depth
/// floats, allocated once up front (256 images · 64 tokens on DINOv2-S:
/// 302 MB) instead of images · 257 tokens.
public enum CalibrationRecorder {
    public struct Options {
        /// Tokens kept per image (CLS included); ≥ tokenCount keeps all.
        public var tokensPerImage = 64
        public var seed: UInt64 = 0
        public var batch = 8
        public var threads = 2
        public init() {}
    }

    public struct Report {
        public var images: Int
        public var rowsPerBlock: Int
        public var bytes: Int
        public var seconds: Double
    }

    /// The token indices kept for image `image` (sorted, CLS = 0 first).
    public static func tokens(image: Int, tokenCount T: Int, keep: Int, seed: UInt64) -> [Int] {
        if keep >= T { return Array(0..<T) }
        precondition(keep >= 1)
        // Partial Fisher–Yates over the patch tokens 1..<T.
        var rng = SplitMix64(seed: seed ^ (UInt64(image) &* 0xD1B5_4A32_D192_ED03) &+ 0x5851_F42D_4C95_7F2D)
        var pool = Array(1..<T)
        for i in 0..<(keep - 1) {
            let j = i + Int(rng.next() % UInt64(pool.count - i))
            pool.swapAt(i, j)
        }
        return [0] + pool[0..<(keep - 1)].sorted()
    }

    public static func record(_ model: ViTModel, images: any ImageSet, options o: Options = Options(),
                              progressLabel: String = "calibration") throws -> (MLPCalibration, Report) {
        let c = model.config, d = c.dim, T = c.tokenCount, depth = c.depth
        let n = images.count
        guard n > 0 else { throw DataError("no calibration images") }
        let keep = min(max(1, o.tokensPerImage), T)
        let rows = n * keep
        let B = max(1, min(o.batch, n))
        let ex = try ViTExecutor<BLASBackend>.host(model, maxBatch: B, threads: o.threads)
        var ins = [[Float]](repeating: [Float](repeating: 0, count: rows * d), count: depth)
        var outs = ins
        let per = c.channels * c.imageSize * c.imageSize
        var input = [Float](repeating: 0, count: B * per)
        var features = [Float](repeating: 0, count: B * T * d)
        let progress = ProgressLine(progressLabel, total: n)
        let t0 = Date()
        var start = 0
        while start < n {
            let m = min(B, n - start)
            try input.withUnsafeMutableBufferPointer { try BatchInput.fill(images, start: start, count: m, config: c, into: $0.baseAddress!) }
            let picks = (0..<m).map { tokens(image: start + $0, tokenCount: T, keep: keep, seed: o.seed) }
            let first = start
            // The observer sees [m * T, d]; copy the picked rows of each image
            // to its slot (image-major: image i owns rows i*keep ..< (i+1)*keep).
            let observer: MLPObserver = { block, inp, out, r in
                precondition(r == m * T, "observer rows \(r), expected \(m * T)")
                ins[block].withUnsafeMutableBufferPointer { ib in
                    outs[block].withUnsafeMutableBufferPointer { ob in
                        for i in 0..<m {
                            for (j, t) in picks[i].enumerated() {
                                let dst = ((first + i) * keep + j) * d, src = (i * T + t) * d
                                (ib.baseAddress! + dst).update(from: inp + src, count: d)
                                (ob.baseAddress! + dst).update(from: out + src, count: d)
                            }
                        }
                    }
                }
            }
            input.withUnsafeBufferPointer { inp in
                features.withUnsafeMutableBufferPointer { f in
                    ex.forward(batch: m, images: inp.baseAddress!, features: f.baseAddress!, logits: nil, observer: observer)
                }
            }
            start += m
            progress.update(start)
        }
        progress.finish()
        let acts = MLPCalibration(inputs: ins.map { HostTensor(shape: [rows, d], data: $0) },
                                  outputs: outs.map { HostTensor(shape: [rows, d], data: $0) })
        return (acts, Report(images: n, rowsPerBlock: rows, bytes: acts.bytes, seconds: Date().timeIntervalSince(t0)))
    }
}
