import Foundation
import FipsHostModel
import FipsKernels

// Seeded inputs shaped like a ViT's, for the tests that check the kernels and
// for `fips-bench`, which times the same kernels on the same inputs: one copy,
// so a benchmark measures what the tests check.

/// Standard normal samples (Box-Muller over SplitMix64).
public struct Gaussian {
    var rng: SplitMix64
    public init(seed: UInt64) { rng = SplitMix64(seed: seed) }
    public mutating func next() -> Float {
        let u1 = max(rng.nextUnit(), 1e-12), u2 = rng.nextUnit()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}

/// ViT-like LayerNorm inputs [rows, cols]: unit-variance rows with a shifted
/// mean and, in half the rows, three "massive activation" channels of ±40…±200.
public func layerNormRows(rows: Int, cols: Int, seed: UInt64) -> [Float] {
    var g = Gaussian(seed: seed)
    var rng = SplitMix64(seed: seed &+ 7)
    var x = [Float](repeating: 0, count: rows * cols)
    for r in 0..<rows {
        let mean = Float(rng.nextUnit() * 2 - 1)
        for k in 0..<cols { x[r * cols + k] = mean + g.next() }
        if r % 2 == 1 {
            for j in 0..<min(3, cols) {
                let c = (j * 131 + 17) % cols
                x[r * cols + c] = Float(rng.nextUnit() > 0.5 ? 1 : -1) * Float(40 + rng.nextUnit() * 160)
            }
        }
    }
    return x
}

/// Caller-owned buffers of quantised activations for the packed GEMM [rows, cols].
public final class ActivationBuffers {
    public let a: QuantizedActivations
    public init(rows: Int, cols: Int) {
        let d = UnsafeMutablePointer<Int8>.allocate(capacity: max(1, QuantizedActivations.dataCount(rows: rows, cols: cols)))
        let s = UnsafeMutablePointer<Float>.allocate(capacity: max(1, rows))
        let g = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, QuantizedActivations.groupSumCount(rows: rows, cols: cols)))
        d.initialize(repeating: 0x55, count: max(1, QuantizedActivations.dataCount(rows: rows, cols: cols)))
        a = QuantizedActivations(rows: rows, cols: cols, data: d, scales: s, groupSums: g)
    }
    deinit { a.data.deallocate(); a.scales.deallocate(); a.groupSums.deallocate() }
    public var q: [Int8] { Array(UnsafeBufferPointer(start: a.data, count: a.rows * a.paddedCols)) }
    public var scales: [Float] { Array(UnsafeBufferPointer(start: a.scales, count: a.rows)) }
    public var gsum: [Int32] { Array(UnsafeBufferPointer(start: a.groupSums, count: a.rows * a.kBlocks)) }
}

/// Random logical weights [N, K] in `range` (the format's, passed in so a test
/// can use its own reading of the spec) with their scales: 10% zeros, for
/// q8-sparse 0/30/60/90%; one scale per row, or per row and 32 inputs.
public func randomPackedWeights(_ f: QuantFormat, range r: ClosedRange<Int>, N: Int, K: Int,
                                rng: inout SplitMix64) -> ([Int8], [Float]) {
    let zeroPct = f == .q8sparse ? Int(rng.next() % 4) * 30 : 10
    let values = (0..<(N * K)).map { _ -> Int8 in
        Int(rng.next() % 100) < zeroPct ? 0 : Int8(r.lowerBound + Int(rng.next() % UInt64(r.count)))
    }
    let count = f.hasBlockScales ? N * ((K + 31) / 32) : N
    let scales = (0..<count).map { _ in Float(rng.nextUnit() * 0.02 + 0.0001) * (rng.next() % 8 == 0 ? -1 : 1) }
    return (values, scales)
}
