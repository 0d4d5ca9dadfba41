/// Which implementation of a non-linearity the executor runs.
public enum NonlinearityMode {
    /// `Activations`: float, the reference.
    case float
    /// `IntegerActivations`: I-ViT's integer-only Shiftmax, ShiftGELU and I-LayerNorm.
    case integer
}

/// The integer non-linearities behind the float signatures of `Activations`,
/// so the executor can swap one for the other: each quantises its input to
/// int32, runs the integer kernel, and writes the dequantised result back.
/// Measuring what the integer pipeline costs in accuracy is the point; the
/// float↔int conversions are the boundary of that emulation.
///
/// Every quantisation is either a fixed-point format or derived from one row,
/// so a row's result never depends on how rows are split across threads.
public enum IntegerActivations {
    /// Scaled logits are Q12 (1/4096 units, range ±2^17, so differences fit int32).
    public static let logitBits = 12
    /// GELU inputs and outputs are Q12 (range ±2^18).
    public static let geluBits = 12
    /// LayerNorm inputs are quantised per row to ±2^22; outputs are Q16.
    public static let layerNormInputLevels: Float = 4_194_304
    public static let layerNormOutputBits = 16

    /// Shiftmax of each row of x·`scale`, probabilities at 16 bits (1/65535).
    public static func softmaxRows(_ m: MutableMatrixRef<Float>, scale: Float) {
        softmaxRows(m, scale: scale, levels: 65535)
    }

    /// Shiftmax with probabilities rounded to 8 bits (1/255), I-ViT's deployment precision.
    public static func softmaxRows8(_ m: MutableMatrixRef<Float>, scale: Float) {
        softmaxRows(m, scale: scale, levels: 255)
    }

    static func softmaxRows(_ m: MutableMatrixRef<Float>, scale: Float, levels: Int32) {
        let N = m.cols
        if N == 0 || m.rows == 0 { return }
        let one = Float(1 << logitBits)
        let exp = ShiftExp(inputScale: 1 / one, outputBits: Shiftmax.expBits(forCount: N))
        let toProbability = 1 / Float(levels)
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: N) { buf in
            let q = buf.baseAddress!
            for r in 0..<m.rows {
                let row = m.row(r)
                for k in 0..<N { q[k] = quantize(row[k] * scale * one, limit: 131_072 * one) }
                Shiftmax.probabilities(q, into: q, count: N, exp: exp, levels: levels)
                for k in 0..<N { row[k] = Float(q[k]) * toProbability }
            }
        }
    }

    /// ShiftGELU in place on values in Q12; elementwise, so any split of `x` gives the same result.
    public static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let one = Float(1 << geluBits), inv = 1 / one
        let exp = ShiftGELU.exp(forScale: inv)
        for i in 0..<count {
            let q = quantize(x[i] * one, limit: 262_144 * one)
            x[i] = Float(ShiftGELU.value(q, exp: exp)) * inv
        }
    }

    /// I-LayerNorm of each row; a row is quantised to ±2^22 of its own max |x|.
    public static func layerNorm(_ x: MatrixRef<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                 eps: Float, into out: MutableMatrixRef<Float>) {
        let D = x.cols
        if D == 0 || x.rows == 0 { return }
        let toFloat = 1 / Float(1 << layerNormOutputBits)
        withUnsafeTemporaryAllocation(of: Int32.self, capacity: 3 * D) { buf in
            let wq = buf.baseAddress!, bq = wq + D, q = wq + 2 * D
            IntegerLayerNorm.quantizeAffine(weight: weight, bias: bias, dim: D, outputBits: layerNormOutputBits,
                                            weightQ: wq, biasQ: bq)
            for r in 0..<x.rows {
                let xi = x.row(r), o = out.row(r)
                var amax: Float = 0
                for k in 0..<D { let a = abs(xi[k]); amax = a > amax ? a : amax }
                let scale = amax > 0 ? amax / layerNormInputLevels : 1
                let inv = layerNormInputLevels / (amax > 0 ? amax : layerNormInputLevels)
                for k in 0..<D { q[k] = quantize(xi[k] * inv, limit: layerNormInputLevels) }
                IntegerLayerNorm.row(q, dim: D, scale: scale, eps: eps, weightQ: wq, biasQ: bq,
                                     outputBits: layerNormOutputBits, into: q)
                for k in 0..<D { o[k] = Float(q[k]) * toFloat }
            }
        }
    }

    /// Round to nearest even, clamped to ±limit (≤ 2^31; NaN gives an
    /// unspecified value). Int32(Float) checks its range and does not
    /// vectorise; adding 1.5·2^52 in double leaves the integer in the low
    /// mantissa bits instead.
    @inline(__always)
    static func quantize(_ v: Float, limit: Float) -> Int32 {
        let c = v > limit ? limit : (v < -limit ? -limit : v)
        return Int32(truncatingIfNeeded: (Double(c) + 6_755_399_441_055_744).bitPattern)
    }
}
