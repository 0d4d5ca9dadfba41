import COpenBLAS
import FipsHostModel

/// GPTQ's knobs; the defaults are the paper's.
public struct GPTQOptions: Equatable {
    /// Inputs per lazy-update block.
    public var blockSize = 128
    /// Added to H's diagonal, relative to its mean diagonal.
    public var dampening = 0.01
    public init(blockSize: Int = 128, dampening: Double = 0.01) {
        self.blockSize = blockSize
        self.dampening = dampening
    }
}

/// Symmetric weight quantisation of linear layers to the runtime's q8,
/// q4g32 and q3g32 logical values (their ranges: QuantFormat, the format table in fips_qgemm.h).
public enum WeightQuantizer {
    /// Quantises W [rows = outputs, cols = inputs] (y = x·Wᵀ), row-major.
    /// `hessian` is the layer's H = XᵀX [cols, cols] (`InputStatistics.hessian`);
    /// `.gptq` requires it, `.nearest` ignores it.
    /// A factor stored [in, out] (a factorised MLP's U₁, V₁) must be passed
    /// transposed, so that cols is the dimension the observer reported.
    public static func quantize(_ w: [Float], rows: Int, cols: Int, bits: Int, rounding: WeightRounding = .nearest,
                                hessian: [Double]? = nil, options: GPTQOptions = GPTQOptions()) -> QuantizedWeight {
        precondition(rows > 0 && cols > 0 && w.count == rows * cols, "weight has \(w.count) values, expected \(rows)x\(cols)")
        let levels = QuantLevels(bits: bits)
        return w.withUnsafeBufferPointer { wb in
            switch rounding {
            case .nearest:
                return RoundToNearest.quantize(wb.baseAddress!, rows: rows, cols: cols, levels: levels)
            case .gptq:
                guard let h = hessian else { preconditionFailure("GPTQ needs the layer's input Hessian") }
                return GPTQ.quantize(wb.baseAddress!, rows: rows, cols: cols, levels: levels, hessian: h, options: options)
            }
        }
    }

    /// GPTQ's Hessian-only work (dead inputs, the inverse Hessian factor), done
    /// once for many weights that see the same inputs (a planner trying one
    /// layer at several bit widths). Quantising with it is identical to
    /// `quantize(_:rows:cols:bits:rounding: .gptq, hessian:)`.
    public struct PreparedHessian {
        let prepared: GPTQ.Prepared
        let options: GPTQOptions
        public var cols: Int { prepared.cols }
        public init(_ hessian: [Double], cols: Int, options: GPTQOptions = GPTQOptions()) {
            prepared = GPTQ.prepare(hessian: hessian, cols: cols, options: options)
            self.options = options
        }
    }

    public static func quantize(_ w: [Float], rows: Int, cols: Int, bits: Int, prepared: PreparedHessian) -> QuantizedWeight {
        precondition(rows > 0 && cols > 0 && w.count == rows * cols, "weight has \(w.count) values, expected \(rows)x\(cols)")
        let levels = QuantLevels(bits: bits)
        return w.withUnsafeBufferPointer {
            GPTQ.quantize($0.baseAddress!, rows: rows, cols: cols, levels: levels, prepared: prepared.prepared, options: prepared.options)
        }
    }

    /// A [rows, cols] host tensor; `statistics` (the layer's, from
    /// `CalibrationPass`) supplies the Hessian for `.gptq`.
    public static func quantize(_ t: HostTensor, bits: Int, rounding: WeightRounding = .nearest,
                                statistics: InputStatistics? = nil, options: GPTQOptions = GPTQOptions()) -> QuantizedWeight {
        precondition(t.shape.count == 2, "a linear weight is 2-D, this is \(t.shape)")
        if let s = statistics { precondition(s.cols == t.shape[1], "statistics for \(s.cols) inputs, weight has \(t.shape[1])") }
        return quantize(t.data, rows: t.shape[0], cols: t.shape[1], bits: bits, rounding: rounding,
                        hessian: rounding == .gptq ? statistics?.hessian : nil, options: options)
    }

    /// tr((W−Ŵ) H (W−Ŵ)ᵀ) / tr(W H Wᵀ): the output's squared error on the
    /// calibration inputs relative to the output's energy (biases excluded).
    public static func outputError(original: [Float], quantized: QuantizedWeight, hessian: [Double]) -> Double {
        outputError(original: original, approximation: quantized.dequantized(), rows: quantized.rows,
                    cols: quantized.cols, hessian: hessian)
    }

    /// The same for any approximation Ŵ [rows, cols].
    public static func outputError(original: [Float], approximation: [Float], rows: Int, cols: Int,
                                   hessian: [Double]) -> Double {
        precondition(original.count == rows * cols && approximation.count == rows * cols && hessian.count == cols * cols)
        let w = original.map { Double($0) }
        var d = [Double](repeating: 0, count: rows * cols)
        for i in 0..<d.count { d[i] = Double(original[i]) - Double(approximation[i]) }
        let den = quadraticTrace(w, rows: rows, cols: cols, hessian: hessian)
        guard den > 0 else { return 0 }
        return quadraticTrace(d, rows: rows, cols: cols, hessian: hessian) / den
    }

    /// tr(A H Aᵀ) = Σ A ∘ (A·H).
    static func quadraticTrace(_ a: [Double], rows: Int, cols: Int, hessian: [Double]) -> Double {
        var ah = [Double](repeating: 0, count: rows * cols)
        cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, Int32(rows), Int32(cols), 1, hessian, Int32(cols),
                    a, Int32(cols), 0, &ah, Int32(cols))
        var t = 0.0
        for i in 0..<a.count { t += a[i] * ah[i] }
        return t
    }
}
