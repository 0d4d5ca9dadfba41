import FipsArtifact
import FipsKernels

/// A block's MLP in its three forms: dense fc1 / fc2, the FiPS factorised
/// form with float factors (dense or CSR), and the low-rank form with packed
/// integer factors. Reads the LN2 output `h`, writes `attnOut`.
extension ViTExecutor {
    /// attnOut = MLP(h); h (the LN2 output) is left intact for observers.
    func runMLP(_ w: MLPWeights, rows: Int) {
        switch w {
        case .dense(let fc1, let fc2):
            apply(fc1, input: h, rows: rows, output: mlp, layer: "mlp.fc1")
            gelu(mlp, rows: rows)
            apply(fc2, input: mlp, rows: rows, output: attnOut, layer: "mlp.fc2")
        case .lowRank(let ut, let vt, let v2, let u2):
            apply(ut, input: h, rows: rows, output: lowRank, layer: "mlp.fc1.U")
            apply(vt, input: lowRank, rows: rows, output: mlp, layer: "mlp.fc1.V")
            gelu(mlp, rows: rows)
            apply(v2, input: mlp, rows: rows, output: lowRank, layer: "mlp.fc2.V")
            apply(u2, input: lowRank, rows: rows, output: attnOut, layer: "mlp.fc2.U")
        case .factorised(let u1, let v1, let b1, let u2, let v2, let b2):
            runFactorisedMLP(u1, v1, b1, u2, v2, b2, rows: rows)
        }
    }

    /// fc1: z = x·U₁ [rows, r₁], a = z·V₁ + b₁ [rows, m];
    /// fc2: q = h·V₂ᵀ [rows, r₂], y = q·U₂ᵀ + b₂ [rows, d].
    func runFactorisedMLP(_ u1: FactorWeights, _ v1: FactorWeights, _ b1: UnsafePointer<Float>,
                          _ u2: FactorWeights, _ v2: FactorWeights, _ b2: UnsafePointer<Float>, rows: Int) {
        let c = config, d = c.dim, m = c.mlpDim
        let r1 = u1.cols, r2 = u2.cols
        observe("mlp.fc1.U", h, rows: rows, cols: d)
        multiply(MatrixRef(UnsafePointer(h), rows: rows, cols: d), u1, bias: nil,
                 into: MutableMatrixRef(lowRank, rows: rows, cols: r1))
        observe("mlp.fc1.V", lowRank, rows: rows, cols: r1)
        multiply(MatrixRef(UnsafePointer(lowRank), rows: rows, cols: r1), v1, bias: b1,
                 into: MutableMatrixRef(mlp, rows: rows, cols: m))
        gelu(mlp, rows: rows)
        observe("mlp.fc2.V", mlp, rows: rows, cols: m)
        multiplyTransposed(MatrixRef(UnsafePointer(mlp), rows: rows, cols: m), v2, bias: nil,
                           into: MutableMatrixRef(lowRank, rows: rows, cols: r2))
        observe("mlp.fc2.U", lowRank, rows: rows, cols: r2)
        multiplyTransposed(MatrixRef(UnsafePointer(lowRank), rows: rows, cols: r2), u2, bias: b2,
                           into: MutableMatrixRef(attnOut, rows: rows, cols: d))
    }

    /// out = a · F (+ bias) for a factor stored [in, out].
    func multiply(_ a: MatrixRef<Float>, _ f: FactorWeights, bias: UnsafePointer<Float>?, into out: MutableMatrixRef<Float>) {
        switch f.storage {
        case .f32(let p):
            backend.multiply(a, MatrixRef(p, rows: f.rows, cols: f.cols), bias: bias, into: out, parallel: true)
        case .csr(let s):
            forRowChunks(a.rows) { r in
                SparseGemm.multiply(MatrixRef(a.row(r.lowerBound), rows: r.count, cols: a.cols, stride: a.stride), s, bias: bias,
                                    into: MutableMatrixRef(out.row(r.lowerBound), rows: r.count, cols: out.cols, stride: out.stride))
            }
        }
    }

    /// out = a · Fᵀ (+ bias) for a factor stored [out, in].
    func multiplyTransposed(_ a: MatrixRef<Float>, _ f: FactorWeights, bias: UnsafePointer<Float>?,
                            into out: MutableMatrixRef<Float>) {
        switch f.storage {
        case .f32(let p):
            backend.multiplyTransposed(a, MatrixRef(p, rows: f.rows, cols: f.cols), bias: bias, into: out, parallel: true)
        case .csr(let s):
            forRowChunks(a.rows) { r in
                SparseGemm.multiplyTransposed(MatrixRef(a.row(r.lowerBound), rows: r.count, cols: a.cols, stride: a.stride), s,
                                              bias: bias,
                                              into: MutableMatrixRef(out.row(r.lowerBound), rows: r.count, cols: out.cols, stride: out.stride))
            }
        }
    }

    func gelu(_ x: UnsafeMutablePointer<Float>, rows: Int) {
        let m = config.mlpDim, tanh = config.geluTanh
        let integer = options.gelu == .integer
        forRowChunks(rows) { r in
            if integer { IntegerActivations.gelu(x + r.lowerBound * m, count: r.count * m) }
            else if tanh { Activations.geluTanh(x + r.lowerBound * m, count: r.count * m) }
            else { Activations.geluErf(x + r.lowerBound * m, count: r.count * m) }
        }
    }
}
