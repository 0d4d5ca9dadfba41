import FipsHostModel

/// Multi-head self-attention of one image on fused qkv [T, 3d] (q | k | v,
/// head h at columns h·hd of each), with the probabilities kept for the backward.
enum AttentionOp {
    /// probs [H, T, T] = softmax(q·kᵀ·scale) per head; out [T, d] = probs·v.
    static func forward(qkv: UnsafePointer<Float>, tokens T: Int, dim d: Int, heads H: Int,
                        probs: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let hd = d / H, scale = 1 / Float(hd).squareRoot()
        for h in 0..<H {
            let p = probs + h * T * T
            LinearOp.gemm(false, true, m: T, n: T, k: hd, qkv + h * hd, lda: 3 * d, qkv + d + h * hd, ldb: 3 * d,
                          p, ldc: T, accumulate: false)
            for r in 0..<T { softmaxRow(p + r * T, count: T, scale: scale) }
            LinearOp.gemm(false, false, m: T, n: hd, k: T, p, lda: T, qkv + 2 * d + h * hd, ldb: 3 * d,
                          out + h * hd, ldc: d, accumulate: false)
        }
    }

    /// dqkv [T, 3d] from dout [T, d]; `scratch` holds T·T floats.
    /// dP = dO·vᵀ, dv = Pᵀ·dO, dS = P ⊙ (dP − rowsum(dP ⊙ P))·scale, dq = dS·k, dk = dSᵀ·q.
    static func backward(_ dout: UnsafePointer<Float>, qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                         tokens T: Int, dim d: Int, heads H: Int, scratch dp: UnsafeMutablePointer<Float>,
                         into dqkv: UnsafeMutablePointer<Float>) {
        let hd = d / H, scale = 1 / Float(hd).squareRoot()
        for h in 0..<H {
            let p = probs + h * T * T
            LinearOp.gemm(false, true, m: T, n: T, k: hd, dout + h * hd, lda: d, qkv + 2 * d + h * hd, ldb: 3 * d,
                          dp, ldc: T, accumulate: false)
            LinearOp.gemm(true, false, m: T, n: hd, k: T, p, lda: T, dout + h * hd, ldb: d,
                          dqkv + 2 * d + h * hd, ldc: 3 * d, accumulate: false)
            for r in 0..<T {
                let pr = p + r * T, dr = dp + r * T
                var s: Float = 0
                for j in 0..<T { s += pr[j] * dr[j] }
                for j in 0..<T { dr[j] = pr[j] * (dr[j] - s) * scale }
            }
            LinearOp.gemm(false, false, m: T, n: hd, k: T, dp, lda: T, qkv + d + h * hd, ldb: 3 * d,
                          dqkv + h * hd, ldc: 3 * d, accumulate: false)
            LinearOp.gemm(true, false, m: T, n: hd, k: T, dp, lda: T, qkv + h * hd, ldb: 3 * d,
                          dqkv + d + h * hd, ldc: 3 * d, accumulate: false)
        }
    }

    /// x ← softmax(x·scale), stable (max subtracted); exp from GELU.expNeg (arguments ≤ 0, vectorises).
    static func softmaxRow(_ x: UnsafeMutablePointer<Float>, count n: Int, scale: Float) {
        var mx = -Float.infinity
        for j in 0..<n { mx = max(mx, x[j]) }
        var s: Float = 0
        for j in 0..<n { let e = GELU.expNeg((x[j] - mx) * scale); x[j] = e; s += e }
        let inv = 1 / s
        for j in 0..<n { x[j] *= inv }
    }
}
