/// LayerNorm over the last dimension: y = (x − μ)·ρ·w + b with ρ = 1/√(σ² + ε).
/// The forward keeps μ and ρ per row; the backward recomputes x̂ from x.
enum LayerNormOp {
    static func forward(_ x: UnsafePointer<Float>, rows: Int, dim d: Int, w: UnsafePointer<Float>, b: UnsafePointer<Float>,
                        eps: Float, into y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                        rstd: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let xr = x + r * d, yr = y + r * d
            var s: Float = 0
            for k in 0..<d { s += xr[k] }
            let mu = s / Float(d)
            var v: Float = 0
            for k in 0..<d { let t = xr[k] - mu; v += t * t }
            let rs = 1 / (v / Float(d) + eps).squareRoot()
            mean[r] = mu; rstd[r] = rs
            for k in 0..<d { yr[k] = (xr[k] - mu) * rs * w[k] + b[k] }
        }
    }

    /// dx (+= when `accumulate`), dw += Σ dy·x̂, db += Σ dy.
    /// dx = ρ·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) with dx̂ = dy·w.
    static func backward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int, dim d: Int, w: UnsafePointer<Float>,
                         mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, dw: UnsafeMutablePointer<Float>?,
                         db: UnsafeMutablePointer<Float>?, dx: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let inv = 1 / Float(d)
        for r in 0..<rows {
            let xr = x + r * d, dyr = dy + r * d, dxr = dx + r * d
            let mu = mean[r], rs = rstd[r]
            var sumG: Float = 0, sumGX: Float = 0
            for k in 0..<d {
                let xh = (xr[k] - mu) * rs
                let g = dyr[k] * w[k]
                sumG += g; sumGX += g * xh
                if let dw = dw { dw[k] += dyr[k] * xh }
                if let db = db { db[k] += dyr[k] }
            }
            let mg = sumG * inv, mgx = sumGX * inv
            for k in 0..<d {
                let xh = (xr[k] - mu) * rs
                let v = rs * (dyr[k] * w[k] - mg - xh * mgx)
                dxr[k] = accumulate ? dxr[k] + v : v
            }
        }
    }
}
