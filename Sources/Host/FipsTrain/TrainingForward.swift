import FipsArtifact

/// The fp32 forward pass of one image on a flat parameter vector, written for
/// training: every intermediate the backward needs is kept in
/// `ImageActivations`. The same arithmetic as the executor's fp32 path
/// (tests compare the two), one image at a time so a worker thread's
/// matrices are [T, ·] with T = 257 rows: large enough for sgemm to run
/// near peak, small enough to keep every block's activations.
///
/// With `grids` (quantisation-aware training) the inputs of packed linear maps
/// are rounded onto the runtime's int8 grid as it rounds them, and attention
/// runs as the runtime's int8 attention; the weights arrive already rounded
/// (`QuantisedParameters`).
struct TrainingForward {
    let layout: ParameterLayout
    var grids: ActivationGrids? = nil

    /// Runs image [C, S, S] (normalised) through the model; features (and logits
    /// when the model has a head) end up in `act`.
    func run(_ image: UnsafePointer<Float>, _ p: UnsafePointer<Float>, _ act: ImageActivations) {
        let c = layout.config, T = c.tokenCount, d = c.dim
        embed(image, p, act, into: act.block(0).x)
        for i in 0..<c.depth {
            let out = i + 1 < c.depth ? act.block(i + 1).x : act.xFinal
            block(i, p, act.block(i), act, into: out)
        }
        LayerNormOp.forward(act.xFinal, rows: T, dim: d, w: p + layout.normW, b: p + layout.normB, eps: c.layerNormEps,
                            into: act.features, mean: act.meanF, rstd: act.rstdF)
        if let head = layout.head {
            pool(act.features, into: act.pooled)
            act.rounder.round(grids?.pooled, act.pooled, rows: 1, cols: c.headInputDim)
            LinearOp.forward(act.pooled, rows: 1, inputs: c.headInputDim, outputs: c.numClasses, w: p + head.w,
                             b: p + head.b, into: act.logits)
        }
    }

    /// x [T, d] = [cls; (dist;) patches·Wᵀ + b] + pos.
    func embed(_ image: UnsafePointer<Float>, _ p: UnsafePointer<Float>, _ act: ImageActivations,
               into x: UnsafeMutablePointer<Float>) {
        let c = layout.config, d = c.dim, P = c.patchSize, G = c.gridSize, S = c.imageSize
        let patchLen = c.channels * P * P
        for gy in 0..<G {
            for gx in 0..<G {
                var dst = act.patches + (gy * G + gx) * patchLen
                for ch in 0..<c.channels {
                    for ky in 0..<P {
                        (dst).update(from: image + (ch * S + gy * P + ky) * S + gx * P, count: P)
                        dst += P
                    }
                }
            }
        }
        LinearOp.forward(act.patches, rows: c.patchCount, inputs: patchLen, outputs: d, w: p + layout.patchW,
                         b: p + layout.patchB, into: x + c.prefixTokenCount * d)
        let cls = p + layout.cls, pos = p + layout.pos
        for k in 0..<d { x[k] = cls[k] + pos[k] }
        if let dist = layout.dist.map({ p + $0 }) {
            for k in 0..<d { x[d + k] = dist[k] + pos[d + k] }
        }
        for k in (c.prefixTokenCount * d)..<(c.tokenCount * d) { x[k] += pos[k] }
    }

