import Foundation

/// The parameter budget of FiPS and of the per-layer SVD baseline.
///
/// Counts here are *weight* parameters of the MLPs only (biases are kept
/// unchanged by every method and reported separately). `d` is the model width,
/// `m` the MLP width (4d in a ViT), `n` the number of blocks in a group, so a
/// group holds `2n` FC layers of `d·m` weights each.
///
/// FiPS keeps per group `d·r + (1−s)·r·m·2n`: one shared basis U [d, r] and 2n
/// projections V [r, m] of which a fraction `s` is pruned. Setting that equal to
/// `p·d·m·2n` and solving for r gives `r = p·d·m·2n / (d + (1−s)·m·2n)`, rounded
/// *down* so that the budget is never exceeded, to a multiple of `q` (1, or 64
/// when a structured sparse pattern needs aligned tiles).
public enum FipsBudget {
    /// Dense weight parameters of the group's MLPs: `d·m·2n`.
    public static func denseParameters(d: Int, m: Int, blocks n: Int) -> Int { d * m * 2 * n }

    /// V entries pruned out of `total` at sparsity `s`. The masks prune exactly this many
    /// (`SparsityMask`), so the counts below are the stored nonzeros, not an estimate.
    public static func prunedCount(_ total: Int, sparsity s: Double) -> Int {
        min(total, max(0, Int((s * Double(total)).rounded())))
    }

    /// FiPS weight parameters of one group: `d·r + (1−s)·r·m·2n`.
    public static func fipsParameters(d: Int, m: Int, blocks n: Int, rank r: Int, sparsity s: Double) -> Int {
        let vTotal = r * m * 2 * n
        return d * r + vTotal - prunedCount(vTotal, sparsity: s)
    }

    /// Per-layer SVD baseline, all `2n` layers of a group, rank k each:
    /// `2n·(d·k + (1−s)·k·m)`; with s = 0 this is `2n·k·(d + m)`.
    public static func svdParameters(d: Int, m: Int, blocks n: Int, rank k: Int, sparsity s: Double) -> Int {
        let vTotal = k * m * 2 * n
        return 2 * n * d * k + vTotal - prunedCount(vTotal, sparsity: s)
    }

    /// The exact (unrounded) FiPS rank for budget p.
    public static func fipsRankExact(budget p: Double, sparsity s: Double, d: Int, m: Int, blocks n: Int) -> Double {
        p * Double(d * m * 2 * n) / (Double(d) + (1 - s) * Double(m * 2 * n))
    }

    /// The exact (unrounded) per-layer SVD rank for budget p: `d·k + (1−s)·k·m = p·d·m`.
    public static func svdRankExact(budget p: Double, sparsity s: Double, d: Int, m: Int) -> Double {
        p * Double(d * m) / (Double(d) + (1 - s) * Double(m))
    }

    /// The smallest budget that still gives rank `multiple`: below it the shared basis
    /// (d·r) plus the projections of the smallest useful rank do not fit.
    public static func minimumFipsBudget(sparsity s: Double, d: Int, m: Int, blocks n: Int, multiple q: Int) -> Double {
        Double(q) * (Double(d) + (1 - s) * Double(m * 2 * n)) / Double(d * m * 2 * n)
    }

    public static func minimumSVDBudget(sparsity s: Double, d: Int, m: Int, multiple q: Int) -> Double {
        Double(q) * (Double(d) + (1 - s) * Double(m)) / Double(d * m)
    }

    /// FiPS rank for a group, rounded down to a multiple of `q`.
    /// Throws `CompressionError.budgetTooSmall` when that rank would be 0.
    public static func fipsRank(budget p: Double, sparsity s: Double, d: Int, m: Int, blocks n: Int,
                                multiple q: Int = 1) throws -> Int {
        try checkArguments(p, s)
        let q = max(1, q)
        // The small epsilon keeps an exactly representable r (e.g. 186.0) from
        // flooring to r − 1 through rounding in the division.
        let r = Int((fipsRankExact(budget: p, sparsity: s, d: d, m: m, blocks: n) + 1e-9).rounded(.down)) / q * q
        if r < q {
            let minP = minimumFipsBudget(sparsity: s, d: d, m: m, blocks: n, multiple: q)
            throw CompressionError.budgetTooSmall(
                budget: p, minimum: minP,
                detail: "the shared bases alone need d·r = \(d)·\(q) = \(d * q) parameters per group of \(n) block(s) "
                    + "at the smallest rank \(q), plus \(Int(((1 - s) * Double(q * m * 2 * n)).rounded())) for the projections")
        }
        return r
    }

    /// Per-layer SVD rank at the same budget, rounded down to a multiple of `q`.
    public static func svdRank(budget p: Double, sparsity s: Double, d: Int, m: Int, multiple q: Int = 1) throws -> Int {
        try checkArguments(p, s)
        let q = max(1, q)
        let k = Int((svdRankExact(budget: p, sparsity: s, d: d, m: m) + 1e-9).rounded(.down)) / q * q
        if k < q {
            throw CompressionError.budgetTooSmall(
                budget: p, minimum: minimumSVDBudget(sparsity: s, d: d, m: m, multiple: q),
                detail: "each layer's own basis alone needs d·k = \(d)·\(q) = \(d * q) parameters at the smallest rank \(q)")
        }
        return k
    }

    static func checkArguments(_ p: Double, _ s: Double) throws {
        guard p > 0, p <= 1, p.isFinite else { throw CompressionError.invalidOption("MLP budget \(p) is not in (0, 1]") }
        guard s >= 0, s < 1, s.isFinite else { throw CompressionError.invalidOption("sparsity \(s) is not in [0, 1)") }
    }
}
