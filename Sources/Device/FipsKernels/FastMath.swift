/// Vectorisable erf and exp. libm's scalar calls would dominate a ViT forward
/// pass (4.7M GELUs and 4.7M softmax exponentials per image for ViT-S).
public enum FastMath {
    /// erf(x) as x·P(x²)/Q(x²) on [-4, 4] (outside, erf is ±1 in float);
    /// the rational approximation Eigen and XLA use, max error a few ulp.
    @inline(__always)
    public static func erf(_ a: SIMD8<Float>) -> SIMD8<Float> {
        let x = clamp(a, -4, 4)
        let x2 = x * x
        var p = x2 * -2.72614225801306e-10 + 2.77068142495902e-08
        p = x2 * p + -2.10102402082508e-06
        p = x2 * p + -5.69250639462346e-05
        p = x2 * p + -7.34990630326855e-04
        p = x2 * p + -2.95459980854025e-03
        p = x2 * p + -1.60960333262415e-02
        p = x * p
        var q = x2 * -1.45660718464996e-05 + -2.13374055278905e-04
        q = x2 * q + -1.68282697438203e-03
        q = x2 * q + -7.37332916720468e-03
        q = x2 * q + -1.42647390514189e-02
        return p / q
    }

    /// e^x for x ≤ 88: Cody–Waite range reduction x = n·ln2 + r, a degree-6
    /// polynomial for e^r on |r| ≤ ln2/2, and 2^n built in the exponent bits.
    /// Inputs below -87 flush to 0, which is what softmax wants.
    @inline(__always)
    public static func exp(_ a: SIMD8<Float>) -> SIMD8<Float> {
        let x = clamp(a, -87, 88)
        // Round to nearest with the 1.5·2²³ trick: after the add, the integer
        // sits in the low mantissa bits. Avoids SIMD float→int conversion,
        // which Swift lowers to a scalar loop.
        let shifter: SIMD8<Float> = SIMD8(repeating: 12582912.0)
        let t = x * 1.44269504088896341 + shifter
        let n = t - shifter
        var r = x - n * 0.693359375
        r = r - n * -2.12194440e-4
        var p: SIMD8<Float> = r * 1.9875691500e-4 + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        p = p * (r * r) + r + 1
        let ni = unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000
        let scale = unsafeBitCast((ni &+ 127) &<< 23, to: SIMD8<Float>.self)
        var y = p * scale
        y.replace(with: 0, where: a .< -87)
        return y
    }

    /// `SIMD.clamped` is a generic call that does not inline; selects do.
    @inline(__always)
    public static func clamp(_ v: SIMD8<Float>, _ lo: Float, _ hi: Float) -> SIMD8<Float> {
        var r = v
        r.replace(with: SIMD8(repeating: lo), where: v .< lo)
        r.replace(with: SIMD8(repeating: hi), where: v .> hi)
        return r
    }

    @inline(__always)
    public static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always)
    public static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }
}
