import FipsArtifact

/// The backward of `TrainingForward` for one image: given ∂loss/∂features
/// (and ∂loss/∂logits) in `act`, accumulates (+=) every trained parameter's
/// gradient into `g`, a vector in the same layout as the parameters.
/// The patch embedding and the head are not trained: their weight gradients
/// are not formed (the head's input gradient is).
///
/// Quantisation-aware: the forward left the rounded activations in `act` and
/// the roundings pass gradients straight through, so the only change is
/// attention's product with v, which took the rounded probabilities.
struct TrainingBackward {
    let layout: ParameterLayout
    var integerAttention = false

    func run(_ p: UnsafePointer<Float>, _ act: ImageActivations, into g: UnsafeMutablePointer<Float>, headGradient: Bool) {
        let c = layout.config, T = c.tokenCount, d = c.dim
        if let head = layout.head, headGradient {
            // dpooled = dlogits·W; the pooled CLS (and patch mean) feed back into the features
            LinearOp.backward(act.dlogits, x: act.pooled, rows: 1, inputs: c.headInputDim, outputs: c.numClasses,
                              w: p + head.w, dw: nil, db: nil, dx: act.dpooled)
            for k in 0..<d { act.dfeatures[k] += act.dpooled[k] }
            if c.headPooling == .clsAndDistillation {
                for k in 0..<d { act.dfeatures[d + k] += act.dpooled[d + k] }
            }
            if c.headPooling == .clsAndPatchMean {
                let inv = 1 / Float(T - 1)
                for t in 1..<T { for k in 0..<d { act.dfeatures[t * d + k] += act.dpooled[d + k] * inv } }
            }
        }
        LayerNormOp.backward(act.dfeatures, x: act.xFinal, rows: T, dim: d, w: p + layout.normW, mean: act.meanF,
                             rstd: act.rstdF, dw: g + layout.normW, db: g + layout.normB, dx: act.dx, accumulate: false)
        for i in stride(from: c.depth - 1, through: 0, by: -1) {
            block(i, p, act.block(i), act, into: g)
        }
        // x0 = [cls; (dist;) patches] + pos: the tokens' gradients (the patch embedding stays frozen)
        let gc = g + layout.cls, gp = g + layout.pos
        for k in 0..<d { gc[k] += act.dx[k] }
        if let dist = layout.dist {
            for k in 0..<d { g[dist + k] += act.dx[d + k] }
        }
        for k in 0..<(T * d) { gp[k] += act.dx[k] }
    }

    /// act.dx holds ∂loss/∂(block output) on entry and ∂loss/∂(block input) on return.
    func block(_ i: Int, _ p: UnsafePointer<Float>, _ a: ImageActivations.Block, _ act: ImageActivations,
               into g: UnsafeMutablePointer<Float>) {
        let c = layout.config, T = c.tokenCount, d = c.dim, s = layout.blocks[i]
        // out = x2 + ls2·mlp: dmlp = dx·ls2 (into dtmp); dx carries on as dx2
        scaleBackward(act.dx, y: a.mlp, scale: s.ls2, p, g, into: act.dtmp)
        mlp(s.mlp, p, a, act, into: g)  // dh2 in dtmp
        LayerNormOp.backward(act.dtmp, x: a.x2, rows: T, dim: d, w: p + s.norm2W, mean: a.mean2, rstd: a.rstd2,
                             dw: g + s.norm2W, db: g + s.norm2B, dx: act.dx, accumulate: true)
        // x2 = x + ls1·proj
        scaleBackward(act.dx, y: a.proj, scale: s.ls1, p, g, into: act.dtmp)
        // proj = attn·Wᵀ + b: dattn into dnarrow
        LinearOp.backward(act.dtmp, x: a.attn, rows: T, inputs: d, outputs: d, w: p + s.projW, dw: g + s.projW,
                          db: g + s.projB, dx: act.dnarrow)
        AttentionOp.backward(act.dnarrow, qkv: a.qkv, probs: a.probs, tokens: T, dim: d, heads: c.heads,
                             scratch: act.dprobs, integer: integerAttention ? act.integerAttention : nil, into: act.dwide)
        LinearOp.backward(act.dwide, x: a.h1, rows: T, inputs: d, outputs: 3 * d, w: p + s.qkvW, dw: g + s.qkvW,
                          db: g + s.qkvB, dx: act.dtmp)
        LayerNormOp.backward(act.dtmp, x: a.x, rows: T, dim: d, w: p + s.norm1W, mean: a.mean1, rstd: a.rstd1,
                             dw: g + s.norm1W, db: g + s.norm1B, dx: act.dx, accumulate: true)
    }

