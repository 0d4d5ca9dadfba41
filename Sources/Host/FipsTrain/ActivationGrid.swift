import CFipsKernels

/// How the integer runtime quantises the input of one packed linear map to
/// int8: per token (amax / 127 of the row, on the fly) or with the artifact's
/// calibrated scale.
public enum InputGrid: Equatable {
    case perToken
    case fixed(Float)
}

/// Where a quantisation-aware forward rounds activations, per block and for
/// the head: each field names the activation (ImageActivations' name) whose
/// consumer is a packed linear map. nil: that consumer is float.
struct BlockInputGrids {
    var h1: InputGrid? = nil    // → attn.qkv
    var attn: InputGrid? = nil  // → attn.proj
    var h2: InputGrid? = nil    // → mlp.fc1 (or the FiPS fc1.Ut)
    var z: InputGrid? = nil     // → fc1.Vt (FiPS)
    var g: InputGrid? = nil     // → mlp.fc2 (or the FiPS fc2.V)
    var q: InputGrid? = nil     // → fc2.U (FiPS)
}

/// The activation side of a quantisation-aware forward: the linear maps'
/// inputs, and whether attention's two products run in int8 (Q and P per
/// token, K per key token, V per channel: the executor's integer attention,
/// on whenever the model has packed weights).
struct ActivationGrids {
    var blocks: [BlockInputGrids]
    var pooled: InputGrid? = nil
    var integerAttention = false
}

/// Rounds rows of activations onto the runtime's int8 grid in place, with the
/// runtime's own quantiser (the portable kernel, bit-identical to every
/// other): x ← q·s. The gradient passes straight through (identity): a
/// per-token scale never clips, and a calibrated one clips rarely.
final class ActivationRounder {
    private let q: UnsafeMutablePointer<Int8>
    private let scales: UnsafeMutablePointer<Float>
    private let gsum: UnsafeMutablePointer<Int32>
    private let maxRows: Int, maxCols: Int

    init(maxRows: Int, maxCols: Int) {
        self.maxRows = maxRows
        self.maxCols = (maxCols + 31) / 32 * 32
        q = .allocate(capacity: maxRows * self.maxCols)
        scales = .allocate(capacity: maxRows)
        gsum = .allocate(capacity: maxRows * self.maxCols / 32)
    }
    deinit { q.deallocate(); scales.deallocate(); gsum.deallocate() }

    /// rows × cols floats at x (row stride ld), in place.
    func round(_ grid: InputGrid, _ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int) {
        precondition(rows <= maxRows && cols <= maxCols, "activation rounder sized \(maxRows)x\(maxCols), asked \(rows)x\(cols)")
        var fixed: Float = 0
        if case .fixed(let s) = grid { fixed = s }
        let rc = withUnsafePointer(to: &fixed) { sp in
            fips_quantize_rows(Int32(FIPS_QKERNEL_SCALAR), x, ld, Int32(rows), Int32(cols), grid == .perToken ? nil : sp,
                               q, scales, gsum)
        }
        precondition(rc == 0, "fips_quantize_rows refused \(rows)x\(cols)")
        let kp = (cols + 31) / 32 * 32
        for r in 0..<rows {
            let s = scales[r], qr = q + r * kp, xr = x + r * ld
            for c in 0..<cols { xr[c] = Float(qr[c]) * s }
        }
    }

    /// Rounds `grid`'s rows when there is one.
    @inline(__always)
    func round(_ grid: InputGrid?, _ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        if let g = grid { round(g, x, rows: rows, cols: cols, ld: cols) }
    }
}
