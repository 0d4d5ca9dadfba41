/// Exact (erf) GELU, `a·Φ(a)`, and its derivative `Φ(a) + a·φ(a)`, fast enough for
/// reconstruction: there the element-wise GELU touches as many values per step as a
/// GEMM does, and glibc's scalar `erff` made it a third of the run time.
///
/// Φ uses Abramowitz & Stegun 7.1.26 for erfc on |x| (absolute error ≤ 1.5·10⁻⁷ in erf,
/// i.e. below float resolution around Φ ≈ 1 and relatively accurate in the tail), and the
/// same `exp(−a²/2)` serves erfc and the density φ. The loops are branch-free so the
/// compiler vectorises them.
public enum GELU {
    @inline(__always)
    public static func expNeg(_ y0: Float) -> Float {
        // exp(y) for y ≤ 0: y = k·ln2 + f, |f| ≤ ln2/2, degree-6 Taylor for e^f, 2^k by exponent bits
        let y: Float = y0 < -87 ? -87 : y0
        // round to nearest by the 1.5·2²³ trick (no libm call, so the loop vectorises);
        // the integer k then sits in the low mantissa bits of t
        let t = y * 1.442695041 + 12582912
        let k = t - 12582912
        let ki = Int32(bitPattern: t.bitPattern) &- 0x4B40_0000
        let f = (y - k * 0.693145751953125) - k * 1.428606765330187e-06
        var p: Float = 1.0 / 720
        p = p * f + 1.0 / 120
        p = p * f + 1.0 / 24
        p = p * f + 1.0 / 6
        p = p * f + 0.5
        p = p * f + 1
        p = p * f + 1
        let bits = UInt32(bitPattern: ki &+ 127) << 23
        return p * Float(bitPattern: bits)
    }

    /// (Φ(a), φ(a))
    @inline(__always)
    public static func cdfPdf(_ a: Float) -> (Float, Float) {
        let x = abs(a) * 0.7071067811865476
        let t = 1 / (1 + 0.3275911 * x)
        let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
        let e = expNeg(-0.5 * a * a)
        let tail = 0.5 * poly * e  // Φ(−|a|)
        let cdf = a >= 0 ? 1 - tail : tail
        return (cdf, e * 0.3989422804014327)
    }

    public static func value(_ a: Float) -> Float { a * cdfPdf(a).0 }
    public static func derivative(_ a: Float) -> Float { let (c, p) = cdfPdf(a); return c + a * p }

    /// h[i] = GELU(a[i]).
    public static func forward(_ a: UnsafeMutablePointer<Float>, _ h: UnsafeMutablePointer<Float>, _ count: Int) {
        for i in 0..<count { let x = a[i]; h[i] = x * cdfPdf(x).0 }
    }

    /// h[i] = GELU(a[i]); a[i] ← GELU'(a[i]).
    public static func forwardWithDerivative(_ a: UnsafeMutablePointer<Float>, _ h: UnsafeMutablePointer<Float>, _ count: Int) {
        for i in 0..<count {
            let x = a[i]
            let (c, p) = cdfPdf(x)
            h[i] = x * c
            a[i] = c + x * p
        }
    }
}
