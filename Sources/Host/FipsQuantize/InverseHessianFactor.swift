import COpenBLAS

/// The factor GPTQ walks: the upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU),
/// with H dampened. Row i of U holds, up to the factor 1 / U[i][i], how an
/// error in input i is best compensated on inputs i+1…: exactly the rows of
/// the successive inverse Hessians GPTQ's paper derives, in one LAPACK pass.
///
/// Computed without forming H⁻¹: with J the index reversal, JHJ = LLᵀ gives
/// H⁻¹ = (J L⁻¹ J)ᵀ (J L⁻¹ J), and J L⁻¹ J is upper triangular with a
/// positive diagonal, so it is U. One Cholesky and one triangular inverse
/// (⅔ n³ flops) instead of the reference's Cholesky, inverse and second
/// Cholesky (5⁄3 n³). Reversing both indices of a row-major matrix is
/// reversing its storage; LAPACK is called column-major on the row-major
/// data (the transpose, so 'U' there is the lower triangle here) because
/// LAPACKE's row-major entry points copy the matrix twice.
enum InverseHessianFactor {
    struct Result {
        /// Row-major [n, n]; the strict lower triangle is zero.
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
        if !(damp > 0) { damp = 1e-8 }
        let colUpper = Int8(UInt8(ascii: "U")), nonUnit = Int8(UInt8(ascii: "N"))
        for _ in 0..<5 {
            var a = [Double](h.reversed())  // JHJ
            for i in 0..<n { a[i * n + i] += damp }
            // Row-major lower L (column-major upper): JHJ = LLᵀ, then L⁻¹ in place.
            if LAPACKE_dpotrf(LAPACK_COL_MAJOR, colUpper, Int32(n), &a, Int32(n)) == 0,
               LAPACKE_dtrtri(LAPACK_COL_MAJOR, colUpper, nonUnit, Int32(n), &a, Int32(n)) == 0 {
                for i in 0..<n { for j in (i + 1)..<n { a[i * n + j] = 0 } }  // junk above L
                a.reverse()  // J L⁻¹ J
                return Result(upper: a, damp: damp)
            }
            damp *= 10
        }
        return nil
    }
}
