import CFipsKernels

/// out[m][n] = Σ_k a[m][k] · w[n][k] (+ bias[n]): activations times a weight
/// stored [out, in], which is how every linear layer and Q·Kᵀ are laid out.
///
/// Plain Swift with SIMD8 accumulators over k and a 4×4 register tile
/// (`acc += x * y`, not `addProduct`: without FMA in the target, addProduct
/// becomes a libm fmaf call per lane):
/// simple enough to read, and it lets LLVM keep 16 vector accumulators in
/// registers on both AVX2 and NEON. Not BLAS-fast; the host uses OpenBLAS.
///
/// On aarch64 the same arithmetic runs as C (CFipsKernels/f32gemm_neon.c says
/// why), bit for bit this code, which every other architecture runs.
public enum F32Gemm {
    public static func multiplyTransposed(_ a: MatrixRef<Float>, _ w: MatrixRef<Float>, bias: UnsafePointer<Float>?,
                                          into out: MutableMatrixRef<Float>) {
        precondition(a.cols == w.cols && out.rows == a.rows && out.cols == w.rows, "F32Gemm shape mismatch")
        #if arch(arm64)
        fips_f32_gemm_nt_neon(a.base, a.stride, w.base, w.stride, bias, out.base, out.stride,
                              Int32(a.rows), Int32(w.rows), Int32(a.cols))
        #else
        multiplyTransposedSIMD8(a, w, bias: bias, into: out)
        #endif
    }

    /// The reference: SIMD8 accumulators over k, 4×4 register tiles.
    public static func multiplyTransposedSIMD8(_ a: MatrixRef<Float>, _ w: MatrixRef<Float>, bias: UnsafePointer<Float>?,
                                               into out: MutableMatrixRef<Float>) {
        let M = a.rows, N = w.rows, K = a.cols
        var m = 0
        while m < M {
            let mr = min(4, M - m)
            var n = 0
            while n < N {
                let nr = min(4, N - n)
                if mr == 4 && nr == 4 {
                    tile4x4(a, w, m, n, K, bias, out)
                } else {
                    for i in 0..<mr {
                        for j in 0..<nr {
                            let s = dot(a.row(m + i), w.row(n + j), K)
                            out.row(m + i)[n + j] = s + (bias?[n + j] ?? 0)
                        }
                    }
                }
                n += 4
            }
            m += 4
        }
    }

