/// I-ViT's I-LayerNorm: LayerNorm of int32 rows with integer mean, variance,
/// Newton square root and a fixed-point affine.
///
/// Per row (D = dim): the mean is kept with k fraction bits, as many as the
/// int64 sum of squares allows for the row's max |x| (I-ViT rounds it to an
/// integer: on int8 rows that shifts every output by up to 0.5/σ_int, 0.007
/// for σ_int = 73 — measured 0.004 before this);
/// y = x·2^k − mean; std = ⌊√(Σy² + ε')⌋ with ε' = ε·D·4^k/scale² (the float ε
/// in the same integer units); n = y·√D/std. √D is not an integer, so, like
/// I-ViT, it is folded into the weight: n·w = (y/std)·(√D·w). y/std ∈ [−1, 1]
/// is y times one int32 reciprocal of std per row (Q24); √D·w is Q16 and the
/// bias is in output units, so out = (n·w + b·2^(40−F)) >> (40 − F) in Q`F`.
/// Every product is int32 × int32 → int64, so the loops vectorise.
public enum IntegerLayerNorm {
    /// y/std precision.
    public static let normBits = 24
    /// √D·weight precision.
    public static let weightBits = 16

    /// Quantises the affine once per weight set: `weightQ` = √D·weight in Q16
    /// (|√D·weight| < 2^15), `biasQ` = bias in Q`outputBits` (|bias| < 2^(31−outputBits)).
    public static func quantizeAffine(weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, dim: Int,
                                      outputBits: Int, weightQ: UnsafeMutablePointer<Int32>,
                                      biasQ: UnsafeMutablePointer<Int32>) {
        let root = Double(dim).squareRoot()
        let wScale = Double(1 << weightBits) * root, bScale = Double(1 << outputBits)
        for k in 0..<dim {
            weightQ[k] = saturate((Double(weight[k]) * wScale).rounded())
            biasQ[k] = saturate((Double(bias[k]) * bScale).rounded())
        }
    }

    /// One row of `dim` (≤ 16384) int32 values worth `scale` each, |x| < 2^23,
    /// into `out` (may be `x`) in Q`outputBits` (value = out / 2^outputBits,
    /// 0 ≤ outputBits ≤ 24; |bias| < 2^22).
    public static func row(_ x: UnsafePointer<Int32>, dim: Int, scale: Float, eps: Float,
                           weightQ: UnsafePointer<Int32>, biasQ: UnsafePointer<Int32>, outputBits: Int,
                           into out: UnsafeMutablePointer<Int32>) {
        if dim == 0 { return }
        var sum: Int64 = 0
        var amax: Int32 = 0
        for i in 0..<dim {
            let v = x[i]
            sum &+= Int64(v)
            let a = v < 0 ? 0 &- v : v
            amax = a > amax ? a : amax
        }
        // |y| < 2^(bx+k+1) must fit int32 and D·y² int64 (with room for ε').
        let bx = 32 - amax.leadingZeroBitCount, bD = 64 - UInt64(dim).leadingZeroBitCount
        let k = max(0, min(16, 30 - bx, (60 - 2 * bx - bD) / 2))
        let D = Int64(dim)
        let mean = Int32(truncatingIfNeeded: floorDivide(2 * (sum << k) + D, 2 * D))   // round half up
        var squares: Int64 = 0
        for i in 0..<dim {
            let y = Int64((x[i] &<< Int32(k)) &- mean)
            squares &+= y &* y
        }
        let s = Double(scale)
        let epsUnits = min(Double(eps) * Double(dim) * Double(1 << (2 * k)) / (s * s), 4.0e18)
        let std = max(1, squareRoot(UInt64(squares) &+ UInt64(epsUnits)))
        // recip = ⌊2^P/std⌋ in [2^29, 2^30]; y·recip >> (P − 24) = y/std in Q24.
        let P = Int64(93 - std.leadingZeroBitCount)
        let recip = Int64((UInt64(1) << P) / std)
        let normShift = P - Int64(normBits)
        let outShift = Int64(normBits + weightBits - outputBits)
        let half: Int64 = 1 << (outShift - 1)
        for i in 0..<dim {
            let y = Int64((x[i] &<< Int32(k)) &- mean)
            let n = Int64(Int32(truncatingIfNeeded: (y &* recip) &>> normShift))            // Q24
            let o = (n &* Int64(weightQ[i]) &+ (Int64(biasQ[i]) &<< outShift) &+ half) &>> outShift
            out[i] = Int32(truncatingIfNeeded: o < -2147483648 ? -2147483648 : (o > 2147483647 ? 2147483647 : o))
        }
    }

    /// ⌊√n⌋ by Newton's iteration from a power of two above the root; it
    /// decreases monotonically to the floor (5–6 steps for 64-bit n).
    public static func squareRoot(_ n: UInt64) -> UInt64 {
        if n < 2 { return n }
        let bits = 64 - n.leadingZeroBitCount
        var r = UInt64(1) << ((bits + 1) / 2)                            // ≥ √n
        while true {
            let next = (r + n / r) / 2
            if next >= r { return r }
            r = next
        }
    }

    @inline(__always)
    static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    @inline(__always)
    static func saturate(_ v: Double) -> Int32 {
        Int32(v < -2147483647 ? -2147483647 : (v > 2147483647 ? 2147483647 : v))
    }
}
