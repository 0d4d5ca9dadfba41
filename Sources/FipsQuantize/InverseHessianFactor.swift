import COpenBLAS

/// The factor GPTQ walks: the upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU),
/// with H dampened. Row i of U holds, up to the factor 1 / U[i][i], how an
/// error in input i is best compensated on inputs i+1…: exactly the rows of
/// the successive inverse Hessians GPTQ's paper derives, in one LAPACK pass.
enum InverseHessianFactor {
    struct Result {
        /// Row-major [n, n]; only the upper triangle (j ≥ i) is meaningful.
        var upper: [Double]
        /// The dampening added to the diagonal in the end.
        var damp: Double
    }

    /// `h` is H (symmetric, row-major [n, n]) with dead inputs already given
    /// H_ii = 1. Adds `relativeDamp` × mean(diag H) to the diagonal; if H is
    /// still not positive definite (rank-deficient calibration data, rounding)
    /// retries with ten times the dampening, up to four times. nil when even
    /// that fails.
    static func compute(_ h: [Double], n: Int, relativeDamp: Double) -> Result? {
        var meanDiag = 0.0
        for i in 0..<n { meanDiag += h[i * n + i] }
        meanDiag /= Double(max(1, n))
        var damp = relativeDamp * meanDiag
        if damp <= 0 { damp = 1e-8 }
        let U = Int8(UInt8(ascii: "U"))
        for _ in 0..<5 {
            var a = h
            for i in 0..<n { a[i * n + i] += damp }
            // H = UᵀU, then H⁻¹ from U (upper triangle), then H⁻¹ = U'ᵀU'.
            if LAPACKE_dpotrf(LAPACK_ROW_MAJOR, U, Int32(n), &a, Int32(n)) == 0,
               LAPACKE_dpotri(LAPACK_ROW_MAJOR, U, Int32(n), &a, Int32(n)) == 0,
               LAPACKE_dpotrf(LAPACK_ROW_MAJOR, U, Int32(n), &a, Int32(n)) == 0 {
                for i in 0..<n { for j in 0..<i { a[i * n + j] = 0 } }
                return Result(upper: a, damp: damp)
            }
            damp *= 10
        }
        return nil
    }
}
