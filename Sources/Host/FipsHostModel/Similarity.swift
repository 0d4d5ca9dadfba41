/// Comparison figures used by tests, `fips eval` and benchmarks.
public enum Similarity {
    public static func cosine(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Double {
        precondition(a.count == b.count)
        var dot = 0.0, na = 0.0, nb = 0.0
        for i in 0..<a.count {
            let x = Double(a[i]), y = Double(b[i])
            dot += x * y; na += x * x; nb += y * y
        }
        return na == 0 || nb == 0 ? (na == nb ? 1 : 0) : dot / (na.squareRoot() * nb.squareRoot())
    }

    public static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in cosine(pa, pb) } }
    }

    public static func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        var m: Float = 0
        for i in 0..<a.count { m = max(m, abs(a[i] - b[i])) }
        return m
    }

    /// Smallest cosine between corresponding rows of two [rows, cols] matrices.
    public static func minRowCosine(_ a: [Float], _ b: [Float], cols: Int) -> Double {
        var worst = 1.0
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                for r in 0..<(a.count / cols) {
                    let x = UnsafeBufferPointer(rebasing: pa[(r * cols)..<((r + 1) * cols)])
                    let y = UnsafeBufferPointer(rebasing: pb[(r * cols)..<((r + 1) * cols)])
                    worst = min(worst, cosine(x, y))
                }
            }
        }
        return worst
    }
}
