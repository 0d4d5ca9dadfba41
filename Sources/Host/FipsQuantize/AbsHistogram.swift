/// Histogram of |x| over [0, range) with a fixed number of equal bins, for
/// static activation scales: exact counts of every observed value at a
/// resolution of range / binCount, in bounded memory (binCount counters).
///
/// The range is a power of two that covers the largest |x| seen; when a
/// larger value arrives it doubles and neighbouring bins merge pairwise, an
/// exact re-binning, so the order of observations never changes the result.
/// With 2¹⁶ bins the resolution is at worst amax / 32768, finer than the
/// int8 step (clip / 127) for any clip above amax / 256.
public struct AbsHistogram: Equatable {
    public let binCount: Int
    /// Upper edge of the last bin; 0 until a non-zero value is seen.
    public private(set) var range: Float = 0
    public private(set) var counts: [UInt64]
    /// Values added (finite ones; NaN and infinities are counted in `nonFinite` only).
    public private(set) var total: UInt64 = 0
    public private(set) var nonFinite: UInt64 = 0
    /// Largest |x| seen, exactly.
    public private(set) var amax: Float = 0

    public init(binCount: Int = 1 << 16) {
        precondition(binCount >= 2 && binCount % 2 == 0, "bin count must be even")
        self.binCount = binCount
        counts = [UInt64](repeating: 0, count: binCount)
    }

    public var binWidth: Double { Double(range) / Double(binCount) }

    public mutating func add(_ x: UnsafePointer<Float>, count: Int) {
        var m: Float = 0
        var bad = 0
        for i in 0..<count {
            let a = abs(x[i])
            if a.isFinite { m = max(m, a) } else { bad += 1 }
        }
        nonFinite += UInt64(bad)
        if m > 0 { grow(to: m) }
        amax = max(amax, m)
        total += UInt64(count - bad)
        if range == 0 {  // every value so far is zero
            counts[0] += UInt64(count - bad)
            return
        }
        let inv = Float(binCount) / range, last = binCount - 1
        counts.withUnsafeMutableBufferPointer { c in
            for i in 0..<count {
                let a = abs(x[i])
                guard a.isFinite else { continue }
                c[min(last, Int(a * inv))] += 1
            }
        }
    }

    mutating func grow(to m: Float) {
        if range == 0 {
            // Smallest power of two ≥ m (the top value lands in the last bin).
            var r: Float = 1
            while r < m { r *= 2 }
            while r / 2 >= m { r /= 2 }
            range = r
            return
        }
        while range < m {
            let half = binCount / 2
            for i in 0..<half { counts[i] = counts[2 * i] + counts[2 * i + 1] }
            for i in half..<binCount { counts[i] = 0 }
            range *= 2
        }
    }

    /// The p-th percentile (0…100) of |x|, interpolated linearly inside its
    /// bin, never above `amax`.
    public func percentile(_ p: Double) -> Float {
        guard total > 0, range > 0 else { return 0 }
        let target = min(max(p, 0), 100) / 100 * Double(total)
        var cum = 0.0
        let w = binWidth
        for i in 0..<binCount where counts[i] > 0 {
            let n = Double(counts[i])
            if cum + n >= target {
                let v = (Double(i) + (target - cum) / n) * w
                return min(amax, Float(v))
            }
            cum += n
        }
        return amax
    }

    /// Fraction of the values with |x| > v.
    public func fractionAbove(_ v: Float) -> Double {
        guard total > 0, range > 0 else { return 0 }
        let w = binWidth
        var above = 0.0
        for i in 0..<binCount where counts[i] > 0 {
            let lo = Double(i) * w, hi = lo + w
            if lo >= Double(v) { above += Double(counts[i]) }
            else if hi > Double(v) { above += Double(counts[i]) * (hi - Double(v)) / w }
        }
        return above / Double(total)
    }

    /// Mean squared error per value of symmetric int8 quantisation with
    /// scale clip / levels (levels = 127: a = clamp(round(x / s), ±127)),
    /// every bin's values taken as spread uniformly over the bin (exact
    /// integrals of the rounding error, piece by piece between rounding
    /// boundaries).
    public func meanSquaredError(clip: Float, levels: Int = 127) -> Double {
        guard total > 0, range > 0, clip > 0 else { return 0 }
        let s = Double(clip) / Double(levels), w = binWidth
        let L = Double(levels)
        // Values ≥ (L − ½)s all map to level L.
        let top = (L - 0.5) * s, c = L * s
        var sum = 0.0
        for i in 0..<binCount where counts[i] > 0 {
            let a = Double(i) * w, b = a + w
            let density = Double(counts[i]) / w
            if a >= top {
                sum += density * cubeDiff(b - c, a - c)
                continue
            }
            let hi = min(b, top)
            if b > top { sum += density * cubeDiff(b - c, top - c) }
            // Level k owns [(k − ½)s, (k + ½)s).
            var k = (a / s).rounded()
            var lo = a
            while lo < hi {
                let end = max(lo, min(hi, (k + 0.5) * s))
                if end > lo { sum += density * cubeDiff(end - k * s, lo - k * s) }
                lo = end
                k += 1
            }
        }
        return sum / Double(total)
    }

    /// ∫ from u to v of t² dt, as (v³ − u³) / 3 (arguments v − c, u − c).
    @inline(__always)
    func cubeDiff(_ v: Double, _ u: Double) -> Double { (v * v * v - u * u * u) / 3 }
}
