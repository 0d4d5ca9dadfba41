import COpenBLAS
import Dispatch
import Foundation
import FipsHostModel

/// Cholesky factors of calibration covariances, for activation-aware initialisation.
///
/// All are lower triangular L with `C + λI = L·Lᵀ`, row-major, where
/// `C = XᵀX / N` is the uncentred second moment (the error a linear layer makes on
/// inputs X is ‖X·ΔW‖ = ‖Lᵀ·ΔW‖, so Lᵀ is the whitening transform, with no mean).
public struct Whitening {
    /// [d, d]: from the fc1 inputs (LN2 outputs) of the factorised block(s).
    public var input: [Double]
    /// One [m, m] per block: from that block's fc2 inputs (GELU outputs).
    public var hidden: [[Double]]
    /// The second moments themselves (per block, [d, d] and [m, m]) for the alternating
    /// refinement of a shared basis; empty = no refinement.
    public var inputMoments: [[Double]] = []
    public var hiddenMoments: [[Double]] = []
    public init(input: [Double], hidden: [[Double]]) { self.input = input; self.hidden = hidden }
}

/// Factors of one SVD: `W ≈ U·V` with U [d, r], V [r, cols], singular values folded into V.
public struct LowRankFactors {
    public var d: Int
    public var rank: Int
    public var cols: Int
    public var u: [Float]
    public var v: [Float]
    /// All singular values of the (whitened) matrix, descending.
    public var singularValues: [Double]
}

/// The concatenated SVD of FiPS and the per-layer SVD of the baseline.
public enum FipsFactorization {
    /// `W_cat = [fc1ᵀ_b0 | fc2_b0 | fc1ᵀ_b1 | fc2_b1 | …]` ∈ R^{d × 2·n·m}, row-major.
    /// fc1 is stored [m, d] ([out, in]) so fc1ᵀ is [d, m]; fc2 is stored [d, m].
    public static func concatenate(fc1: [HostTensor], fc2: [HostTensor]) -> HostTensor {
        let d = fc1[0].shape[1], m = fc1[0].shape[0], n = fc1.count
        let cols = 2 * n * m
        var w = [Float](repeating: 0, count: d * cols)
        for b in 0..<n {
            let c1 = 2 * b * m, c2 = c1 + m
            fc1[b].data.withUnsafeBufferPointer { f1 in
                fc2[b].data.withUnsafeBufferPointer { f2 in
                    for i in 0..<d {
                        for j in 0..<m { w[i * cols + c1 + j] = f1[j * d + i] }
                        for j in 0..<m { w[i * cols + c2 + j] = f2[i * m + j] }
                    }
                }
            }
        }
        return HostTensor(shape: [d, cols], data: w)
    }

