import Dispatch
import Foundation

/// AdamW (decoupled weight decay, bias-corrected moments) over the trained
/// slots of a flat parameter vector, with linear warm-up and cosine decay;
/// weight decay only where the slot says so (not norms, biases, tokens).
struct AdamW {
    var learningRate: Float
    var minLearningRate: Float
    var warmupSteps: Int
    var totalSteps: Int
    var weightDecay: Float = 0.05
    var beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8

    /// The learning rate of step `s` (0-based).
    func rate(at s: Int) -> Float {
        if s < warmupSteps { return learningRate * Float(s + 1) / Float(warmupSteps) }
        let span = max(1, totalSteps - warmupSteps)
        let t = Double(s - warmupSteps) / Double(span)
        return minLearningRate + (learningRate - minLearningRate) * Float(0.5 * (1 + cos(Double.pi * t)))
    }

    /// One update of `p` with gradient `g` (masked entries stay zero) at step `s`;
    /// each range's learning rate is the schedule's times its `rate`.
    func step(_ s: Int, params p: UnsafeMutablePointer<Float>, grad g: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
              v: UnsafeMutablePointer<Float>, ranges: [(Range<Int>, decays: Bool, rate: Float)], mask: UnsafePointer<Float>?,
              threads: Int) {
        let lr = rate(at: s)
        let bc1 = 1 - pow(beta1, Float(s + 1)), bc2 = 1 - pow(beta2, Float(s + 1))
        let stepSize = lr / bc1, invBc2 = 1 / bc2
        let b1 = beta1, b2 = beta2, eps = epsilon, wd = weightDecay
        // Element-wise and independent: a fixed split over threads keeps it deterministic.
        DispatchQueue.concurrentPerform(iterations: max(1, threads)) { t in
            for (range, decays, rate) in ranges {
                let chunk = (range.count + threads - 1) / max(1, threads)
                let lo = range.lowerBound + t * chunk, hi = min(range.upperBound, lo + chunk)
                guard lo < hi else { continue }
                let decay: Float = decays ? wd : 0
                let size = stepSize * rate, lrk = lr * rate
                for k in lo..<hi {
                    let gk = mask.map { $0[k] * g[k] } ?? g[k]
                    let mk = b1 * m[k] + (1 - b1) * gk
                    let vk = b2 * v[k] + (1 - b2) * gk * gk
                    m[k] = mk; v[k] = vk
                    var pk = p[k] - size * mk / ((vk * invBc2).squareRoot() + eps) - lrk * decay * p[k]
                    if let mk = mask { pk *= mk[k] }
                    p[k] = pk
                }
            }
        }
    }
}
