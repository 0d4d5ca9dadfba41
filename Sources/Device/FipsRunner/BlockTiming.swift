import FipsDeviceSupport

/// `fips-run --bench N --per-block`: the forward time of the patch embedding,
/// each block and the final norm and head over the N runs, as p50/p90/p99, so
/// a user sees on the board where a plan's time goes and can compare it with
/// `fips latency`'s per-block prediction for the same model.
struct BlockTiming {
    /// Slot names: "embed", "0" ... "depth-1", "head".
    let names: [String]
    /// Nanoseconds per slot, one per run.
    var samples: [[Int64]]
    /// The executor writes the current run here (`ViTExecutor.blockTimes`).
    let current: UnsafeMutablePointer<Int64>

    init(depth: Int) {
        var n = ["embed"]
        for i in 0..<depth { n.append("\(i)") }
        n.append("head")
        names = n
        samples = Array(repeating: [], count: depth + 2)
        current = .allocate(capacity: depth + 2)
        current.initialize(repeating: 0, count: depth + 2)
    }

    func free() { current.deallocate() }

    mutating func record() {
        for i in 0..<names.count { samples[i].append(current[i]) }
    }

    mutating func reset() {
        for i in 0..<names.count { samples[i].removeAll() }
    }

    /// The nearest-rank percentile q (0 < q <= 1) of sorted values, in ms.
    static func percentileMs(_ sorted: [Int64], _ q: Double) -> Double {
        var rank = Int((q * Double(sorted.count)).rounded(.up))
        rank = min(max(rank, 1), sorted.count)
        return Double(sorted[rank - 1]) / 1e6
    }

    /// One JSON line per slot: {"image": ..., "block": "3", "p50_ms": ..., "p90_ms": ..., "p99_ms": ..., "runs": N}.
    func write(image: String) {
        for (i, name) in names.enumerated() {
            let s = samples[i].sorted()
            if s.isEmpty { continue }
            var t = TextBuffer()
            t.append("{\"image\": ")
            t.appendJSONString(image)
            t.append(", \"block\": \"\(name)\"")
            for (label, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
                t.append(", \"\(label)_ms\": ")
                t.appendFixed(BlockTiming.percentileMs(s, q), decimals: 4)
            }
            t.append(", \"runs\": \(s.count)}\n")
            t.write(fd: 1)
        }
    }
}
