/// I-ViT's ShiftExp: e^(x·scale) for integer x ≤ 0 with shifts, adds and one
/// multiply, no float and no table (Li & Gu, "I-ViT", ICCV 2023).
///
/// e^v = 2^(v·log₂e). log₂e is approximated by I-ViT's 1 + 1/2 − 1/16 = 1.4375
/// (x + x>>1 − x>>4). The product is rescaled into a log₂ fixed point with 16
/// fraction bits by one integer multiplier (I-ViT divides by ⌊−1/scale⌋
/// instead; a dyadic multiplier is the same rescaling without a division per
/// element). u = −q + g with q an integer and g ∈ [0, 1): 2^−q is a right
/// shift, and 2^g is I-ViT's line 1 + g (max relative error 6.1%) or, by
/// default, that line bent by one multiply, 1 + g − 0.33977·g·(1 − g)
/// (max relative error 0.27%): the line alone puts softmax probabilities
/// 0.015 off, the bent one 0.002.
public struct ShiftExp {
    public enum Fraction { case linear, quadratic }

    /// Fraction bits of the log₂-domain fixed point.
    static let logBits: Int32 = 16
    /// 0.33977 in Q16: the c of 1 + g − c·g(1−g) with the least max relative error.
    static let bend: Int32 = 22267

    /// Results are in units of 2^−outputBits: e^0 = 2^outputBits.
    public let outputBits: Int
    /// e^(x·scale) for x < −inputLimit is below half a unit: inputs are clamped there.
    public let inputLimit: Int32
    /// multiplier / 2^shift ≈ inputScale · 2^16; int32 so y·multiplier is one widening multiply.
    let multiplier: Int32, shift: Int64
    let leftShift: Int32, rightShift: Int32
    let quadratic: Bool

    /// `inputScale` is what one unit of x is worth (0 < inputScale < 2^14);
    /// `outputBits` is at most 30.
    public init(inputScale: Float, outputBits: Int, fraction: Fraction = .quadratic) {
        precondition(inputScale > 0 && inputScale < 16384 && outputBits >= 1 && outputBits <= 30)
        self.outputBits = outputBits
        self.quadratic = fraction == .quadratic
        // multiplier / 2^shift ≈ inputScale · 2^16, with the multiplier in [2^30, 2^31).
        var v = Double(inputScale) * 65536
        var s: Int64 = 0
        while v < 1_073_741_824 && s < 62 { v *= 2; s += 1 }
        multiplier = Int32(min(v.rounded(), 2147483647))
        shift = s
        // Beyond (outputBits + 2) halvings everything is 0; capped so 1.4375·x stays in Int32.
        let limit = (Double(outputBits) + 2) / (1.4375 * Double(inputScale)) + 1
        inputLimit = Int32(min(limit, 536_870_912))
        leftShift = Int32(max(0, outputBits - 16))
        rightShift = Int32(max(0, 16 - outputBits))
    }

    /// e^(x·inputScale) · 2^outputBits for x ≤ 0, truncated.
    @inline(__always)
    public func callAsFunction(_ x: Int32) -> Int32 {
        let xc = x < -inputLimit ? -inputLimit : x
        let y = xc &+ (xc &>> 1) &- (xc &>> 4)                      // x · log₂e
        let t = Int32(truncatingIfNeeded: (Int64(y) &* Int64(multiplier)) &>> shift)   // Q16, ≤ 0
        let q = 0 &- (t &>> ShiftExp.logBits)                        // whole halvings
        let g = t & 0xFFFF                                           // fraction in Q16
        var m = 65536 &+ g                                           // 2^g ≈ 1 + g
        if quadratic {
            m = m &- ((((g &* (65536 &- g)) &>> 16) &* ShiftExp.bend) &>> 16)
        }
        let down = q &+ rightShift
        return (m &<< leftShift) &>> (down > 31 ? 31 : down)
    }
}

