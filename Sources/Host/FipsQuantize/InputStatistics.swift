import COpenBLAS
import Dispatch

/// What quantisation needs to know about one linear layer's inputs X
/// [tokens, cols], accumulated over calibration batches:
/// - H = XᵀX (double, [cols, cols]) for GPTQ and the output-error measure;
/// - a histogram of |x| (`AbsHistogram`) and the signed min/max, for the
///   static activation scale (`ActivationCalibrator`).
/// Memory: cols² doubles (18.9 MB at cols = 1536) plus the histogram
/// (0.5 MB at 2¹⁶ bins); `hessian: false` keeps only the histogram.
public final class InputStatistics {
    public let cols: Int
    public let collectsHessian: Bool
    /// Rows (tokens) observed.
    public private(set) var tokens = 0
    public private(set) var histogram: AbsHistogram
    public private(set) var min: Float = .infinity
    public private(set) var max: Float = -.infinity
    /// max |x| per input channel: where the outliers are (`ActivationSmoothing`).
    public private(set) var channelAbsMax: [Float]
    /// Upper triangle of XᵀX, row-major [cols, cols] (the lower is filled on read).
    private var upper: [Double]

    public init(cols: Int, hessian: Bool = true, histogramBins: Int = 1 << 16) {
        precondition(cols > 0)
        self.cols = cols
        collectsHessian = hessian
        histogram = AbsHistogram(binCount: histogramBins)
        upper = hessian ? [Double](repeating: 0, count: cols * cols) : []
        channelAbsMax = [Float](repeating: 0, count: cols)
    }

    /// H = XᵀX, symmetric, row-major [cols, cols] (empty without `hessian`).
    public var hessian: [Double] {
        guard collectsHessian else { return [] }
        var h = upper
        for i in 0..<cols { for j in 0..<i { h[i * cols + j] = h[j * cols + i] } }
        return h
    }

    /// Adds X [rows, cols] (row-major, contiguous). XᵀX of the batch is
    /// formed in float by ssyrk, `threads` row chunks at once, and added into
    /// the double accumulator: one batch's float sum is accurate to ~1e-6
    /// relative, and the long sum over batches stays in double.
    public func observe(_ x: UnsafePointer<Float>, rows: Int, cols: Int, threads: Int = 1) {
        precondition(cols == self.cols, "layer has \(self.cols) inputs, observed \(cols)")
        guard rows > 0 else { return }
        tokens += rows
        histogram.add(x, count: rows * cols)
        var lo = min, hi = max
        for i in 0..<(rows * cols) where x[i].isFinite {
            lo = Swift.min(lo, x[i])
            hi = Swift.max(hi, x[i])
        }
        min = lo
        max = hi
        channelAbsMax.withUnsafeMutableBufferPointer { m in
            for r in 0..<rows {
                let xr = x + r * cols
                for j in 0..<cols where xr[j].isFinite { m[j] = Swift.max(m[j], abs(xr[j])) }
            }
        }
        guard collectsHessian else { return }
        let n = cols
        let tasks = Swift.max(1, Swift.min(threads, rows / 64))
        let per = (rows + tasks - 1) / tasks
        var partial = [[Float]](repeating: [], count: tasks)
        func chunk(_ t: Int) -> [Float] {
            let r0 = t * per, r1 = Swift.min(rows, r0 + per)
            var c = [Float](repeating: 0, count: n * n)
            if r0 < r1 {
                cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(n), Int32(r1 - r0), 1,
                            x + r0 * n, Int32(n), 0, &c, Int32(n))
            }
            return c
        }
        if tasks == 1 {
            partial[0] = chunk(0)
        } else {
            partial.withUnsafeMutableBufferPointer { pb in
                let p = pb.baseAddress!
                DispatchQueue.concurrentPerform(iterations: tasks) { t in p[t] = chunk(t) }
            }
        }
        upper.withUnsafeMutableBufferPointer { u in
            for c in partial {
                for i in 0..<n {
                    for j in i..<n { u[i * n + j] += Double(c[i * n + j]) }
                }
            }
        }
    }
}
