import CFipsKernels

/// Row-wise non-linearities of a transformer block, float versions.
/// On aarch64 GELU, softmax and LayerNorm run as C (CFipsKernels/activations_neon.c)
/// with the same bits as the Swift code here, which every other architecture
/// runs; check_aarch64.sh compares the two bit for bit.
public enum Activations {
    /// Exact (erf) GELU in place: x · ½ · (1 + erf(x/√2)).
    public static func geluErf(_ x: UnsafeMutablePointer<Float>, count: Int) {
        #if arch(arm64)
        fips_gelu_erf_neon(x, count)
        #else
        geluErfSIMD8(x, count: count)
        #endif
    }

    /// The reference GELU (FastMath.erf over SIMD8 lanes).
    public static func geluErfSIMD8(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let v = FastMath.load8(x + i)
            FastMath.store8(v * 0.5 * (1 + FastMath.erf(v * 0.70710678118654752)), x + i)
            i += 8
        }
        if i < count {
            var tail = SIMD8<Float>()
            for j in 0..<(count - i) { tail[j] = x[i + j] }
            let r = tail * 0.5 * (1 + FastMath.erf(tail * 0.70710678118654752))
            for j in 0..<(count - i) { x[i + j] = r[j] }
        }
    }

    /// tanh-approximated GELU in place, for checkpoints trained with it.
    public static func geluTanh(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let v = x[i]
            let u = 0.7978845608028654 * (v + 0.044715 * v * v * v)
            // tanh(u) = 1 - 2/(e^{2u}+1), via the vector exp on one lane.
            let e = FastMath.exp(SIMD8(repeating: min(2 * u, 80)))[0]
            x[i] = 0.5 * v * (1 + (1 - 2 / (e + 1)))
        }
    }

    /// LayerNorm over the last axis: rows × dim, biased variance, as PyTorch.
    public static func layerNorm(_ x: MatrixRef<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                 eps: Float, into out: MutableMatrixRef<Float>) {
        #if arch(arm64)
        fips_layer_norm_neon(x.base, x.stride, Int32(x.rows), Int32(x.cols), weight, bias, eps, out.base, out.stride)
        #else
        layerNormSIMD8(x, weight: weight, bias: bias, eps: eps, into: out)
        #endif
    }

    /// The reference LayerNorm (SIMD8 lane sums).
    public static func layerNormSIMD8(_ x: MatrixRef<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                      eps: Float, into out: MutableMatrixRef<Float>) {
        let D = x.cols
        for r in 0..<x.rows {
            let xi = x.row(r), o = out.row(r)
            var s = SIMD8<Float>()
            var k = 0
            while k + 8 <= D { s += FastMath.load8(xi + k); k += 8 }
            var sum = s.sum()
            while k < D { sum += xi[k]; k += 1 }
            let mean = sum / Float(D)
            var v = SIMD8<Float>()
            k = 0
            while k + 8 <= D { let d = FastMath.load8(xi + k) - mean; v += d * d; k += 8 }
            var varSum = v.sum()
            while k < D { let d = xi[k] - mean; varSum += d * d; k += 1 }
            let inv = 1 / (varSum / Float(D) + eps).squareRoot()
            k = 0
            while k + 8 <= D {
                let n = (FastMath.load8(xi + k) - mean) * inv
                FastMath.store8(n * FastMath.load8(weight + k) + FastMath.load8(bias + k), o + k)
                k += 8
            }
            while k < D { o[k] = (xi[k] - mean) * inv * weight[k] + bias[k]; k += 1 }
        }
    }

    /// Softmax of each row in place after multiplying by `scale` (the 1/√d of attention).
    public static func softmaxRows(_ x: MutableMatrixRef<Float>, scale: Float) {
        #if arch(arm64)
        fips_softmax_rows_neon(x.base, x.stride, Int32(x.rows), Int32(x.cols), scale)
        #else
        softmaxRowsSIMD8(x, scale: scale)
        #endif
    }

    /// The reference softmax (FastMath.exp over SIMD8 lanes, sums in lane order).
    public static func softmaxRowsSIMD8(_ x: MutableMatrixRef<Float>, scale: Float) {
        let N = x.cols
        for r in 0..<x.rows {
            let row = x.row(r)
            // Eight running maxima: the scalar `max` loop does not vectorise
            // (NaN rules) and was a tenth of an int8 forward pass. A maximum
            // does not depend on order, so the result is the same.
            var mv = SIMD8<Float>(repeating: -Float.greatestFiniteMagnitude)
            var k = 0
            while k + 8 <= N {
                let v = FastMath.load8(row + k)
                mv.replace(with: v, where: v .> mv)   // a select; pointwiseMax is a generic call
                k += 8
            }
            var mx = mv.max()
            while k < N { mx = max(mx, row[k]); k += 1 }
            var sumv = SIMD8<Float>()
            k = 0
            while k + 8 <= N {
                let e = FastMath.exp((FastMath.load8(row + k) - mx) * scale)
                FastMath.store8(e, row + k)
                sumv += e
                k += 8
            }
            var sum = sumv.sum()
            if k < N {
                var tail = SIMD8<Float>(repeating: -Float.infinity)
                for j in 0..<(N - k) { tail[j] = (row[k + j] - mx) * scale }
                let e = FastMath.exp(tail)
                for j in 0..<(N - k) { row[k + j] = e[j]; sum += e[j] }
            }
            let inv = 1 / sum
            k = 0
            while k + 8 <= N { FastMath.store8(FastMath.load8(row + k) * inv, row + k); k += 8 }
            while k < N { row[k] *= inv; k += 1 }
        }
    }
}
