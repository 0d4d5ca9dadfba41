import Foundation
import XCTest
import FipsArtifact
import FipsData
import FipsHostModel
import FipsQuantize
import FipsTestSupport

final class QuantizeTests: XCTestCase {
    // MARK: helpers

    /// Standard normal samples (Box–Muller over SplitMix64).
    static func gaussian(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        var out = [Float]()
        out.reserveCapacity(n)
        while out.count < n {
            let u1 = max(rng.nextUnit(), 1e-300), u2 = rng.nextUnit()
            let r = (-2 * log(u1)).squareRoot()
            out.append(Float(r * cos(2 * .pi * u2)))
            if out.count < n { out.append(Float(r * sin(2 * .pi * u2))) }
        }
        return out
    }

    /// XᵀX in double, the slow obvious way.
    static func naiveHessian(_ x: [Float], rows: Int, cols: Int) -> [Double] {
        var h = [Double](repeating: 0, count: cols * cols)
        for r in 0..<rows {
            for i in 0..<cols {
                let xi = Double(x[r * cols + i])
                for j in 0..<cols { h[i * cols + j] += xi * Double(x[r * cols + j]) }
            }
        }
        return h
    }

    /// Inputs X = Z·A + 0.05·noise with an 8-dimensional latent Z: every
    /// input is strongly correlated with the others, where GPTQ's error
    /// compensation has the most room.
    static func correlatedInputs(rows: Int, cols: Int, seed: UInt64) -> [Float] {
        let latent = 8
        let z = gaussian(rows * latent, seed: seed), a = gaussian(latent * cols, seed: seed + 1)
        let noise = gaussian(rows * cols, seed: seed + 2)
        var x = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            for k in 0..<cols {
                var s: Float = 0
                for l in 0..<latent { s += z[r * latent + l] * a[l * cols + k] }
                x[r * cols + k] = s + 0.05 * noise[r * cols + k]
            }
        }
        return x
    }

    static func statistics(_ x: [Float], rows: Int, cols: Int) -> InputStatistics {
        let s = InputStatistics(cols: cols)
        x.withUnsafeBufferPointer { s.observe($0.baseAddress!, rows: rows, cols: cols) }
        return s
    }

    func assertValid(_ q: QuantizedWeight, bits: Int, rows: Int, cols: Int, _ what: String) {
        let lo: Int8 = bits == 8 ? -127 : -Int8(1 << (bits - 1))
        let hi: Int8 = bits == 8 ? 127 : Int8((1 << (bits - 1)) - 1)
        XCTAssertEqual(q.bits, bits, what)
        XCTAssertEqual(q.rows, rows, what)
        XCTAssertEqual(q.cols, cols, what)
        XCTAssertEqual(q.groupSize, bits == 8 ? 0 : 32, what)
        XCTAssertEqual(q.scales.count, bits == 8 ? rows : rows * ((cols + 31) / 32), what)
        XCTAssertEqual(q.values.count, rows * cols, what)
        XCTAssertTrue(q.values.allSatisfy { $0 >= lo && $0 <= hi }, "\(what): value outside [\(lo), \(hi)]")
        // 2 bits may mirror its grid with a negative scale; wider grids never do.
        XCTAssertTrue(q.scales.allSatisfy { (bits == 2 ? $0 != 0 : $0 > 0) && $0.isFinite }, "\(what): scale not positive and finite")
    }

    // MARK: weights

    func testValuesInRangeAndScalesPositiveForEveryBitWidthAndOddShape() {
        let rows = 5
        for cols in [1, 31, 33, 100] {
            var w = Self.gaussian(rows * cols, seed: UInt64(cols))
            w[0] = 0; if rows * cols > 3 { w[3] = 40 }   // a zero and an outlier
            // Last row all zero: its scales must still be positive.
            for k in 0..<cols { w[(rows - 1) * cols + k] = 0 }
            var x = Self.gaussian(64 * cols, seed: 99)
            for r in 0..<64 { x[r * cols] = 0 }            // a dead input (H_00 = 0)
            let h = Self.statistics(x, rows: 64, cols: cols).hessian
            for bits in [8, 4, 3, 2] {
                for rounding in [WeightRounding.nearest, .gptq] {
                    let q = WeightQuantizer.quantize(w, rows: rows, cols: cols, bits: bits, rounding: rounding, hessian: h)
                    assertValid(q, bits: bits, rows: rows, cols: cols, "\(bits) bits \(rounding) cols \(cols)")
                    XCTAssertTrue(q.values[((rows - 1) * cols)...].allSatisfy { $0 == 0 })
                    if rounding == .gptq { XCTAssertEqual(q.values[0], 0, "dead input keeps weight 0") }
                    let d = q.dequantized()
                    XCTAssertEqual(d.count, rows * cols)
                    XCTAssertTrue(d.allSatisfy { $0.isFinite })
                }
            }
        }
    }

    func testEightBitRoundToNearestErrorIsAtMostHalfAStep() {
        let rows = 7, cols = 100
        let w = Self.gaussian(rows * cols, seed: 3).enumerated().map { $0.element * Float(1 + $0.offset / cols) }
        let q = WeightQuantizer.quantize(w, rows: rows, cols: cols, bits: 8)
        let d = q.dequantized()
        for r in 0..<rows {
            let amax = w[(r * cols)..<((r + 1) * cols)].map(abs).max()!
            XCTAssertEqual(q.scales[r], amax / 127, accuracy: amax * 1e-7)
            XCTAssertTrue(q.values[(r * cols)..<((r + 1) * cols)].contains { abs($0) == 127 }, "row \(r) uses the full range")
            for k in 0..<cols {
                let s = q.scales[r]
                XCTAssertLessThanOrEqual(abs(w[r * cols + k] - d[r * cols + k]), s / 2 * (1 + 1e-5), "row \(r) col \(k)")
            }
        }
    }

    func testGroupScaleSearchIsNoWorseThanAmaxScale() {
        // The clip search includes amax / qmax, so per group its squared error
        // can only be lower than plain absmax rounding.
        let rows = 16, cols = 96
        let w = Self.gaussian(rows * cols, seed: 5)
        for bits in [4, 3, 2] {
            let q = WeightQuantizer.quantize(w, rows: rows, cols: cols, bits: bits)
            // At 2 bits a group whose largest weight is positive takes a
            // negative scale (the mirrored grid gives that side two levels).
            XCTAssertEqual(q.scales.contains { $0 < 0 }, bits == 2, "\(bits) bits: negative scales")
            let d = q.dequantized()
            let qmax = Float((1 << (bits - 1)) - 1)
            var searched = 0.0, plain = 0.0
            for r in 0..<rows {
                for g in 0..<3 {
                    let idx = (0..<32).map { r * cols + g * 32 + $0 }
                    let s = idx.map { abs(w[$0]) }.max()! / qmax
                    var e1 = 0.0, e2 = 0.0
                    for i in idx {
                        e1 += Double((w[i] - d[i]) * (w[i] - d[i]))
                        let p = s * min(qmax, max(-qmax - 1, (w[i] / s).rounded(.toNearestOrEven)))
                        e2 += Double((w[i] - p) * (w[i] - p))
                    }
                    XCTAssertLessThanOrEqual(e1, e2 * (1 + 1e-5) + 1e-12, "\(bits) bits row \(r) group \(g)")
                    searched += e1; plain += e2
                }
            }
            XCTAssertLessThan(searched, plain * 0.97, "\(bits) bits: the search should find better clips")
        }
    }

    func testGPTQBeatsRoundToNearestOnCorrelatedInputs() {
        let rows = 48, cols = 160, tokens = 1024
        let x = Self.correlatedInputs(rows: tokens, cols: cols, seed: 11)
        let h = Self.statistics(x, rows: tokens, cols: cols).hessian
        let w = Self.gaussian(rows * cols, seed: 12)
        for bits in [8, 4, 3] {
            let rtn = WeightQuantizer.quantize(w, rows: rows, cols: cols, bits: bits, rounding: .nearest)
            let gptq = WeightQuantizer.quantize(w, rows: rows, cols: cols, bits: bits, rounding: .gptq, hessian: h)
            let eR = WeightQuantizer.outputError(original: w, quantized: rtn, hessian: h)
            let eG = WeightQuantizer.outputError(original: w, quantized: gptq, hessian: h)
            XCTAssertGreaterThan(eR, 0)
            if bits == 8 {
                XCTAssertLessThanOrEqual(eG, eR, "8 bits: GPTQ \(eG) vs RTN \(eR)")
            } else {
                XCTAssertLessThan(eG, 0.5 * eR, "\(bits) bits: GPTQ \(eG) vs RTN \(eR)")
            }
        }
    }

    func testGPTQWithIdentityHessianEqualsRoundToNearest() {
        // With H = I no input can compensate another: GPTQ rounds each weight
        // on its own, with group scales from unchanged weights.
        let rows = 9, cols = 100
        let w = Self.gaussian(rows * cols, seed: 21)
        var h = [Double](repeating: 0, count: cols * cols)
        for i in 0..<cols { h[i * cols + i] = 1 }
        for bits in [4, 3, 2] {
            let q = WeightQuantizer.quantize(w, rows: rows, cols: cols, bits: bits)
            // At 2 bits a group whose largest weight is positive takes a
            // negative scale (the mirrored grid gives that side two levels).
            XCTAssertEqual(q.scales.contains { $0 < 0 }, bits == 2, "\(bits) bits: negative scales")
        }
    }

    func testOutputErrorIsZeroForExactAndOneForZeroApproximation() {
        let rows = 4, cols = 33
        let x = Self.gaussian(50 * cols, seed: 31)
        let h = Self.statistics(x, rows: 50, cols: cols).hessian
        let w = Self.gaussian(rows * cols, seed: 32)
        XCTAssertEqual(WeightQuantizer.outputError(original: w, approximation: w, rows: rows, cols: cols, hessian: h), 0)
        let zero = [Float](repeating: 0, count: rows * cols)
        XCTAssertEqual(WeightQuantizer.outputError(original: w, approximation: zero, rows: rows, cols: cols, hessian: h),
                       1, accuracy: 1e-12)
        // Against the definition: ‖X(W − Ŵ)ᵀ‖² / ‖XWᵀ‖².
        let q = WeightQuantizer.quantize(w, rows: rows, cols: cols, bits: 3)
        let d = q.dequantized()
        var num = 0.0, den = 0.0
        for t in 0..<50 {
            for r in 0..<rows {
                var y = 0.0, yq = 0.0
                for k in 0..<cols { y += Double(x[t * cols + k] * w[r * cols + k]); yq += Double(x[t * cols + k] * d[r * cols + k]) }
                num += (y - yq) * (y - yq); den += y * y
            }
        }
        XCTAssertEqual(WeightQuantizer.outputError(original: w, quantized: q, hessian: h), num / den, accuracy: 1e-6 * num / den)
    }
}