    /// One pre-LN block: x2 = x + ls1·proj(attn(LN1 x)); out = x2 + ls2·MLP(LN2 x2).
    func block(_ i: Int, _ p: UnsafePointer<Float>, _ a: ImageActivations.Block, _ act: ImageActivations,
               into out: UnsafeMutablePointer<Float>) {
        let c = layout.config, T = c.tokenCount, d = c.dim, s = layout.blocks[i]
        let gq = grids?.blocks[i], r = act.rounder
        LayerNormOp.forward(a.x, rows: T, dim: d, w: p + s.norm1W, b: p + s.norm1B, eps: c.layerNormEps,
                            into: a.h1, mean: a.mean1, rstd: a.rstd1)
        r.round(gq?.h1, a.h1, rows: T, cols: d)
        LinearOp.forward(a.h1, rows: T, inputs: d, outputs: 3 * d, w: p + s.qkvW, b: p + s.qkvB, into: a.qkv)
        AttentionOp.forward(qkv: a.qkv, tokens: T, dim: d, heads: c.heads, probs: a.probs,
                            integer: grids?.integerAttention == true ? act.integerAttention : nil, into: a.attn)
        r.round(gq?.attn, a.attn, rows: T, cols: d)
        LinearOp.forward(a.attn, rows: T, inputs: d, outputs: d, w: p + s.projW, b: p + s.projB, into: a.proj)
        residual(a.x, a.proj, scale: s.ls1.map { p + $0 }, into: a.x2)
        LayerNormOp.forward(a.x2, rows: T, dim: d, w: p + s.norm2W, b: p + s.norm2B, eps: c.layerNormEps,
                            into: a.h2, mean: a.mean2, rstd: a.rstd2)
        r.round(gq?.h2, a.h2, rows: T, cols: d)
        mlp(s.mlp, p, a, grids: gq, r)
        residual(a.x2, a.mlp, scale: s.ls2.map { p + $0 }, into: out)
    }

    func mlp(_ s: MLPSlots, _ p: UnsafePointer<Float>, _ a: ImageActivations.Block, grids gq: BlockInputGrids?,
             _ r: ActivationRounder) {
        let c = layout.config, T = c.tokenCount, d = c.dim, m = c.mlpDim
        switch s {
        case .dense(let w1, let b1, let w2, let b2):
            LinearOp.forward(a.h2, rows: T, inputs: d, outputs: m, w: p + w1, b: p + b1, into: a.g)
            GELUOp.forward(a.g, count: T * m, tanh: c.geluTanh, into: a.g, derivative: a.dgelu)
            r.round(gq?.g, a.g, rows: T, cols: m)
            LinearOp.forward(a.g, rows: T, inputs: m, outputs: d, w: p + w2, b: p + b2, into: a.mlp)
        case .factorised(let u1, let r1, let v1, let b1, let u2, let r2, let v2, let b2):
            LinearOp.gemm(false, false, m: T, n: r1, k: d, a.h2, lda: d, p + u1, ldb: r1, a.z, ldc: r1, accumulate: false)
            r.round(gq?.z, a.z, rows: T, cols: r1)
            for t in 0..<T { (a.g + t * m).update(from: p + b1, count: m) }
            LinearOp.gemm(false, false, m: T, n: m, k: r1, a.z, lda: r1, p + v1, ldb: m, a.g, ldc: m, accumulate: true)
            GELUOp.forward(a.g, count: T * m, tanh: c.geluTanh, into: a.g, derivative: a.dgelu)
            r.round(gq?.g, a.g, rows: T, cols: m)
            LinearOp.gemm(false, true, m: T, n: r2, k: m, a.g, lda: m, p + v2, ldb: m, a.q, ldc: r2, accumulate: false)
            r.round(gq?.q, a.q, rows: T, cols: r2)
            LinearOp.forward(a.q, rows: T, inputs: r2, outputs: d, w: p + u2, b: p + b2, into: a.mlp)
        }
    }

    /// out = x + scale ⊙ y (per column; scale nil = 1).
    func residual(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, scale: UnsafePointer<Float>?,
                  into out: UnsafeMutablePointer<Float>) {
        let d = layout.config.dim
        for t in 0..<layout.config.tokenCount {
            let xr = x + t * d, yr = y + t * d, o = out + t * d
            if let s = scale { for k in 0..<d { o[k] = xr[k] + s[k] * yr[k] } }
            else { for k in 0..<d { o[k] = xr[k] + yr[k] } }
        }
    }

    /// The head's input: CLS, CLS ‖ mean of the patch tokens, or CLS ‖ distillation token.
    func pool(_ f: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let c = layout.config, d = c.dim, T = c.tokenCount
        out.update(from: f, count: d)
        if c.headPooling == .clsAndDistillation { (out + d).update(from: f + d, count: d) }
        guard c.headPooling == .clsAndPatchMean else { return }
        for k in 0..<d { out[d + k] = 0 }
        for t in 1..<T { for k in 0..<d { out[d + k] += f[t * d + k] } }
        let inv = 1 / Float(T - 1)
        for k in 0..<d { out[d + k] *= inv }
    }
}
