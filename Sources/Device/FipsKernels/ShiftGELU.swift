/// I-ViT's ShiftGELU: GELU(x) ≈ x·σ(1.702x) with σ from ShiftExp, integer only.
///
/// I-ViT evaluates σ(z) = e^(z−max)/(e^(z−max) + e^(−max)) with a row max,
/// which makes a value depend on its neighbours and loses precision near 0.
/// Here σ is taken per element from E = e^(−|z|) ≤ 1: σ(−|z|) = E/(1 + E)
/// and σ(|z|) = 1 − σ(−|z|). 1/(1 + E) is two Newton steps on a linear
/// first guess (division-free, so the loop vectorises; an int32 division per
/// element made it 4× slower).
/// The x·σ(1.702x) form itself is up to 0.020 from the erf GELU (near |x| ≈ 2).
public enum ShiftGELU {
    /// σ is computed in Q15.
    public static let sigmoidBits = 15

    /// The ShiftExp for inputs of `scale`: 1.702 is folded into its input scale, as I-ViT does.
    public static func exp(forScale scale: Float, fraction: ShiftExp.Fraction = .quadratic) -> ShiftExp {
        ShiftExp(inputScale: 1.702 * scale, outputBits: sigmoidBits, fraction: fraction)
    }

    /// out = GELU(x) in the input's own scale (value = x·scale); |x| < 2^31 − 1.
    /// `out` may be `x`.
    public static func apply(_ x: UnsafePointer<Int32>, count: Int, scale: Float,
                             fraction: ShiftExp.Fraction = .quadratic, into out: UnsafeMutablePointer<Int32>) {
        let e = exp(forScale: scale, fraction: fraction)
        for i in 0..<count { out[i] = value(x[i], exp: e) }
    }

    /// GELU of one value, rounded to the input's scale; `exp` from `exp(forScale:)`.
    @inline(__always)
    public static func value(_ x: Int32, exp: ShiftExp) -> Int32 {
        let one: Int32 = 1 << 15
        let e = exp(x < 0 ? x : 0 &- x)                                   // e^(−1.702|x|) in Q15
        let d = one &+ e                                                  // 1 + E in Q15, in [1, 2]
        let lower = Int32(truncatingIfNeeded: (Int64(e) &* Int64(reciprocal(d)) &+ (1 << 28)) &>> 29)
        let sigma = x < 0 ? lower : one &- lower                          // Q15
        return Int32(truncatingIfNeeded: (Int64(x) &* Int64(sigma) &+ (1 << 14)) &>> 15)
    }

    /// 1/d in Q29 for d in Q15 within [1, 2]: r₀ = 24/17 − 8/17·d (relative
    /// error ≤ 1/17), then r ← r·(2 − d·r) twice (1/17 → 1/289 → 1.2·10⁻⁵,
    /// below half of σ's Q15 step).
    @inline(__always)
    static func reciprocal(_ d: Int32) -> Int32 {
        var r = 757_935_405 &- d &* 7710                                  // 24/17·2^29 − 8/17·2^14·d
        for _ in 0..<2 {
            let dr = Int32(truncatingIfNeeded: (Int64(d) &* Int64(r)) &>> 15)          // d·r in Q29, ≈ 1
            r = Int32(truncatingIfNeeded: (Int64(r) &* Int64((1 << 30) &- dr)) &>> 29)
        }
        return r
    }
}