    @inline(__always)
    static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inline(__always)
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ K: Int) -> Float {
        var acc = SIMD8<Float>()
        var k = 0
        while k + 8 <= K {
            acc += load8(x + k) * load8(y + k)
            k += 8
        }
        var s = acc.sum()
        while k < K { s += x[k] * y[k]; k += 1 }
        return s
    }

    @inline(__always)
    static func tile4x4(_ a: MatrixRef<Float>, _ w: MatrixRef<Float>, _ m: Int, _ n: Int, _ K: Int,
                        _ bias: UnsafePointer<Float>?, _ out: MutableMatrixRef<Float>) {
        let a0 = a.row(m), a1 = a.row(m + 1), a2 = a.row(m + 2), a3 = a.row(m + 3)
        let w0 = w.row(n), w1 = w.row(n + 1), w2 = w.row(n + 2), w3 = w.row(n + 3)
        var c00 = SIMD8<Float>(), c01 = SIMD8<Float>(), c02 = SIMD8<Float>(), c03 = SIMD8<Float>()
        var c10 = SIMD8<Float>(), c11 = SIMD8<Float>(), c12 = SIMD8<Float>(), c13 = SIMD8<Float>()
        var c20 = SIMD8<Float>(), c21 = SIMD8<Float>(), c22 = SIMD8<Float>(), c23 = SIMD8<Float>()
        var c30 = SIMD8<Float>(), c31 = SIMD8<Float>(), c32 = SIMD8<Float>(), c33 = SIMD8<Float>()
        var k = 0
        while k + 8 <= K {
            let x0 = load8(a0 + k), x1 = load8(a1 + k), x2 = load8(a2 + k), x3 = load8(a3 + k)
            let y0 = load8(w0 + k), y1 = load8(w1 + k), y2 = load8(w2 + k), y3 = load8(w3 + k)
            c00 += x0 * y0; c01 += x0 * y1; c02 += x0 * y2; c03 += x0 * y3
            c10 += x1 * y0; c11 += x1 * y1; c12 += x1 * y2; c13 += x1 * y3
            c20 += x2 * y0; c21 += x2 * y1; c22 += x2 * y2; c23 += x2 * y3
            c30 += x3 * y0; c31 += x3 * y1; c32 += x3 * y2; c33 += x3 * y3
            k += 8
        }
        let sums: (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) = (
            SIMD4(c00.sum(), c01.sum(), c02.sum(), c03.sum()), SIMD4(c10.sum(), c11.sum(), c12.sum(), c13.sum()),
            SIMD4(c20.sum(), c21.sum(), c22.sum(), c23.sum()), SIMD4(c30.sum(), c31.sum(), c32.sum(), c33.sum()))
        let b = bias.map { SIMD4<Float>($0[n], $0[n + 1], $0[n + 2], $0[n + 3]) } ?? SIMD4<Float>()
        @inline(__always) func store(_ i: Int, _ ai: UnsafePointer<Float>, _ s: SIMD4<Float>) {
            var v = s + b
            var kk = k
            while kk < K {
                let x = ai[kk]
                v += SIMD4(x * w0[kk], x * w1[kk], x * w2[kk], x * w3[kk])
                kk += 1
            }
            let o = out.row(m + i) + n
            o[0] = v[0]; o[1] = v[1]; o[2] = v[2]; o[3] = v[3]
        }
        store(0, a0, sums.0); store(1, a1, sums.1); store(2, a2, sums.2); store(3, a3, sums.3)
    }
}

extension F32Gemm {
    /// out[m][n] = Σ_k a[m][k] · b[k][n] (+ bias[n]): the non-transposed
    /// product, for factors stored [in, out] (the FiPS basis U in x·U and the
    /// projection V in z·V). Broadcast form: each a[m][k] scales row k of b,
    /// accumulated over SIMD8 columns, so it streams b row by row.
    public static func multiply(_ a: MatrixRef<Float>, _ b: MatrixRef<Float>, bias: UnsafePointer<Float>?,
                                into out: MutableMatrixRef<Float>) {
        precondition(a.cols == b.rows && out.rows == a.rows && out.cols == b.cols, "F32Gemm.multiply shape mismatch")
        let M = a.rows, K = a.cols, N = b.cols
        for m in 0..<M {
            let o = out.row(m)
            if let bias = bias { o.update(from: bias, count: N) } else { o.update(repeating: 0, count: N) }
            let ar = a.row(m)
            var k = 0
            // Four rows of b per pass: one load/store of the output per four FMAs.
            while k + 4 <= K {
                let s0 = SIMD8<Float>(repeating: ar[k]), s1 = SIMD8<Float>(repeating: ar[k + 1])
                let s2 = SIMD8<Float>(repeating: ar[k + 2]), s3 = SIMD8<Float>(repeating: ar[k + 3])
                let b0 = b.row(k), b1 = b.row(k + 1), b2 = b.row(k + 2), b3 = b.row(k + 3)
                var n = 0
                while n + 8 <= N {
                    var acc = load8(UnsafePointer(o + n))
                    acc += s0 * load8(b0 + n)
                    acc += s1 * load8(b1 + n)
                    acc += s2 * load8(b2 + n)
                    acc += s3 * load8(b3 + n)
                    UnsafeMutableRawPointer(o + n).storeBytes(of: acc, as: SIMD8<Float>.self)
                    n += 8
                }
                while n < N {
                    o[n] += ar[k] * b0[n] + ar[k + 1] * b1[n] + ar[k + 2] * b2[n] + ar[k + 3] * b3[n]
                    n += 1
                }
                k += 4
            }
            while k < K {
                let s = ar[k], br = b.row(k)
                for n in 0..<N { o[n] += s * br[n] }
                k += 1
            }
        }
    }
}
