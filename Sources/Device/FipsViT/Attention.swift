import CFipsKernels
import FipsArtifact
import FipsKernels

/// Multi-head self-attention on the arena's `qkv` [rows, 3d] into `attnOut`
/// [rows, d]: float products through the backend, or both products in int8
/// (IntegerAttention.swift) when `integerAttention` is on.
extension ViTExecutor {
    func attention(batch: Int) {
        let c = config, d = c.dim, T = c.tokenCount, hd = c.headDim
        let scale = 1 / Float(hd).squareRoot()
        if integerAttention { integerAttention(batch: batch, scale: scale); return }
        for b in 0..<batch {
            let base = qkv + b * T * 3 * d
            backend.parallelFor(c.heads) { head in
                let scores = self.scores + head * T * T
                let vT = self.vT + head * hd * T
                let q = MatrixRef(UnsafePointer(base + head * hd), rows: T, cols: hd, stride: 3 * d)
                let k = MatrixRef(UnsafePointer(base + d + head * hd), rows: T, cols: hd, stride: 3 * d)
                let s = MutableMatrixRef(scores, rows: T, cols: T)
                backend.multiplyTransposed(q, k, bias: nil, into: s, parallel: false)
                self.softmaxRows(s, scale: scale)
                self.transposeV(base + 2 * d + head * hd, into: vT)
                backend.multiplyTransposed(MatrixRef(UnsafePointer(scores), rows: T, cols: T),
                                           MatrixRef(UnsafePointer(vT), rows: hd, cols: T), bias: nil,
                                           into: MutableMatrixRef(attnOut + b * T * d + head * hd, rows: T, cols: hd, stride: d),
                                           parallel: false)
            }
        }
    }

    /// One head's V (rows of stride 3d in `qkv`) as Vᵀ [headDim, T].
    func transposeV(_ v: UnsafeMutablePointer<Float>, into vT: UnsafeMutablePointer<Float>) {
        let d = config.dim, T = config.tokenCount, hd = config.headDim
        fips_transpose_f32(v, 3 * d, Int32(T), Int32(hd), vT, T)
    }

    func softmaxRows(_ m: MutableMatrixRef<Float>, scale: Float) {
        if options.softmax == .integer { IntegerActivations.softmaxRows(m, scale: scale) }
        else { Activations.softmaxRows(m, scale: scale) }
    }
}
