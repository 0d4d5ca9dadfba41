/// int8 × int8 → int32 GEMM for linear layers with int8 weights.
///
/// Weights are symmetric per output row (w = wScale[n] · q[n][k]); activations
/// are quantised per row (one scale per token, computed on the fly) so no
/// calibration is needed. out[m][n] = aScale[m]·wScale[n]·Σ_k qa[m][k]·qw[n][k] + bias[n].
/// The int32 sums are exact, so the result is identical on every CPU.
public enum Int8Gemm {
    /// Quantises each row of `a` symmetrically to int8; returns per-row scales in `scales`.
    public static func quantizeRows(_ a: MatrixRef<Float>, into q: UnsafeMutablePointer<Int8>,
                                    scales: UnsafeMutablePointer<Float>) {
        let K = a.cols
        for m in 0..<a.rows {
            let x = a.row(m)
            var amax: Float = 0
            for k in 0..<K { amax = max(amax, abs(x[k])) }
            let scale = amax > 0 ? amax / 127 : 1
            let inv = 1 / scale
            let qr = q + m * K
            for k in 0..<K {
                let v = (x[k] * inv).rounded(.toNearestOrEven)
                qr[k] = Int8(max(-127, min(127, v)))
            }
            scales[m] = scale
        }
    }

    @inline(__always)
    public static func dot(_ x: UnsafePointer<Int8>, _ y: UnsafePointer<Int8>, _ K: Int) -> Int32 {
        var acc = SIMD16<Int32>()
        var k = 0
        while k + 16 <= K {
            let xv = SIMD16<Int16>(truncatingIfNeeded: UnsafeRawPointer(x + k).loadUnaligned(as: SIMD16<Int8>.self))
            let yv = SIMD16<Int16>(truncatingIfNeeded: UnsafeRawPointer(y + k).loadUnaligned(as: SIMD16<Int8>.self))
            acc &+= SIMD16<Int32>(truncatingIfNeeded: xv &* yv)
            k += 16
        }
        var s = acc.wrappedSum()
        while k < K { s &+= Int32(x[k]) &* Int32(y[k]); k += 1 }
        return s
    }

    /// `qa` is [M, K] int8 with `aScales[M]`; `qw` is [N, K] int8 with `wScales[N]`.
    public static func multiplyTransposed(_ qa: UnsafePointer<Int8>, aScales: UnsafePointer<Float>,
                                          _ qw: UnsafePointer<Int8>, wScales: UnsafePointer<Float>,
                                          M: Int, N: Int, K: Int, bias: UnsafePointer<Float>?,
                                          into out: MutableMatrixRef<Float>) {
        for m in 0..<M {
            let a = qa + m * K
            let o = out.row(m)
            let sa = aScales[m]
            for n in 0..<N {
                let s = dot(a, qw + n * K, K)
                o[n] = Float(s) * (sa * wScales[n]) + (bias?[n] ?? 0)
            }
        }
    }
}
