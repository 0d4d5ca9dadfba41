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
/// - at 2 bits also the negatives of both (a negative scale mirrors the
///   grid {-2, -1, 0, 1}, moving the extra level to the positive side);
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
        precondition(count <= 32, "clip search is per group of at most 32")
        // Zero padding changes no error and no least-squares sum.
        var g = Group32()
        withUnsafeMutableBytes(of: &g) { b in
            let f = b.baseAddress!.assumingMemoryBound(to: Float.self)
            f.update(from: x, count: count)
        }
        var best = amax / levels.max
        var bestErr = g.squaredError(scale: best, levels: levels)
        for step in 0...20 {
            let r = 1 - Float(step) * 0.02
            let s1 = amax * r / levels.max, s2 = amax * r / -levels.min
            let e1 = g.squaredError(scale: s1, levels: levels)
            if e1 < bestErr { bestErr = e1; best = s1 }
            let e2 = g.squaredError(scale: s2, levels: levels)
            if e2 < bestErr { bestErr = e2; best = s2 }
            if levels.bits == 2 {
                // {-2, -1, 0, 1}·s has one positive level: a negative scale
                // mirrors the grid, so a group whose largest weight is positive
                // can put it on the two-level side.
                for sn in [-s1, -s2] {
                    let e = g.squaredError(scale: sn, levels: levels)
                    if e < bestErr { bestErr = e; best = sn }
                }
            }
        }
        for _ in 0..<2 {
            let (xq, qq) = g.projection(scale: best, levels: levels)
            guard qq > 0, xq * best > 0 else { break }
            let s = xq / qq
            let e = g.squaredError(scale: s, levels: levels)
            if e < bestErr { bestErr = e; best = s } else { break }
        }
        return best
    }
}

/// 32 floats as four SIMD vectors: the clip search evaluates ~45 scales per
/// group, and lane-parallel evaluation is what makes that affordable
/// (scalar code spent seconds on DINOv2-S's 660 000 groups).
struct Group32 {
    var v0 = SIMD8<Float>(), v1 = SIMD8<Float>(), v2 = SIMD8<Float>(), v3 = SIMD8<Float>()

    /// The levels of `x` at scale s, as `QuantLevels.level` computes them lane by lane.
    @inline(__always)
    static func levels(_ x: SIMD8<Float>, _ s: Float, _ l: QuantLevels) -> SIMD8<Float> {
        let magic = SIMD8<Float>(repeating: QuantLevels.roundingMagic)
        // Masked selects: the stdlib's pointwiseMin/Max are not inlined.
        var v = x * SIMD8(repeating: 1 / s)
        v.replace(with: l.min, where: v .< l.min)
        v.replace(with: l.max, where: v .> l.max)
        return (v + magic) - magic
    }

    @inline(__always)
    func squaredError(scale s: Float, levels l: QuantLevels) -> Float {
        let sv = SIMD8<Float>(repeating: s)
        let d0 = v0 - sv * Group32.levels(v0, s, l), d1 = v1 - sv * Group32.levels(v1, s, l)
        let d2 = v2 - sv * Group32.levels(v2, s, l), d3 = v3 - sv * Group32.levels(v3, s, l)
        return (d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3).sum()
    }

    /// (Σ x·q, Σ q²) for the levels at scale s.
    @inline(__always)
    func projection(scale s: Float, levels l: QuantLevels) -> (Float, Float) {
        let q0 = Group32.levels(v0, s, l), q1 = Group32.levels(v1, s, l)
        let q2 = Group32.levels(v2, s, l), q3 = Group32.levels(v3, s, l)
        return ((v0 * q0 + v1 * q1 + v2 * q2 + v3 * q3).sum(), (q0 * q0 + q1 * q1 + q2 * q2 + q3 * q3).sum())
    }
}
