/// The scale of one row or one 32-input group for round-to-nearest.
///
/// 8 bits: amax / 127, no search: 255 levels leave so little rounding error
/// that clipping an outlier costs more than it saves.
/// 4 and 3 bits: the grid is so coarse that shrinking the range (clipping
/// the largest weights) often lowers the group's total squared error, so
/// candidate scales are tried and the best kept, as llama.cpp's
/// `make_qx_quants` and AWQ's clip search do:
/// - amax·r / qmax and amax·r / |qmin| for r = 1, 0.98, …, 0.60 (the second
///   family puts the largest weight on the extra negative level, -8 or -4);
/// - then the least-squares scale for the winner's integers,
///   Σ x·q / Σ q², re-rounded and kept if better (twice).
/// Every candidate is scored by re-rounding with `QuantLevels.level`, so the
/// integers stored later are exactly clamp(round(x / scale)): GPTQ and RTN
/// share this function and agree when GPTQ has nothing to compensate.
enum ScaleSearch {
    /// Scale of an all-zero group: any positive value gives integers 0.
    static let zeroScale: Float = 1

    static func scale(_ x: UnsafePointer<Float>, count: Int, levels: QuantLevels) -> Float {
        var amax: Float = 0
        for i in 0..<count { amax = max(amax, abs(x[i])) }
        guard amax > 0 else { return zeroScale }
        if levels.bits == 8 { return amax / levels.max }
        var best = amax / levels.max
        var bestErr = squaredError(x, count: count, scale: best, levels: levels)
        for step in 0...20 {
            let r = 1 - Float(step) * 0.02
            for denom in [levels.max, -levels.min] {
                let s = amax * r / denom
                let e = squaredError(x, count: count, scale: s, levels: levels)
                if e < bestErr { bestErr = e; best = s }
            }
        }
        for _ in 0..<2 {
            var xq: Float = 0, qq: Float = 0
            for i in 0..<count {
                let q = levels.level(x[i], scale: best)
                xq += x[i] * q
                qq += q * q
            }
            guard qq > 0, xq > 0 else { break }
            let s = xq / qq
            let e = squaredError(x, count: count, scale: s, levels: levels)
            if e < bestErr { bestErr = e; best = s } else { break }
        }
        return best
    }

    @inline(__always)
    static func squaredError(_ x: UnsafePointer<Float>, count: Int, scale s: Float, levels: QuantLevels) -> Float {
        var e: Float = 0
        for i in 0..<count {
            let d = x[i] - s * levels.level(x[i], scale: s)
            e += d * d
        }
        return e
    }
}
