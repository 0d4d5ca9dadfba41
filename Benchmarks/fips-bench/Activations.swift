// swift build -c release --product fips-bench && .build/release/fips-bench activations
import Foundation
import FipsKernels
import FipsSyntheticInputs
import FipsHostModel  // SplitMix64

/// `fips-bench activations`: ns per element of the float and integer non-linearities.
/// Moved from IntegerActivationTests.testReportSpeed; the inputs are
/// IntegerActivationTests' (FipsSyntheticInputs).
enum ActivationBench {
    /// ns per element, single thread, on ViT-S/14 shapes (257 tokens, dim 384, MLP 1536).
    static func run() {
        func measure(_ reps: Int, _ body: () -> Void) -> Double {
            body()
            var best = Double.infinity
            for _ in 0..<reps {
                let t0 = DispatchTime.now().uptimeNanoseconds
                body()
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0))
            }
            return best
        }
        let T = 257
        var scores = randomFloats(T * T, seed: 1, scale: 60)
        let sm = scores
        let nsSoftF = measure(5) { scores = sm; scores.withUnsafeMutableBufferPointer { Activations.softmaxRows(MutableMatrixRef($0.baseAddress!, rows: T, cols: T), scale: 0.125) } }
        let nsSoftI = measure(5) { scores = sm; scores.withUnsafeMutableBufferPointer { IntegerActivations.softmaxRows(MutableMatrixRef($0.baseAddress!, rows: T, cols: T), scale: 0.125) } }
        let nsCopy = measure(5) { scores = sm; scores.withUnsafeMutableBufferPointer { _ in } }
        let q = sm.map { Int32(($0 * 4096 / 8).rounded()) }
        var p8 = [UInt8](repeating: 0, count: q.count)
        let nsSoftCore = measure(5) { q.withUnsafeBufferPointer { pq in p8.withUnsafeMutableBufferPointer { po in
            Shiftmax.rows(MatrixRef(pq.baseAddress!, rows: T, cols: T), scale: 1.0 / 4096, into: MutableMatrixRef(po.baseAddress!, rows: T, cols: T))
        } } }

        let M = 1536
        var h = randomFloats(T * M, seed: 2, scale: 6)
        let hh = h
        let nsGeluF = measure(5) { h = hh; h.withUnsafeMutableBufferPointer { Activations.geluErf($0.baseAddress!, count: T * M) } }
        let nsGeluI = measure(5) { h = hh; h.withUnsafeMutableBufferPointer { IntegerActivations.gelu($0.baseAddress!, count: T * M) } }
        let nsHCopy = measure(5) { h = hh; h.withUnsafeMutableBufferPointer { _ in } }
        let hq = hh.map { Int32(($0 * 4096).rounded()) }
        var ho = hq
        let nsGeluCore = measure(5) { ShiftGELU.apply(hq, count: hq.count, scale: 1.0 / 4096, into: &ho) }

        let D = 384
        let x = layerNormRows(rows: T, cols: D, seed: 1)
        let w = randomFloats(D, seed: 2), b = randomFloats(D, seed: 3)
        var y = x
        let nsLnF = measure(5) { x.withUnsafeBufferPointer { px in y.withUnsafeMutableBufferPointer { py in
            Activations.layerNorm(MatrixRef(px.baseAddress!, rows: T, cols: D), weight: w, bias: b, eps: 1e-6, into: MutableMatrixRef(py.baseAddress!, rows: T, cols: D)) } } }
        let nsLnI = measure(5) { x.withUnsafeBufferPointer { px in y.withUnsafeMutableBufferPointer { py in
            IntegerActivations.layerNorm(MatrixRef(px.baseAddress!, rows: T, cols: D), weight: w, bias: b, eps: 1e-6, into: MutableMatrixRef(py.baseAddress!, rows: T, cols: D)) } } }
        let xq = x.map { Int32(($0 * 16384).rounded()) }
        var wq = [Int32](repeating: 0, count: D), bq = wq, lo = xq
        IntegerLayerNorm.quantizeAffine(weight: w, bias: b, dim: D, outputBits: 16, weightQ: &wq, biasQ: &bq)
        let nsLnCore = measure(5) { xq.withUnsafeBufferPointer { px in lo.withUnsafeMutableBufferPointer { po in
            for r in 0..<T { IntegerLayerNorm.row(px.baseAddress! + r * D, dim: D, scale: 1.0 / 16384, eps: 1e-6, weightQ: wq, biasQ: bq, outputBits: 16, into: po.baseAddress! + r * D) }
        } } }

        func per(_ ns: Double, _ n: Int) -> String { String(format: "%.2f", ns / Double(n)) }
        print("ns/element (single thread, best of 5): softmax float \(per(nsSoftF - nsCopy, T * T)) integer wrapper \(per(nsSoftI - nsCopy, T * T)) Shiftmax core u8 \(per(nsSoftCore, T * T))")
        print("ns/element: GELU erf float \(per(nsGeluF - nsHCopy, T * M)) integer wrapper \(per(nsGeluI - nsHCopy, T * M)) ShiftGELU core \(per(nsGeluCore, T * M))")
        print("ns/element: LayerNorm float \(per(nsLnF, T * D)) integer wrapper \(per(nsLnI, T * D)) I-LayerNorm core \(per(nsLnCore, T * D))")
    }
}
