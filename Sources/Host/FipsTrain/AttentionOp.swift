import FipsHostModel

/// Multi-head self-attention of one image on fused qkv [T, 3d] (q | k | v,
/// head h at columns h·hd of each), with the probabilities kept for the backward.
enum AttentionOp {
    /// probs [H, T, T] = softmax(q·kᵀ·scale) per head; out [T, d] = probs·v.
    /// With `integer` (the runtime's int8 attention) q, k and v are first
    /// rounded in place (q and k per token, v per channel) and the product
    /// with v takes the probabilities rounded per row (P̂, into `integer.scratch`,
    /// [T, max(T, hd)]); `probs` keeps the float P the softmax backward needs.
    static func forward(qkv: UnsafeMutablePointer<Float>, tokens T: Int, dim d: Int, heads H: Int,
                        probs: UnsafeMutablePointer<Float>, integer: IntegerAttention? = nil,
                        into out: UnsafeMutablePointer<Float>) {
        let hd = d / H, scale = 1 / Float(hd).squareRoot()
        for h in 0..<H {
            let p = probs + h * T * T
            if let i = integer { i.roundInputs(qkv, head: h, tokens: T, dim: d, heads: H) }
            LinearOp.gemm(false, true, m: T, n: T, k: hd, qkv + h * hd, lda: 3 * d, qkv + d + h * hd, ldb: 3 * d,
                          p, ldc: T, accumulate: false)
            for r in 0..<T { softmaxRow(p + r * T, count: T, scale: scale) }
            let pv = integer.map { UnsafePointer($0.roundedProbabilities(p, tokens: T)) } ?? UnsafePointer(p)
            LinearOp.gemm(false, false, m: T, n: hd, k: T, pv, lda: T, qkv + 2 * d + h * hd, ldb: 3 * d,
                          out + h * hd, ldc: d, accumulate: false)
        }
    }

    /// dqkv [T, 3d] from dout [T, d]; `scratch` holds T·T floats.
    /// dP = dO·vᵀ, dv = Pᵀ·dO, dS = P ⊙ (dP − rowsum(dP ⊙ P))·scale, dq = dS·k, dk = dSᵀ·q.
    /// With `integer`, qkv holds the rounded q̂, k̂, v̂ (as the forward left it), dv = P̂ᵀ·dO,
    /// and the roundings pass the gradient straight through.
    static func backward(_ dout: UnsafePointer<Float>, qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                         tokens T: Int, dim d: Int, heads H: Int, scratch dp: UnsafeMutablePointer<Float>,
                         integer: IntegerAttention? = nil, into dqkv: UnsafeMutablePointer<Float>) {
        let hd = d / H, scale = 1 / Float(hd).squareRoot()
        for h in 0..<H {
            let p = probs + h * T * T
            LinearOp.gemm(false, true, m: T, n: T, k: hd, dout + h * hd, lda: d, qkv + 2 * d + h * hd, ldb: 3 * d,
                          dp, ldc: T, accumulate: false)
            let pv = integer.map { UnsafePointer($0.roundedProbabilities(p, tokens: T)) } ?? p
            LinearOp.gemm(true, false, m: T, n: hd, k: T, pv, lda: T, dout + h * hd, ldb: d,
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

/// The int8 attention of the integer runtime (IntegerAttention.swift in
/// FipsViT), as roundings of the float attention's operands.
struct IntegerAttention {
    let rounder: ActivationRounder
    /// [T, max(T, hd)] floats: V transposed per head, then P̂.
    let scratch: UnsafeMutablePointer<Float>

    /// Head h's q and k rows per token, and v per channel (over the tokens), in place.
    func roundInputs(_ qkv: UnsafeMutablePointer<Float>, head h: Int, tokens T: Int, dim d: Int, heads H: Int) {
        let hd = d / H
        rounder.round(.perToken, qkv + h * hd, rows: T, cols: hd, ld: 3 * d)
        rounder.round(.perToken, qkv + d + h * hd, rows: T, cols: hd, ld: 3 * d)
        let v = qkv + 2 * d + h * hd
        for c in 0..<hd { for t in 0..<T { scratch[c * T + t] = v[t * 3 * d + c] } }
        rounder.round(.perToken, scratch, rows: hd, cols: T, ld: T)
        for c in 0..<hd { for t in 0..<T { v[t * 3 * d + c] = scratch[c * T + t] } }
    }

    /// P̂: the probabilities [T, T] rounded per row, in `scratch`.
    func roundedProbabilities(_ p: UnsafePointer<Float>, tokens T: Int) -> UnsafeMutablePointer<Float> {
        scratch.update(from: p, count: T * T)
        rounder.round(.perToken, scratch, rows: T, cols: T, ld: T)
        return scratch
    }
}
