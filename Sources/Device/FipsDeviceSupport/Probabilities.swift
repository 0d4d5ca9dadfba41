import FipsKernels

/// Class probabilities from logits (fips-run and fipsd print the same scores through it).
public func softmax(_ x: UnsafePointer<Float>, _ n: Int) -> [Float] {
    var mx = -Float.greatestFiniteMagnitude
    for i in 0..<n { mx = max(mx, x[i]) }
    var out = [Float](repeating: 0, count: n)
    var sum: Float = 0
    for i in 0..<n {
        let e = FastMath.exp(SIMD8(repeating: x[i] - mx))[0]
        out[i] = e
        sum += e
    }
    for i in 0..<n { out[i] /= sum }
    return out
}

/// Indices of the k largest values, largest first; ties keep the lower index.
public func topIndices(_ v: [Float], k: Int) -> [Int] {
    var chosen = [Int]()
    var taken = [Bool](repeating: false, count: v.count)
    for _ in 0..<k {
        var best = -1
        for i in 0..<v.count where !taken[i] && (best < 0 || v[i] > v[best]) { best = i }
        if best < 0 { break }
        taken[best] = true
        chosen.append(best)
    }
    return chosen
}
