import FipsDeviceSupport

/// A Prometheus histogram with fixed upper bounds (seconds).
public struct Histogram {
    public let bounds: [Double]
    /// Per bucket, not cumulative; observations above the last bound only in `count`.
    var counts: [Int]
    var sum: Double = 0
    var count = 0

    public init(bounds: [Double]) {
        self.bounds = bounds
        counts = [Int](repeating: 0, count: bounds.count)
    }

    /// Bounds at `factors` times `expected`, to three significant digits: the
    /// buckets sit where this model's times fall on this board, whatever the board.
    public init(around expected: Double, factors: [Double]) {
        var b: [Double] = []
        for f in factors {
            let v = roundSignificant(expected * f, digits: 3)
            if v > 0 && (b.isEmpty || v > b[b.count - 1]) { b.append(v) }
        }
        self.init(bounds: b)
    }

    public mutating func observe(_ v: Double) {
        sum += v
        count += 1
        for (i, b) in bounds.enumerated() where v <= b {
            counts[i] += 1
            return
        }
    }

    func render(_ t: inout TextBuffer, name: String, help: String) {
        t.append("# HELP \(name) \(help)\n# TYPE \(name) histogram\n")
        var cumulative = 0
        for (i, b) in bounds.enumerated() {
            cumulative += counts[i]
            t.append("\(name)_bucket{le=\"")
            t.append(b, precision: 6)
            t.append("\"} \(cumulative)\n")
        }
        t.append("\(name)_bucket{le=\"+Inf\"} \(count)\n\(name)_sum ")
        t.append(sum, precision: 9)
        t.append("\n\(name)_count \(count)\n")
    }
}

/// v rounded to `digits` significant decimal digits (v > 0).
func roundSignificant(_ v: Double, digits: Int) -> Double {
    guard v > 0 && v.isFinite else { return 0 }
    var hi = 1.0
    for _ in 0..<digits { hi *= 10 }
    let lo = hi / 10
    var scale = 1.0
    var x = v
    while x >= hi { x /= 10; scale *= 10 }
    while x < lo { x *= 10; scale /= 10 }
    return (x + 0.5).rounded(.down) * scale
}
