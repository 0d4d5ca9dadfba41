import CFipsKernels
import FipsArtifact
import FipsKernels

/// The executor's row-wise ops: linear maps (float, int8 or packed), LayerNorm,
/// the residual add, and the observer hook the host's calibration uses.
extension ViTExecutor {
    /// out = input · Wᵀ + b, float or int8 by the weight's encoding.
    func apply(_ l: LinearWeights, input: UnsafeMutablePointer<Float>, rows: Int, output: UnsafeMutablePointer<Float>,
               layer: String? = nil) {
        if let layer = layer { observe(layer, input, rows: rows, cols: l.inFeatures) }
        let a = MatrixRef(UnsafePointer(input), rows: rows, cols: l.inFeatures)
        let out = MutableMatrixRef(output, rows: rows, cols: l.outFeatures)
        switch l.storage {
        case .f32(let w):
            backend.multiplyTransposed(a, MatrixRef(w, rows: l.outFeatures, cols: l.inFeatures), bias: l.bias, into: out,
                                       parallel: true)
        case .int8(let w, let scales):
            Int8Gemm.quantizeRows(a, into: qAct, scales: qScales)
            Int8Gemm.multiplyTransposed(qAct, aScales: qScales, w, wScales: scales,
                                        M: rows, N: l.outFeatures, K: l.inFeatures, bias: l.bias, into: out)
        case .packed(let m, let actScale):
            applyPacked(m, actScale: actScale, l, input: input, rows: rows, output: output)
        }
    }

    /// Quantises the input (row chunks in parallel), then splits the output
    /// panels (or, when there are too few, the rows) over the tasks
    /// (`WorkSplit`). Every output element is computed the same way whatever the split.
    func applyPacked(_ m: fips_qmatrix, actScale: UnsafePointer<Float>?, _ l: LinearWeights,
                     input: UnsafeMutablePointer<Float>, rows: Int, output: UnsafeMutablePointer<Float>) {
        let K = l.inFeatures, Kp = l.paddedInFeatures, N = l.outFeatures
        let kernel = self.kernel
        forRowChunks(rows) { r in
            _ = fips_quantize_rows(kernel, input + r.lowerBound * K, K, Int32(r.count), Int32(K), actScale,
                                   self.qAct + r.lowerBound * Kp, self.qScales + r.lowerBound,
                                   self.qGsum + r.lowerBound * (Kp / PackedShape.blockCols))
        }
        WorkSplit.packedGemm(rows: rows, panels: PackedShape(rows: N, cols: K).panels, backend: backend) { t, r, p in
            var w = m
            _ = fips_qgemm(kernel, self.qAct, self.qScales, self.qGsum, Int32(r.lowerBound), Int32(r.upperBound), &w,
                           Int32(p.lowerBound), Int32(p.upperBound), l.bias, output, N, self.qScratch + t * self.qScratchBytes)
        }
    }

    /// Splits `rows` into one contiguous chunk per parallel task.
    func forRowChunks(_ rows: Int, _ body: (Range<Int>) -> Void) {
        WorkSplit.rowChunks(rows, backend: backend, body)
    }

    func layerNorm(_ input: UnsafeMutablePointer<Float>, rows: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                   into out: UnsafeMutablePointer<Float>) {
        let d = config.dim, eps = config.layerNormEps
        let integer = options.layerNorm == .integer
        forRowChunks(rows) { r in
            if integer {
                IntegerActivations.layerNorm(MatrixRef(UnsafePointer(input + r.lowerBound * d), rows: r.count, cols: d),
                                             weight: weight, bias: bias, eps: eps,
                                             into: MutableMatrixRef(out + r.lowerBound * d, rows: r.count, cols: d))
                return
            }
            Activations.layerNorm(MatrixRef(UnsafePointer(input + r.lowerBound * d), rows: r.count, cols: d),
                                  weight: weight, bias: bias, eps: eps,
                                  into: MutableMatrixRef(out + r.lowerBound * d, rows: r.count, cols: d))
        }
    }

    func residualAdd(_ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, scale: UnsafePointer<Float>?,
                     rows: Int, cols: Int) {
        for r in 0..<rows {
            let xr = x + r * cols, yr = y + r * cols
            if let s = scale {
                for k in 0..<cols { xr[k] += s[k] * yr[k] }
            } else {
                for k in 0..<cols { xr[k] += yr[k] }
            }
        }
    }

    /// Reports a linear map's input to the forward pass's observer, if any.
    func observe(_ leaf: String, _ input: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        guard let o = linearInputObserver else { return }
        o(currentBlock < 0 ? leaf : TensorNames.block(currentBlock, leaf), UnsafePointer(input), rows, cols)
    }
}
