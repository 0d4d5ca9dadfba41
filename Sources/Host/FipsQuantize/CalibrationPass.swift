import Foundation
import FipsArtifact
import FipsBLASBackend
import FipsData
import FipsHostModel
import FipsViT

/// Runs the float model over calibration images and collects, for every
/// quantisable linear map the executor reports ("blocks.3.attn.qkv",
/// "blocks.3.mlp.fc1", "head", factor names of factorised MLPs, …), the
/// `InputStatistics` of its input: all tokens of every image, CLS included
/// (the head sees one pooled row per image).
public enum CalibrationPass {
    public struct Options {
        public var batch = 8
        public var threads = 2
        /// Accumulate XᵀX (GPTQ); off keeps only the activation histograms.
        public var hessians = true
        public var histogramBins = 1 << 16
        /// Only layers for which this returns true (nil: all).
        public var layers: ((String) -> Bool)? = nil
        public init() {}
    }

    public static func run(_ model: ViTModel, images: any ImageSet, options o: Options = Options(),
                           progressLabel: String = "calibration statistics") throws -> [String: InputStatistics] {
        let c = model.config, T = c.tokenCount
        let n = images.count
        guard n > 0 else { throw DataError("no calibration images") }
        let B = max(1, min(o.batch, n))
        let ex = try ViTExecutor<BLASBackend>.host(model, maxBatch: B, threads: o.threads)
        let per = c.channels * c.imageSize * c.imageSize
        var input = [Float](repeating: 0, count: B * per)
        var features = [Float](repeating: 0, count: B * T * c.dim)
        var logits = [Float](repeating: 0, count: B * max(1, c.numClasses))
        var stats = [String: InputStatistics]()
        let observer: LinearInputObserver = { layer, x, rows, cols in
            if let keep = o.layers, !keep(layer) { return }
            let s: InputStatistics
            if let known = stats[layer] { s = known } else {
                s = InputStatistics(cols: cols, hessian: o.hessians, histogramBins: o.histogramBins)
                stats[layer] = s
            }
            s.observe(x, rows: rows, cols: cols, threads: o.threads)
        }
        let progress = ProgressLine(progressLabel, total: n)
        var start = 0
        while start < n {
            let m = min(B, n - start)
            try input.withUnsafeMutableBufferPointer { buf in
                for i in 0..<m { try images.write(start + i, config: c, into: buf.baseAddress! + i * per) }
            }
            input.withUnsafeBufferPointer { inp in
                features.withUnsafeMutableBufferPointer { f in
                    logits.withUnsafeMutableBufferPointer { l in
                        ex.forward(batch: m, images: inp.baseAddress!, features: f.baseAddress!,
                                   logits: c.hasHead ? l.baseAddress! : nil, linearObserver: observer)
                    }
                }
            }
            start += m
            progress.update(start)
        }
        progress.finish()
        return stats
    }

    /// The layer names and input widths a pass over `model` reports, in
    /// forward order: what a quantiser should expect to find.
    public static func expectedLayers(_ model: ViTModel) -> [(name: String, cols: Int)] {
        let c = model.config
        var out = [(name: String, cols: Int)]()
        for i in 0..<c.depth {
            out.append((TensorNames.block(i, "attn.qkv"), c.dim))
            out.append((TensorNames.block(i, "attn.proj"), c.dim))
            if model.isFactorised(block: i) {
                let r1 = model[TensorNames.block(i, "mlp.fc1.U")].shape[1]
                let r2 = model[TensorNames.block(i, "mlp.fc2.U")].shape[1]
                out.append((TensorNames.block(i, "mlp.fc1.U"), c.dim))
                out.append((TensorNames.block(i, "mlp.fc1.V"), r1))
                out.append((TensorNames.block(i, "mlp.fc2.V"), c.mlpDim))
                out.append((TensorNames.block(i, "mlp.fc2.U"), r2))
            } else {
                out.append((TensorNames.block(i, "mlp.fc1"), c.dim))
                out.append((TensorNames.block(i, "mlp.fc2"), c.mlpDim))
            }
        }
        if c.hasHead { out.append(("head", c.headInputDim)) }
        return out
    }
}