    /// For out = x + scale ⊙ y: dy = dout ⊙ scale into `dy`, dscale += Σ_t dout ⊙ y.
    func scaleBackward(_ dout: UnsafePointer<Float>, y: UnsafePointer<Float>, scale: Int?, _ p: UnsafePointer<Float>,
                       _ g: UnsafeMutablePointer<Float>, into dy: UnsafeMutablePointer<Float>) {
        let c = layout.config, d = c.dim, n = c.tokenCount * d
        guard let s = scale else { dy.update(from: dout, count: n); return }
        let sp = p + s, gs = g + s
        for t in 0..<c.tokenCount {
            let o = dout + t * d, yr = y + t * d, r = dy + t * d
            for k in 0..<d { r[k] = o[k] * sp[k]; gs[k] += o[k] * yr[k] }
        }
    }

    /// dtmp holds ∂loss/∂(MLP output) on entry and ∂loss/∂h2 on return.
    func mlp(_ s: MLPSlots, _ p: UnsafePointer<Float>, _ a: ImageActivations.Block, _ act: ImageActivations,
             into g: UnsafeMutablePointer<Float>) {
        let c = layout.config, T = c.tokenCount, d = c.dim, m = c.mlpDim
        let dy = act.dtmp, dg = act.dwide
        switch s {
        case .dense(let w1, let b1, let w2, let b2):
            LinearOp.backward(dy, x: a.g, rows: T, inputs: m, outputs: d, w: p + w2, dw: g + w2, db: g + b2, dx: dg)
            for k in 0..<(T * m) { dg[k] *= a.dgelu[k] }
            LinearOp.backward(dg, x: a.h2, rows: T, inputs: d, outputs: m, w: p + w1, dw: g + w1, db: g + b1, dx: act.dtmp)
        case .factorised(let u1, let r1, let v1, let b1, let u2, let r2, let v2, let b2):
            let dn = act.dnarrow
            // y = q·U2ᵀ + b2: dU2 += dyᵀ·q, dq = dy·U2
            LinearOp.backward(dy, x: a.q, rows: T, inputs: r2, outputs: d, w: p + u2, dw: g + u2, db: g + b2, dx: dn)
            // q = g·V2ᵀ: dV2 += dqᵀ·g, dg = dq·V2
            LinearOp.backward(dn, x: a.g, rows: T, inputs: m, outputs: r2, w: p + v2, dw: g + v2, db: nil, dx: dg)
            for k in 0..<(T * m) { dg[k] *= a.dgelu[k] }
            // a = z·V1 + b1: dV1 += zᵀ·da, db1 += Σ da, dz = da·V1ᵀ
            LinearOp.gemm(true, false, m: r1, n: m, k: T, a.z, lda: r1, dg, ldb: m, g + v1, ldc: m, accumulate: true)
            LinearOp.columnSums(dg, rows: T, cols: m, into: g + b1)
            LinearOp.gemm(false, true, m: T, n: r1, k: m, dg, lda: m, p + v1, ldb: m, dn, ldc: r1, accumulate: false)
            // z = h2·U1: dU1 += h2ᵀ·dz, dh2 = dz·U1ᵀ
            LinearOp.gemm(true, false, m: d, n: r1, k: T, a.h2, lda: d, dn, ldb: r1, g + u1, ldc: r1, accumulate: true)
            LinearOp.gemm(false, true, m: T, n: d, k: r1, dn, lda: r1, p + u1, ldb: r1, act.dtmp, ldc: d, accumulate: false)
        }
    }
}
