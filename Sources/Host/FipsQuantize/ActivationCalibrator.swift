import Foundation

/// How a layer's static int8 activation scale is chosen.
public enum ActivationCalibration: Equatable {
    /// clip = the p-th percentile of |x| (e.g. 99.99).
    case percentile(Double)
    /// clip minimising the expected int8 quantisation error (rounding plus
    /// clipping) over the observed |x| distribution.
    case mse
    /// clip = max |x|: a baseline only. One outlier token stretches the grid
    /// for every other value; ViT activations have such outliers.
    case absMax
}

/// A static per-tensor activation scale and what it was derived from.
public struct ActivationRange: Equatable {
    /// s: a_q = clamp(round(x / s), ±127) (docs/KERNELS.md, "The numeric contract").
    public var scale: Float
    /// The clipping value, 127 · s.
    public var clip: Float
    /// Observed signed extremes and max |x|.
    public var min: Float
    public var max: Float
    public var amax: Float
    /// Fraction of observed values beyond the clip.
    public var clippedFraction: Double
    /// Expected squared error per value at this scale (histogram model).
    public var meanSquaredError: Double
    /// The same at clip = amax, for comparison.
    public var absMaxMeanSquaredError: Double
    public var tokens: Int
}

/// Per-tensor static int8 activation scales from `InputStatistics`.
public enum ActivationCalibrator {
    public static let levels = 127

    public static func range(_ stats: InputStatistics, method: ActivationCalibration) -> ActivationRange {
        let h = stats.histogram
        var clip: Float
        switch method {
        case .absMax: clip = h.amax
        case .percentile(let p): clip = h.percentile(p)
        case .mse: clip = mseClip(h)
        }
        if !(clip > 0) { clip = Float(levels) }  // nothing non-zero seen: scale 1
        return ActivationRange(scale: clip / Float(levels), clip: clip,
                               min: stats.tokens > 0 ? stats.min : 0, max: stats.tokens > 0 ? stats.max : 0,
                               amax: h.amax, clippedFraction: h.fractionAbove(clip),
                               meanSquaredError: h.meanSquaredError(clip: clip, levels: levels),
                               absMaxMeanSquaredError: h.meanSquaredError(clip: h.amax, levels: levels),
                               tokens: stats.tokens)
    }

    /// Coarse-to-fine search over clips amax·2^(−j/8), j = 0…96 (down to
    /// amax / 4096), then ±1/8 octave around the best in 1/128-octave steps.
    /// The error is smooth in the clip at this resolution, so the coarse grid
    /// cannot step over a much better minimum.
    public static func mseClip(_ h: AbsHistogram) -> Float {
        guard h.amax > 0 else { return 0 }
        let amax = Double(h.amax)
        func err(_ c: Double) -> Double { h.meanSquaredError(clip: Float(c), levels: levels) }
        var best = amax, bestErr = err(amax)
        for j in 1...96 {
            let c = amax * exp2(-Double(j) / 8)
            let e = err(c)
            if e < bestErr { bestErr = e; best = c }
        }
        let centre = best
        for t in -16...16 where t != 0 {
            let c = Swift.min(amax, centre * exp2(Double(t) / 128))
            let e = err(c)
            if e < bestErr { bestErr = e; best = c }
        }
        return Float(best)
    }
}
