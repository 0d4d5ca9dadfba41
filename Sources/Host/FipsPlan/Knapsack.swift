/// One option of one group: what it costs in bytes and milliseconds, and its error (the quality proxy, lower is better).
public struct KnapsackItem: Equatable {
    public var bytes: Int
    public var ms: Double
    public var error: Double
    public init(bytes: Int, ms: Double, error: Double) { self.bytes = bytes; self.ms = ms; self.error = error }
}

/// The multiple-choice knapsack with a second (latency) constraint: pick one
/// item per group, minimising the summed error, with Σ bytes ≤ capacity and
/// Σ ms ≤ latency.
///
/// Dynamic programming over the memory axis discretised in `unit` bytes
/// (item sizes rounded *up*, so an answer always fits the real capacity; with
/// unit 1 the memory axis is exact), and per memory cell the Pareto set of
/// (latency, error) over partial choices, so the latency constraint is
/// handled exactly, not by a penalty. Every Pareto point of every prefix is
/// kept, hence the result is the optimum of the discretised problem.
public enum MultipleChoiceKnapsack {
    struct State { var ms: Double; var error: Double; var prevCell: Int; var prevIndex: Int; var item: Int }

    /// Indices of the chosen item per group, or nil when nothing fits.
    public static func solve(_ groups: [[KnapsackItem]], capacity: Int, latency: Double? = nil, unit: Int = 1) -> [Int]? {
        guard capacity >= 0, unit >= 1, !groups.contains(where: { $0.isEmpty }) else { return nil }
        let cells = capacity / unit + 1
        let limit = latency.map { $0 + 1e-9 * max(1, abs($0)) }
        var layers = [[[State]]]()
        var current = [[State]](repeating: [], count: cells)
        current[0] = [State(ms: 0, error: 0, prevCell: -1, prevIndex: -1, item: -1)]
        for items in groups {
            var next = [[State]](repeating: [], count: cells)
            let w = items.map { ($0.bytes + unit - 1) / unit }
            for c in 0..<cells where !current[c].isEmpty {
                for (si, s) in current[c].enumerated() {
                    for (k, it) in items.enumerated() {
                        let c2 = c + w[k]
                        if c2 >= cells { continue }
                        let ms = s.ms + it.ms
                        if let l = limit, ms > l { continue }
                        next[c2].append(State(ms: ms, error: s.error + it.error, prevCell: c, prevIndex: si, item: k))
                    }
                }
            }
            // Pareto pruning: within a cell, and against every cheaper cell
            // (a state that costs more memory, is no faster and no better is useless).
            var frontier = [(ms: Double, error: Double)]()   // best error seen at each ms, over cells ≤ c
            for c in 0..<cells where !next[c].isEmpty {
                next[c].sort { $0.ms != $1.ms ? $0.ms < $1.ms : $0.error < $1.error }
                var kept = [State]()
                var bestError = Double.infinity
                for s in next[c] where s.error < bestError {
                    // dominated by a state in a cheaper cell?
                    if frontier.contains(where: { $0.ms <= s.ms && $0.error <= s.error }) { continue }
                    kept.append(s)
                    bestError = s.error
                }
                next[c] = kept
                frontier += kept.map { ($0.ms, $0.error) }
                frontier = paretoFront(frontier)
            }
            layers.append(next)
            current = next
        }
        // best final state
        var best: (cell: Int, index: Int, error: Double)? = nil
        for c in 0..<cells {
            for (i, s) in current[c].enumerated() where best == nil || s.error < best!.error {
                best = (c, i, s.error)
            }
        }
        guard let b = best else { return nil }
        var choice = [Int](repeating: 0, count: groups.count)
        var cell = b.cell, index = b.index
        for g in stride(from: groups.count - 1, through: 0, by: -1) {
            let s = layers[g][cell][index]
            choice[g] = s.item
            cell = s.prevCell; index = s.prevIndex
        }
        return choice
    }

    static func paretoFront(_ p: [(ms: Double, error: Double)]) -> [(ms: Double, error: Double)] {
        let sorted = p.sorted { $0.ms != $1.ms ? $0.ms < $1.ms : $0.error < $1.error }
        var out = [(ms: Double, error: Double)]()
        for x in sorted where out.isEmpty || x.error < out.last!.error { out.append(x) }
        return out
    }

    /// Every combination, for tests: the optimum with sizes rounded up to `unit` as `solve` does.
    public static func bruteForce(_ groups: [[KnapsackItem]], capacity: Int, latency: Double? = nil, unit: Int = 1) -> [Int]? {
        var best: ([Int], Double)? = nil
        var pick = [Int](repeating: 0, count: groups.count)
        func go(_ g: Int, _ units: Int, _ ms: Double, _ err: Double) {
            if g == groups.count {
                if units > capacity / unit { return }
                if let l = latency, ms > l + 1e-9 * max(1, abs(l)) { return }
                if best == nil || err < best!.1 { best = (pick, err) }
                return
            }
            for (k, it) in groups[g].enumerated() {
                pick[g] = k
                go(g + 1, units + (it.bytes + unit - 1) / unit, ms + it.ms, err + it.error)
            }
        }
        go(0, 0, 0, 0)
        return best?.0
    }
}
