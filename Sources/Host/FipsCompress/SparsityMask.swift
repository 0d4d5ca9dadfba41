import Foundation

/// Which axis of a stored V [r, m] the product sums over: the axis an N:M group
/// must run along for a sparse kernel to skip work.
/// fc1 computes z·V1 (z [N, r]): the sum runs over r, the rows of V1.
/// fc2 computes h·V2ᵀ (h [N, m]): the sum runs over m, the columns of V2.
public enum ReductionAxis: Equatable { case rows, columns }

/// Shape of one prunable matrix (row-major [rows, cols]).
public struct MaskShape: Equatable {
    public var rows: Int
    public var cols: Int
    public var reduction: ReductionAxis
    public init(rows: Int, cols: Int, reduction: ReductionAxis) {
        self.rows = rows; self.cols = cols; self.reduction = reduction
    }
    public var count: Int { rows * cols }
}

/// Global magnitude pruning of the V matrices (never U).
///
/// "Global" means one ranking across every matrix passed in, so a layer whose
/// projections matter less ends up sparser than one that matters more. The
/// compressor passes all V's of a group (they share one basis, and the
/// singular values folded into V make their magnitudes comparable).
///
/// Exactness: the number pruned is `round(s · total)` (entries, blocks or N:M
/// candidates), selected with a linear-time selection plus a deterministic tie
/// break (lower flat index across the concatenated matrices is pruned first).
public enum SparsityMask {
    /// Zhu & Gupta's gradual schedule: `s_t = s_f·(1 − (1 − t/T_end)³)`, then `s_f` after `T_end`.
    public static func cubicSchedule(step t: Int, endStep: Int, finalSparsity sf: Double) -> Double {
        if endStep <= 0 || t >= endStep { return sf }
        let f = 1 - Double(max(0, t)) / Double(endStep)
        return sf * (1 - f * f * f)
    }

    /// Masks (true = kept) for `values` at sparsity `s` with `pattern`.
    /// - previous: masks from an earlier schedule point; entries pruned there stay pruned,
    ///   so masks only grow sparser (the gradual schedule is monotone).
    /// For `.nm(n, m)` the reachable sparsity is at most `1 − n/m`; intermediate values
    /// prune the globally smallest of each group's `m − n` weakest entries, so the final
    /// point (s = 1 − n/m) is exactly N:M.
    public static func global(_ values: [[Float]], shapes: [MaskShape], sparsity s: Double,
                              pattern: SparsityPattern, previous: [[Bool]]? = nil) throws -> [[Bool]] {
        precondition(values.count == shapes.count)
        for (v, sh) in zip(values, shapes) where v.count != sh.count {
            throw CompressionError.invalidOption("mask input holds \(v.count) values for shape \(sh.rows)×\(sh.cols)")
        }
        guard s >= 0, s < 1 else { throw CompressionError.invalidOption("sparsity \(s) is not in [0, 1)") }
        if let p = previous, p.count != values.count || zip(p, values).contains(where: { $0.count != $1.count }) {
            throw CompressionError.invalidOption("previous masks do not match the matrices")
        }
        switch pattern {
        case .unstructured: return unstructured(values, shapes, s, previous)
        case let .block(br, bc): return try blocks(values, shapes, s, br, bc, previous)
        case let .nm(n, m): return try nOfM(values, shapes, s, n, m, previous)
        }
    }

    /// Fraction of false entries over all masks.
    public static func sparsity(of masks: [[Bool]]) -> Double {
        var total = 0, pruned = 0
        for mk in masks { total += mk.count; for k in mk where !k { pruned += 1 } }
        return total == 0 ? 0 : Double(pruned) / Double(total)
    }

    // MARK: patterns

    static func unstructured(_ values: [[Float]], _ shapes: [MaskShape], _ s: Double, _ prev: [[Bool]]?) -> [[Bool]] {
        var scores = [Float]()
        scores.reserveCapacity(shapes.reduce(0) { $0 + $1.count })
        for (i, v) in values.enumerated() {
            if let p = prev?[i] {
                for j in 0..<v.count { scores.append(p[j] ? abs(v[j]) : -1) }
            } else {
                for x in v { scores.append(abs(x)) }
            }
        }
        let prune = selectSmallest(scores, count: FipsBudget.prunedCount(scores.count, sparsity: s))
        var out = [[Bool]](), off = 0
        for v in values {
            out.append((0..<v.count).map { !prune[off + $0] })
            off += v.count
        }
        return out
    }