    /// FiPS factors of one group: shared U [d, r], and per block V1 [r, m], V2 [r, m].
    ///
    /// Plain: SVD of W_cat. Activation-aware (Basis Sharing style): SVD of
    /// `W̃ = Lᵀ·[fc1ᵀ_b | fc2_b·L2_b]_b` where L is from the pooled fc1-input covariance and
    /// L2_b from block b's fc2-input covariance, then `U = L⁻ᵀ·Ũ`, `V1_b = ΣṼᵀ₁_b`,
    /// `V2_b = ΣṼᵀ₂_b·L2_b⁻¹`. Why fc2 is treated so: its d axis is the *output* side, so
    /// the activation-correct whitening of fc2 is on the right (`fc2·L2`, since y = h·fc2ᵀ
    /// errs by ‖H·ΔW2ᵀ‖ = ‖ΔW2·L2‖). The left factor Lᵀ must be the same for every column
    /// because U is shared, so it weights fc2's output axis by the LN2 covariance too; that
    /// part is a heuristic (it does no harm to the reconstruction that follows).
    public static func fipsGroup(fc1: [HostTensor], fc2: [HostTensor], rank r: Int,
                                 whitening: Whitening?) throws -> (u: [Float], v1: [[Float]], v2: [[Float]], singularValues: [Double]) {
        let d = fc1[0].shape[1], m = fc1[0].shape[0], n = fc1.count
        let cat = concatenate(fc1: fc1, fc2: fc2)
        var right = [(col: Int, width: Int, chol: [Double])]()
        if let w = whitening {
            for b in 0..<n { right.append(((2 * b + 1) * m, m, w.hidden[b])) }
        }
        let f = try factor(cat.data.map(Double.init), rows: d, cols: 2 * n * m, rank: r,
                           left: whitening?.input, right: right)
        var v1 = [[Float]](), v2 = [[Float]]()
        let cols = 2 * n * m
        // With whitening, the fc2 slices come out as ΣṼ₂·L2⁻¹, a projection of fc2 onto U in
        // the Lᵀ (input-covariance) metric on fc2's *output* axis. Given U, the error of fc2 on
        // the calibration data, ‖(W2 − U·V2)·L2‖, is smallest for the plain projection
        // V2 = (UᵀU)⁻¹Uᵀ·W2, whatever L2 is, so refit them (U itself is kept).
        var u = f.u
        var refit: [[Float]]? = nil
        if let w = whitening, r <= d {
            if !w.inputMoments.isEmpty {
                u = try alternatingRefinement(u: f.u, d: d, r: r, m: m, fc1: fc1, fc2: fc2, whitening: w, iterations: alsIterations)
            }
            refit = try projectOntoBasis(u, d: d, r: r, fc2.map { $0.data }, m: m)
            if !w.inputMoments.isEmpty {
                let v1s = try weightedProjection(u, d: d, r: r, m: m, fc1: fc1, moments: w.inputMoments)
                for b in 0..<n { v1.append(v1s[b]); v2.append(refit![b]) }
                return (u, v1, v2, f.singularValues)
            }
        }
        for b in 0..<n {
            var a = [Float](repeating: 0, count: r * m), c = [Float](repeating: 0, count: r * m)
            for k in 0..<r {
                for j in 0..<m {
                    a[k * m + j] = f.v[k * cols + 2 * b * m + j]
                    c[k * m + j] = f.v[k * cols + (2 * b + 1) * m + j]
                }
            }
            v1.append(a); v2.append(refit?[b] ?? c)
        }
        return (u, v1, v2, f.singularValues)
    }

    /// Alternating refinements of the shared basis (0 = the joint whitened SVD alone).
    public static var alsIterations = 8

