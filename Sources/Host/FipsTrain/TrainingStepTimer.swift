import COpenBLAS
import Dispatch
import Foundation
import FipsHostModel

/// Times the fine-tuning step's own work, forward + backward of the student on
/// a batch (no teacher, no optimiser), as the trainer runs it: the batch split
/// over `threads` workers, one image at a time each, gradients reduced. For
/// Benchmarks/train_step_vs_pytorch.py, which times PyTorch on the same shapes.
public enum TrainingStepTimer {
    /// Seconds of each of `steps` timed steps (after one untimed warm-up step).
    /// The target of the feature loss is zero: the work does not depend on it.
    public static func time(_ model: ViTModel, batch: Int, threads: Int, steps: Int, seed: UInt64 = 0) throws -> [Double] {
        openblas_set_num_threads(1)
        let (layout, params) = try ParameterLayout.of(model)
        let c = model.config, inputLen = c.channels * c.imageSize * c.imageSize
        var rng = SplitMix64(seed: seed)
        let images = (0..<(batch * inputLen)).map { _ in Float(rng.nextUnit() * 2 - 1) }
        let zeros = [Float](repeating: 0, count: c.tokenCount * c.dim)
        let T = min(threads, batch)
        let workers = (0..<T).map { _ in Worker(layout: layout, teacher: layout, inputLength: inputLen, parameters: layout.count) }
        let loss = DistillationLoss(terms: [.features])
        var times = [Double]()
        for s in 0...steps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            images.withUnsafeBufferPointer { img in
                params.withUnsafeBufferPointer { p in
                    zeros.withUnsafeBufferPointer { z in
                        DispatchQueue.concurrentPerform(iterations: T) { t in
                            let w = workers[t]
                            w.grad.initialize(repeating: 0, count: layout.count)
                            for j in Worker.share(t, of: batch, threads: T) {
                                w.forward.run(img.baseAddress! + j * inputLen, p.baseAddress!, w.act)
                                _ = loss.apply(w.act, teacherFeatures: z.baseAddress!, teacherLogits: nil, label: nil,
                                               weight: 1 / Float(batch))
                                w.backward.run(p.baseAddress!, w.act, into: w.grad, headGradient: false)
                            }
                        }
                    }
                }
            }
            Worker.reduce(workers.map { $0.grad }, count: layout.count)
            if s > 0 { times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
        }
        return times
    }
}
