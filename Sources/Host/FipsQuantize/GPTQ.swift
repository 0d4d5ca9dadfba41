import COpenBLAS

/// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022): quantises the inputs of
/// a linear layer one at a time in natural order; the rounding error of input
/// k is spread over inputs k+1… so that the layer's output on the calibration
/// inputs (whose second moment is H = XᵀX) changes as little as possible.
///
/// Implementation notes (why it looks as it does):
/// - The weights are held transposed, Wᵀ [cols, rows], so "input k of every
///   row" is one contiguous vector: the per-input update is a BLAS rank-1
///   update (sger) and the deferred update of later blocks one sgemm.
/// - Lazy batch updates: inside a block of `blockSize` inputs only the
///   block's own columns are updated; the rest gets the block's accumulated
///   errors in one GEMM when the block ends (the paper's Step 2).
/// - Group scales (4/3 bits) are chosen when the group's first input is
///   reached, from the weights as updated by every earlier error (the
///   reference implementation's `groupsize` path; it reads the weights
///   before the current block's own updates, this reads them after, which
///   is the fully compensated value). At 8 bits the per-row scale comes from
///   the original weights, as in the reference.
/// - Dead inputs (H_ii = 0: never non-zero in the calibration data) get
///   H_ii = 1 and weight 0, as the reference does: their value cannot be
///   judged, and zero keeps them from widening a group's range.
/// - Hessian algebra in double (LAPACK), the sweep itself in float.
enum GPTQ {
    /// The part of GPTQ that depends on H alone: dead inputs and the inverse
    /// Hessian factor (nil when H is not even positive semi-definite).
    struct Prepared {
        var cols: Int
        var dead: [Bool]
        var hinv: [Float]?
    }

    static func prepare(hessian: [Double], cols: Int, options: GPTQOptions) -> Prepared {
        precondition(hessian.count == cols * cols, "Hessian has \(hessian.count) values, expected \(cols)x\(cols)")
        var h = hessian
        var dead = [Bool](repeating: false, count: cols)
        for k in 0..<cols where h[k * cols + k] == 0 {
            dead[k] = true
            h[k * cols + k] = 1
        }
        let factor = InverseHessianFactor.compute(h, n: cols, relativeDamp: options.dampening)
        return Prepared(cols: cols, dead: dead, hinv: factor.map { $0.upper.map { Float($0) } })
    }

    static func quantize(_ w: UnsafePointer<Float>, rows: Int, cols: Int, levels: QuantLevels, hessian: [Double],
                         options: GPTQOptions) -> QuantizedWeight {
        quantize(w, rows: rows, cols: cols, levels: levels, prepared: prepare(hessian: hessian, cols: cols, options: options),
                 options: options)
    }

    static func quantize(_ w: UnsafePointer<Float>, rows: Int, cols: Int, levels: QuantLevels, prepared: Prepared,
                         options: GPTQOptions) -> QuantizedWeight {
        precondition(prepared.cols == cols, "prepared for \(prepared.cols) inputs, weight has \(cols)")
        let dead = prepared.dead
        guard let hinv = prepared.hinv else {
            // Only for a Hessian that is not even positive semi-definite
            // (NaN or corrupted statistics): rounding alone is still valid.
            return RoundToNearest.quantize(w, rows: rows, cols: cols, levels: levels)
        }

        // Wᵀ, dead inputs zeroed.
        var wt = [Float](repeating: 0, count: cols * rows)
        for r in 0..<rows {
            for k in 0..<cols where !dead[k] { wt[k * rows + r] = w[r * cols + k] }
        }

        let gs = levels.groupSize
        let groups = gs == 0 ? 1 : (cols + gs - 1) / gs
        var values = [Int8](repeating: 0, count: rows * cols)
        var scales = [Float](repeating: 0, count: rows * groups)
        if gs == 0 {
            // Per-row scale from the (dead-zeroed) original weights.
            var row = [Float](repeating: 0, count: cols)
            for r in 0..<rows {
                for k in 0..<cols { row[k] = wt[k * rows + r] }
                scales[r] = ScaleSearch.scale(row, count: cols, levels: levels)
            }
        }

        let B = max(1, options.blockSize)
        var err = [Float](repeating: 0, count: B * rows)
        var rowScale = [Float](repeating: 0, count: rows)
        if gs == 0 { rowScale = scales }
        var group = [Float](repeating: 0, count: max(gs, 1))
        wt.withUnsafeMutableBufferPointer { wtb in
        err.withUnsafeMutableBufferPointer { eb in
        hinv.withUnsafeBufferPointer { hb in
            let W = wtb.baseAddress!, E = eb.baseAddress!, Hinv = hb.baseAddress!
            var i1 = 0
            while i1 < cols {
                let i2 = min(i1 + B, cols), count = i2 - i1
                for k in i1..<i2 {
                    let col = W + k * rows
                    if gs > 0 && k % gs == 0 {
                        let n = min(gs, cols - k), j = k / gs
                        for r in 0..<rows {
                            for t in 0..<n { group[t] = W[(k + t) * rows + r] }
                            let s = ScaleSearch.scale(group, count: n, levels: levels)
                            scales[r * groups + j] = s
                            rowScale[r] = s
                        }
                    }
                    let d = Hinv[k * cols + k]
                    let e = E + (k - i1) * rows
                    for r in 0..<rows {
                        let s = rowScale[r]
                        let q = levels.level(col[r], scale: s)
                        values[r * cols + k] = Int8(q)
                        e[r] = (col[r] - s * q) / d
                    }
                    // Block columns k+1 ..< i2 absorb this input's error now.
                    if k + 1 < i2 {
                        cblas_sger(CblasRowMajor, Int32(i2 - k - 1), Int32(rows), -1,
                                   Hinv + k * cols + k + 1, 1, e, 1, W + (k + 1) * rows, Int32(rows))
                    }
                }
                // Columns after the block absorb the block's errors at once.
                if i2 < cols {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(cols - i2), Int32(rows), Int32(count), -1,
                                Hinv + i1 * cols + i2, Int32(cols), E, Int32(rows), 1, W + i2 * rows, Int32(rows))
                }
                i1 = i2
            }
        }
        }
        }
        return QuantizedWeight(bits: levels.bits, rows: rows, cols: cols, groupSize: gs, values: values, scales: scales)
    }
}
