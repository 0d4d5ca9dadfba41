import Dispatch
import FipsArtifact

/// One worker thread's state: activations of the student (every block kept)
/// and of the teacher (one block reused), and its own gradient buffer.
final class Worker {
    let forward: TrainingForward
    let backward: TrainingBackward
    let teacherForward: TrainingForward
    let act: ImageActivations
    let teacherAct: ImageActivations
    let grad: UnsafeMutablePointer<Float>
    let count: Int

    /// `grids`: the student is trained quantisation-aware (its activations rounded as the integer runtime rounds them).
    init(layout: ParameterLayout, teacher: ParameterLayout, inputLength: Int, parameters: Int, grids: ActivationGrids? = nil) {
        forward = TrainingForward(layout: layout, grids: grids)
        backward = TrainingBackward(layout: layout, integerAttention: grids?.integerAttention ?? false)
        teacherForward = TrainingForward(layout: teacher)
        act = ImageActivations(config: layout.config, rank: layout.maxRank)
        teacherAct = ImageActivations(config: teacher.config, rank: 0, keepAll: false)
        count = parameters
        grad = .allocate(capacity: parameters)
    }
    deinit { grad.deallocate() }

    /// The contiguous part of a batch of `b` that thread `t` of `threads` takes.
    static func share(_ t: Int, of b: Int, threads: Int) -> Range<Int> {
        let per = (b + threads - 1) / threads
        return min(b, t * per)..<min(b, (t + 1) * per)
    }

    /// Zeroes the gradient, then for each image: teacher forward, student forward, loss, backward.
    func run(images: UnsafePointer<Float>, indices: Range<Int>, inputLength: Int, student p: UnsafePointer<Float>,
             teacher tp: UnsafePointer<Float>, loss: DistillationLoss, labels: [Int]?, weight: Float,
             terms: UnsafeMutablePointer<Double>) {
        grad.initialize(repeating: 0, count: count)
        let c = act.config, nt = LossTerms.names.count
        let needHead = loss.terms.contains(.logits) || loss.terms.contains(.ce)
        for j in indices {
            let image = images + j * inputLength
            teacherForward.run(image, tp, teacherAct)
            forward.run(image, p, act)
            let values = loss.apply(act, teacherFeatures: teacherAct.features,
                                    teacherLogits: c.hasHead && teacherAct.config.hasHead ? UnsafePointer(teacherAct.logits) : nil,
                                    label: labels?[j], weight: weight)
            for k in 0..<nt { terms[j * nt + k] = values[k] }
            backward.run(p, act, into: grad, headGradient: needHead)
        }
    }

    /// grads[0] += grads[1] + grads[2] … in thread order (each element's sum order fixed).
    static func reduce(_ grads: [UnsafeMutablePointer<Float>], count n: Int) {
        let T = grads.count
        guard T > 1 else { return }
        let chunk = (n + T - 1) / T
        DispatchQueue.concurrentPerform(iterations: T) { t in
            let lo = t * chunk, hi = min(n, lo + chunk)
            guard lo < hi else { return }
            for s in 1..<T { let src = grads[s], dst = grads[0]; for k in lo..<hi { dst[k] += src[k] } }
        }
    }
}
