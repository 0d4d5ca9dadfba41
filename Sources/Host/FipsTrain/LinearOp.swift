import COpenBLAS

/// y = x·Wᵀ + b for W stored [out, in] (the model's layout), and its backward.
/// Every product is one single-threaded OpenBLAS sgemm: the trainer runs one
/// image per worker thread, so BLAS's own threads would only contend.
enum LinearOp {
    /// y [rows, out] = x [rows, in] · Wᵀ + b.
    static func forward(_ x: UnsafePointer<Float>, rows: Int, inputs: Int, outputs: Int, w: UnsafePointer<Float>,
                        b: UnsafePointer<Float>?, into y: UnsafeMutablePointer<Float>) {
        if let b = b { for r in 0..<rows { (y + r * outputs).update(from: b, count: outputs) } }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(outputs), Int32(inputs), 1,
                    x, Int32(inputs), w, Int32(inputs), b == nil ? 0 : 1, y, Int32(outputs))
    }

    /// dW += dyᵀ·x, db += Σ dy, and (when asked) dx = dy·W (or += with `accumulate`).
    static func backward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int, inputs: Int, outputs: Int,
                         w: UnsafePointer<Float>, dw: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?,
                         dx: UnsafeMutablePointer<Float>?, accumulate: Bool = false) {
        if let dw = dw {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(outputs), Int32(inputs), Int32(rows), 1,
                        dy, Int32(outputs), x, Int32(inputs), 1, dw, Int32(inputs))
        }
        if let db = db { columnSums(dy, rows: rows, cols: outputs, into: db) }
        if let dx = dx {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(inputs), Int32(outputs), 1,
                        dy, Int32(outputs), w, Int32(inputs), accumulate ? 1 : 0, dx, Int32(inputs))
        }
    }

    /// out[j] += Σ_r a[r, j].
    static func columnSums(_ a: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let row = a + r * cols
            for j in 0..<cols { out[j] += row[j] }
        }
    }

    /// C [m, n] (= or +=) op(A)·op(B), row-major, contiguous.
    @inline(__always)
    static func gemm(_ transA: Bool, _ transB: Bool, m: Int, n: Int, k: Int, _ a: UnsafePointer<Float>, lda: Int,
                     _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), accumulate ? 1 : 0, c, Int32(ldc))
    }
}
