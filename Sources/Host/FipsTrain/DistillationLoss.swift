import Foundation

/// What the student is trained to match. Terms add up (`features+cls`).
public struct LossTerms: OptionSet, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// Mean squared error of the final-LayerNorm features of every token, student vs teacher.
    public static let features = LossTerms(rawValue: 1)
    /// The same on the CLS token alone (what a classification head reads).
    public static let cls = LossTerms(rawValue: 2)
    /// KL(teacher ‖ student) of the head's softmax at temperature τ (both models need the head).
    public static let logits = LossTerms(rawValue: 4)
    /// Cross-entropy of the student's head on the data's labels.
    public static let ce = LossTerms(rawValue: 8)

    public static let names: [(String, LossTerms)] = [("features", .features), ("cls", .cls), ("logits", .logits), ("ce", .ce)]

    /// "features+cls" → [.features, .cls]; nil names the unknown part.
    public static func parse(_ s: String) throws -> LossTerms {
        var t = LossTerms()
        for part in s.split(separator: "+") {
            guard let (_, v) = names.first(where: { $0.0 == part }) else {
                throw TrainingError("unknown loss '\(part)' (known: features, cls, logits, ce; combine with '+')")
            }
            t.insert(v)
        }
        if t.isEmpty { throw TrainingError("--loss names no term") }
        return t
    }

    public var description: String { LossTerms.names.filter { contains($0.1) }.map { $0.0 }.joined(separator: "+") }

    /// The best-known default (Benchmarks/finetune_results.md): the features and,
    /// when there is a head to read them, its logits too. The logits term lifted
    /// the 57% FiPS model from 70.20% to 82.75% and the 22 MB plan from 77.70% to
    /// 78.55% (original head).
    public static func bestKnown(hasHead: Bool) -> LossTerms {
        hasHead ? [.features, .cls, .logits] : [.features, .cls]
    }
}

/// The loss of one image and its gradient w.r.t. the student's features and logits.
struct DistillationLoss {
    var terms: LossTerms
    var temperature: Float = 1

    /// Per-term values of one image; `act.dfeatures`/`act.dlogits` set to ∂(weight·loss)/∂·.
    func apply(_ act: ImageActivations, teacherFeatures t: UnsafePointer<Float>, teacherLogits tl: UnsafePointer<Float>?,
               label: Int?, weight: Float) -> [Double] {
        let c = act.config, T = c.tokenCount, d = c.dim, C = c.numClasses
        let f = act.features, df = act.dfeatures
        var values = [Double](repeating: 0, count: LossTerms.names.count)
        for k in 0..<(T * d) { df[k] = 0 }
        if terms.contains(.features) {
            let n = T * d, s = 2 * weight / Float(n)
            var sum: Double = 0
            for k in 0..<n { let e = f[k] - t[k]; sum += Double(e * e); df[k] += s * e }
            values[0] = sum / Double(n)
        }
        if terms.contains(.cls) {
            let s = 2 * weight / Float(d)
            var sum: Double = 0
            for k in 0..<d { let e = f[k] - t[k]; sum += Double(e * e); df[k] += s * e }
            values[1] = sum / Double(d)
        }
        if C > 0 { for k in 0..<C { act.dlogits[k] = 0 } }
        if terms.contains(.logits), let tl = tl, C > 0 {
            // τ²·KL(p_t ‖ p_s) at temperature τ; ∂/∂s = τ·(p_s − p_t)
            let tau = temperature
            let ps = softmax(act.logits, C, 1 / tau), pt = softmax(tl, C, 1 / tau)
            var kl: Double = 0
            for k in 0..<C where pt[k] > 0 { kl += Double(pt[k]) * (log(Double(pt[k])) - log(Double(max(ps[k], 1e-30)))) }
            values[2] = Double(tau * tau) * kl
            for k in 0..<C { act.dlogits[k] += weight * tau * (ps[k] - pt[k]) }
        }
        if terms.contains(.ce), let y = label, C > 0 {
            let ps = softmax(act.logits, C, 1)
            values[3] = -log(Double(max(ps[y], 1e-30)))
            for k in 0..<C { act.dlogits[k] += weight * (ps[k] - (k == y ? 1 : 0)) }
        }
        return values
    }

    func softmax(_ x: UnsafePointer<Float>, _ n: Int, _ scale: Float) -> [Float] {
        var mx = -Float.infinity
        for k in 0..<n { mx = max(mx, x[k] * scale) }
        var e = (0..<n).map { expf(x[$0] * scale - mx) }
        let s = e.reduce(0, +)
        for k in 0..<n { e[k] /= s }
        return e
    }
}