/// I-ViT's Shiftmax: softmax over rows of int32 logits, integer only.
///
/// Per row: subtract the row max, ShiftExp each logit into exp units of
/// 2^−n, sum in int32, one integer reciprocal of the sum, and one multiply
/// and shift per probability. n is as large as the int32 sum allows
/// (count · 2^n ≤ 2^30, at most 22): 21 bits for 257 tokens.
/// Probabilities come out as UInt8 (scale 1/255, I-ViT's deployment
/// precision) or UInt16 (scale 1/65535). Note that 8 bits cannot hold a flat
/// row of 257: each 1/257 rounds to 1/255 and a row's sum drifts by several %.
public enum Shiftmax {
    /// Exp precision n for rows of `count`: the largest with count·2^n ≤ 2^30, capped at 22.
    public static func expBits(forCount count: Int) -> Int {
        precondition(count >= 1 && count <= 1 << 20)
        var bits = 0
        while (1 << bits) < count { bits += 1 }
        return min(22, 30 - bits)
    }

    /// `logits` value is logits · `scale` (scale > 0; |logits| < 2^30);
    /// probability = out / 255.
    public static func rows(_ logits: MatrixRef<Int32>, scale: Float, fraction: ShiftExp.Fraction = .quadratic,
                            into out: MutableMatrixRef<UInt8>) {
        if logits.cols == 0 || logits.rows == 0 { return }
        let exp = ShiftExp(inputScale: scale, outputBits: expBits(forCount: logits.cols), fraction: fraction)
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: logits.cols) { buf in
            let e = buf.baseAddress!
            for r in 0..<logits.rows {
                probabilities(logits.row(r), into: e, count: logits.cols, exp: exp, levels: 255)
                let o = out.row(r)
                for k in 0..<logits.cols { o[k] = UInt8(truncatingIfNeeded: e[k]) }
            }
        }
    }

    /// As above with probability = out / 65535.
    public static func rows(_ logits: MatrixRef<Int32>, scale: Float, fraction: ShiftExp.Fraction = .quadratic,
                            into out: MutableMatrixRef<UInt16>) {
        if logits.cols == 0 || logits.rows == 0 { return }
        let exp = ShiftExp(inputScale: scale, outputBits: expBits(forCount: logits.cols), fraction: fraction)
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: logits.cols) { buf in
            let e = buf.baseAddress!
            for r in 0..<logits.rows {
                probabilities(logits.row(r), into: e, count: logits.cols, exp: exp, levels: 65535)
                let o = out.row(r)
                for k in 0..<logits.cols { o[k] = UInt16(truncatingIfNeeded: e[k]) }
            }
        }
    }

    /// One row: p[k] = round(levels · e_k / Σe) in [0, levels]. `p` may be `x`.
    /// `exp` must have been built with `expBits(forCount: count)` bits or fewer.
    @inline(__always)
    public static func probabilities(_ x: UnsafePointer<Int32>, into p: UnsafeMutablePointer<Int32>, count: Int,
                                     exp: ShiftExp, levels: Int32) {
        var mx = Int32.min
        for k in 0..<count { mx = x[k] > mx ? x[k] : mx }
        var sum: Int32 = 0
        for k in 0..<count {
            let e = exp(x[k] &- mx)
            p[k] = e
            sum &+= e
        }
        // The max contributes 2^n, so sum > 0. recip = ⌊levels·2^R/sum⌋ with R
        // putting it in [2^30, 2^31): an int32, so each p is one widening
        // multiply; floor keeps every p ≤ levels (e ≤ sum).
        var R: Int64 = 0
        while (Int64(levels) << R) < (Int64(sum) << 30) { R += 1 }
        let recip = Int32((Int64(levels) << R) / Int64(sum))
        let half: Int64 = 1 << (R - 1)
        for k in 0..<count {
            p[k] = Int32(truncatingIfNeeded: (Int64(p[k]) &* Int64(recip) &+ half) &>> R)
        }
    }
}