    /// Refines a shared basis U on the activation-weighted linear errors of all layers,
    ///   E(U, V) = Σ_b ‖Lᵀ_b(W1ᵀ_b − U·V1_b)‖² + ‖(W2_b − U·V2_b)·L2_b‖²
    /// (C_b = L_b·Lᵀ_b from block b's fc1 inputs, C2_b from its fc2 inputs): exactly what the
    /// per-layer SVD-LLM minimises for each layer alone, which a joint SVD cannot do for a
    /// basis on the input side of fc1 and the output side of fc2 at once. Alternates the
    /// closed-form V's given U with U given the V's, which solves the SPD Sylvester-type
    /// system Σ_b C_b·U·A_b + U·B = R (A_b = V1_b·V1_bᵀ, B = Σ_b V2_b·C2_b·V2_bᵀ) by
    /// conjugate gradients. Each step cannot increase E.
    static func alternatingRefinement(u u0: [Float], d: Int, r: Int, m: Int, fc1: [HostTensor], fc2: [HostTensor],
                                      whitening w: Whitening, iterations: Int) throws -> [Float] {
        let n = fc1.count
        var u = u0.map(Double.init)
        let w1t: [[Double]] = fc1.map { t in
            var o = [Double](repeating: 0, count: d * m)
            for j in 0..<m { for i in 0..<d { o[i * m + j] = Double(t.data[j * d + i]) } }
            return o
        }
        let w2: [[Double]] = fc2.map { $0.data.map(Double.init) }
        func gemm(_ ta: Bool, _ tb: Bool, _ M: Int, _ N: Int, _ K: Int, _ a: [Double], _ b: [Double], beta: Double = 0,
                  _ c: inout [Double]) {
            cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, Int32(M), Int32(N), Int32(K),
                        1, a, Int32(ta ? M : K), b, Int32(tb ? K : N), beta, &c, Int32(N))
        }
        for _ in 0..<iterations {
            // V's given U
            let uf = u.map(Float.init)
            let v1 = try weightedProjection(uf, d: d, r: r, m: m, fc1: fc1, moments: w.inputMoments).map { $0.map(Double.init) }
            let v2 = try projectOntoBasis(uf, d: d, r: r, w2.map { $0.map(Float.init) }, m: m).map { $0.map(Double.init) }
            // A_b, B, R
            var a = [[Double]](), bmat = [Double](repeating: 0, count: r * r), rhs = [Double](repeating: 0, count: d * r)
            for b in 0..<n {
                var ab = [Double](repeating: 0, count: r * r)
                gemm(false, true, r, r, m, v1[b], v1[b], &ab); a.append(ab)
                var vc = [Double](repeating: 0, count: r * m)          // V2·C2
                gemm(false, false, r, m, m, v2[b], w.hiddenMoments[b], &vc)
                gemm(false, true, r, r, m, vc, v2[b], beta: 1, &bmat)  // += V2·C2·V2ᵀ
                gemm(false, true, d, r, m, w2[b], vc, beta: 1, &rhs)   // += W2·C2·V2ᵀ
                var t = [Double](repeating: 0, count: d * r)
                gemm(false, true, d, r, m, w1t[b], v1[b], &t)          // W1ᵀ·V1ᵀ
                gemm(false, false, d, r, d, w.inputMoments[b], t, beta: 1, &rhs)  // += C·W1ᵀ·V1ᵀ
            }
            func apply(_ x: [Double]) -> [Double] {
                var y = [Double](repeating: 0, count: d * r)
                gemm(false, false, d, r, r, x, bmat, &y)
                var t = [Double](repeating: 0, count: d * r)
                for b in 0..<n {
                    gemm(false, false, d, r, r, x, a[b], &t)
                    gemm(false, false, d, r, d, w.inputMoments[b], t, beta: 1, &y)
                }
                return y
            }
            // CG from the current U
            let ax = apply(u)
            var res = (0..<(d * r)).map { rhs[$0] - ax[$0] }
            var p = res
            var rr = res.reduce(0) { $0 + $1 * $1 }
            let r0 = max(rhs.reduce(0) { $0 + $1 * $1 }, 1e-300)
            // warm-started from the previous U, a loose tolerance is enough for an alternating step
            for _ in 0..<40 where rr > 1e-10 * r0 {
                let ap = apply(p)
                let pap = zip(p, ap).reduce(0) { $0 + $1.0 * $1.1 }
                guard pap > 0 else { break }
                let alpha = rr / pap
                for k in 0..<(d * r) { u[k] += alpha * p[k]; res[k] -= alpha * ap[k] }
                let rrNew = res.reduce(0) { $0 + $1 * $1 }
                let beta = rrNew / rr
                rr = rrNew
                for k in 0..<(d * r) { p[k] = res[k] + beta * p[k] }
            }
        }
        return u.map(Float.init)
    }

    /// fc1 coefficients given U, weighted by each block's input moments:
    /// V1_b = (Uᵀ·C_b·U)⁻¹·Uᵀ·C_b·W1ᵀ_b.
    static func weightedProjection(_ u: [Float], d: Int, r: Int, m: Int, fc1: [HostTensor], moments: [[Double]]) throws -> [[Float]] {
        let ud = u.map(Double.init)
        var out = [[Float]]()
        for (b, t) in fc1.enumerated() {
            var cu = [Double](repeating: 0, count: d * r)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(d), Int32(r), Int32(d), 1, moments[b], Int32(d), ud, Int32(r), 0, &cu, Int32(r))
            var g = [Double](repeating: 0, count: r * r)
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(r), Int32(r), Int32(d), 1, ud, Int32(r), cu, Int32(r), 0, &g, Int32(r))
            var meanDiag = 0.0
            for i in 0..<r { meanDiag += g[i * r + i] }
            for i in 0..<r { g[i * r + i] += 1e-10 * meanDiag / Double(r) }
            // rhs = (C·U)ᵀ·W1ᵀ = (C·U)ᵀ · fc1ᵀ  → [r, m]; fc1 is [m, d], so use fc1 transposed
            let f1 = t.data.map(Double.init)
            var rhs = [Double](repeating: 0, count: r * m)
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, Int32(r), Int32(m), Int32(d), 1, cu, Int32(r), f1, Int32(d), 0, &rhs, Int32(m))
            var info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "L")), Int32(r), &g, Int32(r))
            guard info == 0 else { throw CompressionError.numerical("the shared basis is rank-deficient on the calibration data") }
            info = LAPACKE_dpotrs(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "L")), Int32(r), Int32(m), g, Int32(r), &rhs, Int32(m))
            guard info == 0 else { throw CompressionError.numerical("weighted least-squares refit failed (LAPACK info \(info))") }
            out.append(rhs.map(Float.init))
        }
        return out
    }

    /// Least-squares coefficients of each [d, m] matrix in basis U [d, r]: (UᵀU)⁻¹Uᵀ·W, in double.
    static func projectOntoBasis(_ u: [Float], d: Int, r: Int, _ ws: [[Float]], m: Int) throws -> [[Float]] {
        let ud = u.map(Double.init)
        var g = [Double](repeating: 0, count: r * r)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(r), Int32(r), Int32(d), 1, ud, Int32(r), ud, Int32(r), 0, &g, Int32(r))
        var info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "L")), Int32(r), &g, Int32(r))
        guard info == 0 else { throw CompressionError.numerical("the shared basis is rank-deficient (UᵀU not positive definite)") }
        var out = [[Float]]()
        for w in ws {
            var rhs = [Double](repeating: 0, count: r * m)
            let wd = w.map(Double.init)
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(r), Int32(m), Int32(d), 1, ud, Int32(r), wd, Int32(m), 0, &rhs, Int32(m))
            info = LAPACKE_dpotrs(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "L")), Int32(r), Int32(m), g, Int32(r), &rhs, Int32(m))
            guard info == 0 else { throw CompressionError.numerical("least-squares refit failed (LAPACK info \(info))") }
            out.append(rhs.map(Float.init))
        }
        return out
    }

    /// Per-layer truncated SVD: `M ≈ U[d, k]·V[k, cols]`, optionally whitened on the left by
    /// Lᵀ (fc1ᵀ, whose d axis is the input) and/or on the right by L2 (fc2, whose m axis is
    /// the input) — for a single layer both are exactly the SVD-LLM whitening.
    public static func layer(_ w: [Float], rows d: Int, cols: Int, rank k: Int,
                             left: [Double]?, right: [Double]?) throws -> LowRankFactors {
        try factor(w.map(Double.init), rows: d, cols: cols, rank: k, left: left,
                   right: right.map { [(0, cols, $0)] } ?? [])
    }

    /// The core: optional whitening, SVD in double (LAPACKE_dgesdd), S folded into V,
    /// un-whitening, and the authors' padding when r exceeds the available rank:
    /// U gets zero columns, the extra V rows are the top rows divided by 32 (so the
    /// product is unchanged at initialisation, and training can use the new directions).
    static func factor(_ w0: [Double], rows d: Int, cols: Int, rank r: Int, left: [Double]?,
                       right: [(col: Int, width: Int, chol: [Double])]) throws -> LowRankFactors {
        var w = w0
        // right whitening of column segments: W[:, seg] ← W[:, seg]·L2
        for seg in right {
            precondition(seg.chol.count == seg.width * seg.width)
            w.withUnsafeMutableBufferPointer { p in
                seg.chol.withUnsafeBufferPointer { l in
                    cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit,
                                Int32(d), Int32(seg.width), 1, l.baseAddress, Int32(seg.width),
                                p.baseAddress! + seg.col, Int32(cols))
                }
            }
        }
        // left whitening: W ← Lᵀ·W
        if let l = left {
            precondition(l.count == d * d)
            w.withUnsafeMutableBufferPointer { p in
                cblas_dtrmm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit,
                            Int32(d), Int32(cols), 1, l, Int32(d), p.baseAddress, Int32(cols))
            }
        }
        let kmax = min(d, cols)
        var s = [Double](repeating: 0, count: kmax)
        var u = [Double](repeating: 0, count: d * kmax)
        var vt = [Double](repeating: 0, count: kmax * cols)
        let info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "S")), Int32(d), Int32(cols), &w, Int32(cols),
                                  &s, &u, Int32(kmax), &vt, Int32(cols))
        guard info == 0 else { throw CompressionError.numerical("SVD of a \(d)×\(cols) matrix failed (LAPACK info \(info))") }
        let rr = min(r, kmax)
        // U0 [d, rr], V0 [rr, cols] = diag(s)·Vᵀ
        var u0 = [Double](repeating: 0, count: d * rr)
        for i in 0..<d { for k in 0..<rr { u0[i * rr + k] = u[i * kmax + k] } }
        var v0 = [Double](repeating: 0, count: rr * cols)
        for k in 0..<rr { for j in 0..<cols { v0[k * cols + j] = s[k] * vt[k * cols + j] } }
        // un-whiten: U ← L⁻ᵀ·U0 ; V[:, seg] ← V0[:, seg]·L2⁻¹
        if let l = left {
            cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit,
                        Int32(d), Int32(rr), 1, l, Int32(d), &u0, Int32(rr))
        }
        for seg in right {
            v0.withUnsafeMutableBufferPointer { p in
                seg.chol.withUnsafeBufferPointer { l in
                    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit,
                                Int32(rr), Int32(seg.width), 1, l.baseAddress, Int32(seg.width),
                                p.baseAddress! + seg.col, Int32(cols))
                }
            }
        }
        var uf = [Float](repeating: 0, count: d * r)
        var vf = [Float](repeating: 0, count: r * cols)
        for i in 0..<d { for k in 0..<rr { uf[i * r + k] = Float(u0[i * rr + k]) } }
        for k in 0..<r {
            let src = k < rr ? k : (k - rr) % rr
            let scale = k < rr ? 1.0 : 1.0 / 32.0
            for j in 0..<cols { vf[k * cols + j] = Float(v0[src * cols + j] * scale) }
        }
        return LowRankFactors(d: d, rank: r, cols: cols, u: uf, v: vf, singularValues: s)
    }

    // MARK: covariances

    /// `XᵀX / N` (uncentred) of row-major X [N, k], accumulated in float by SSYRK over row
    /// chunks split across `threads` (each thread its own accumulator, summed in a fixed
    /// order: deterministic for a thread count), returned in double.
    static func secondMoment(rows n: Int, cols k: Int, threads: Int,
                             fill: (_ lo: Int, _ hi: Int, _ out: UnsafeMutablePointer<Float>) -> Void) -> [Double] {
        let chunk = 2048
        let t = max(1, min(threads, (n + chunk - 1) / chunk))
        let per = (n + t - 1) / t
        var partial = [[Float]](repeating: [], count: t)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: t) { ti in
            var acc = [Float](repeating: 0, count: k * k)
            let buf = UnsafeMutablePointer<Float>.allocate(capacity: chunk * k)
            defer { buf.deallocate() }
            var lo = ti * per
            let end = min(n, lo + per)
            while lo < end {
                let hi = min(end, lo + chunk)
                fill(lo, hi, buf)
                cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, Int32(k), Int32(hi - lo), 1, buf, Int32(k),
                            1, &acc, Int32(k))
                lo = hi
            }
            lock.lock(); partial[ti] = acc; lock.unlock()
        }
        var c = [Double](repeating: 0, count: k * k)
        for p in partial where !p.isEmpty { for i in 0..<(k * k) { c[i] += Double(p[i]) } }
        let inv = 1 / Double(max(1, n))
        for i in 0..<k { for j in 0...i { let x = c[i * k + j] * inv; c[i * k + j] = x; c[j * k + i] = x } }
        return c
    }

    /// Lower Cholesky factor of `C + λI` with λ = ridge·mean(diag C); the ridge grows ×10
    /// until the factorisation succeeds (a rank-deficient covariance, e.g. dead GELU units).
    static func cholesky(_ c: [Double], size k: Int, ridge: Double = 1e-4) throws -> [Double] {
        var meanDiag = 0.0
        for i in 0..<k { meanDiag += c[i * k + i] }
        meanDiag = max(meanDiag / Double(k), 1e-30)
        var lambda = ridge * meanDiag
        for _ in 0..<8 {
            var a = c
            for i in 0..<k { a[i * k + i] += lambda }
            let info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "L")), Int32(k), &a, Int32(k))
            if info == 0 {
                for i in 0..<k { for j in (i + 1)..<max(i + 1, k) { a[i * k + j] = 0 } }
                return a
            }
            lambda *= 10
        }
        throw CompressionError.numerical("Cholesky of a \(k)×\(k) calibration covariance failed even with a ridge")
    }
}