    static func blocks(_ values: [[Float]], _ shapes: [MaskShape], _ s: Double, _ br: Int, _ bc: Int,
                       _ prev: [[Bool]]?) throws -> [[Bool]] {
        guard br > 0, bc > 0 else { throw CompressionError.invalidOption("block pattern \(br)×\(bc) is empty") }
        // One score per tile: its L2 norm (sum of squares ranks the same). Edge tiles of
        // matrices that the tile does not divide are partial; exact entry sparsity then
        // holds only up to those tiles, so the compressor keeps r a multiple of the tile.
        var scores = [Float]()
        for (i, v) in values.enumerated() {
            let sh = shapes[i]
            for r0 in stride(from: 0, to: sh.rows, by: br) {
                for c0 in stride(from: 0, to: sh.cols, by: bc) {
                    var acc: Float = 0, anyKept = false
                    for r in r0..<min(sh.rows, r0 + br) {
                        for c in c0..<min(sh.cols, c0 + bc) {
                            let k = r * sh.cols + c
                            acc += v[k] * v[k]
                            if prev?[i][k] ?? true { anyKept = true }
                        }
                    }
                    scores.append(anyKept ? acc : -1)
                }
            }
        }
        let prune = selectSmallest(scores, count: FipsBudget.prunedCount(scores.count, sparsity: s))
        var out = [[Bool]](), t = 0
        for (i, _) in values.enumerated() {
            let sh = shapes[i]
            var mk = [Bool](repeating: true, count: sh.count)
            for r0 in stride(from: 0, to: sh.rows, by: br) {
                for c0 in stride(from: 0, to: sh.cols, by: bc) {
                    if prune[t] {
                        for r in r0..<min(sh.rows, r0 + br) { for c in c0..<min(sh.cols, c0 + bc) { mk[r * sh.cols + c] = false } }
                    }
                    t += 1
                }
            }
            out.append(mk)
        }
        return out
    }

    static func nOfM(_ values: [[Float]], _ shapes: [MaskShape], _ s: Double, _ n: Int, _ m: Int,
                     _ prev: [[Bool]]?) throws -> [[Bool]] {
        guard m > 0, n > 0, n < m else { throw CompressionError.invalidOption("N:M pattern \(n):\(m) needs 0 < N < M") }
        let maxS = 1 - Double(n) / Double(m)
        guard s <= maxS + 1e-12 else {
            throw CompressionError.invalidOption("sparsity \(s) is above what \(n):\(m) allows (\(maxS))")
        }
        // Candidates: in every group of m consecutive entries along the reduction axis,
        // the m − n weakest (previously pruned first, then by magnitude, then by position).
        var candScore = [Float](), candIndex = [(Int, Int)]()  // (matrix, flat index)
        var total = 0
        for (i, v) in values.enumerated() {
            let sh = shapes[i]
            let len = sh.reduction == .rows ? sh.rows : sh.cols
            guard len % m == 0 else {
                throw CompressionError.invalidOption(
                    "\(n):\(m) sparsity needs the reduction axis (\(len)) to be a multiple of \(m); use a rank multiple of \(m)")
            }
            total += sh.count
            let lines = sh.reduction == .rows ? sh.cols : sh.rows
            var idx = [Int](repeating: 0, count: m), sc = [Float](repeating: 0, count: m)
            for line in 0..<lines {
                for g in stride(from: 0, to: len, by: m) {
                    for e in 0..<m {
                        let k = sh.reduction == .rows ? (g + e) * sh.cols + line : line * sh.cols + g + e
                        idx[e] = k
                        sc[e] = (prev?[i][k] ?? true) ? abs(v[k]) : -1
                    }
                    let order = (0..<m).sorted { sc[$0] != sc[$1] ? sc[$0] < sc[$1] : idx[$0] < idx[$1] }
                    for e in order.prefix(m - n) {
                        candScore.append(sc[e]); candIndex.append((i, idx[e]))
                    }
                }
            }
        }
        let want = min(candScore.count, FipsBudget.prunedCount(total, sparsity: s))
        let prune = selectSmallest(candScore, count: want)
        var out = values.map { [Bool](repeating: true, count: $0.count) }
        for (c, p) in prune.enumerated() where p { out[candIndex[c].0][candIndex[c].1] = false }
        return out
    }

    // MARK: selection

    /// Marks exactly `count` entries: every score below the count-th smallest value, then
    /// entries equal to it in ascending index order. Linear time on average (3-way quickselect
    /// with a deterministic pivot), so the gradual schedule can re-rank millions of weights.
    static func selectSmallest(_ scores: [Float], count k: Int) -> [Bool] {
        var mark = [Bool](repeating: false, count: scores.count)
        if k <= 0 { return mark }
        if k >= scores.count { return [Bool](repeating: true, count: scores.count) }
        let tau = kthSmallest(scores, k - 1)
        var taken = 0
        for (i, x) in scores.enumerated() where x < tau { mark[i] = true; taken += 1 }
        for (i, x) in scores.enumerated() where x == tau && taken < k { mark[i] = true; taken += 1 }
        return mark
    }

    static func kthSmallest(_ input: [Float], _ k: Int) -> Float {
        var a = input
        var lo = 0, hi = a.count - 1, k = k
        while true {
            if lo == hi { return a[lo] }
            // median of three as pivot: deterministic, avoids the sorted-input worst case
            let mid = lo + (hi - lo) / 2
            let x = a[lo], y = a[mid], z = a[hi]
            let pivot = max(min(x, y), min(max(x, y), z))
            // 3-way partition: [lo, lt) < pivot, [lt, gt] == pivot, (gt, hi] > pivot
            var lt = lo, i = lo, gt = hi
            while i <= gt {
                if a[i] < pivot { a.swapAt(lt, i); lt += 1; i += 1 }
                else if a[i] > pivot { a.swapAt(i, gt); gt -= 1 }
                else { i += 1 }
            }
            if k < lt - lo { hi = lt - 1 }
            else if k <= gt - lo { return pivot }
            else { k -= gt - lo + 1; lo = gt + 1 }
        }
    }
}
