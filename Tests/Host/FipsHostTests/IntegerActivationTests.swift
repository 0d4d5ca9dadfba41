import Foundation
import XCTest
import FipsKernels
import FipsHostModel
import FipsSyntheticInputs

/// The I-ViT integer non-linearities against the float ones they replace.
/// Bounds are set from measured errors with some headroom, and tight enough
/// that I-ViT's plain linear 2^g (6% off) fails the quadratic's bounds.
final class IntegerActivationTests: XCTestCase {
    static let sizes = [1, 3, 257, 384, 1536]

    // MARK: inputs

    /// Attention-like rows of scaled logits: uniform ±20, N(0, 3²), N(0, 1), and
    /// one or two winners above a floor of −10…−20.
    static func logitRows(cols: Int, seed: UInt64) -> [Float] {
        var g = Gaussian(seed: seed)
        var rng = SplitMix64(seed: seed &+ 1)
        var out: [Float] = []
        for kind in 0..<4 { for _ in 0..<6 {
            for k in 0..<cols {
                switch kind {
                case 0: out.append(Float(rng.nextUnit() * 40 - 20))
                case 1: out.append(3 * g.next())
                case 2: out.append(g.next())
                default: out.append(k < 2 ? Float(rng.nextUnit() * 0.7) : Float(-10 - rng.nextUnit() * 10))
                }
            }
        } }
        return out
    }

    /// ViT-like LayerNorm inputs (FipsSyntheticInputs, shared with fips-bench).
    static func layerNormRows(rows: Int, cols: Int, seed: UInt64) -> [Float] {
        FipsSyntheticInputs.layerNormRows(rows: rows, cols: cols, seed: seed)
    }

    struct ErrorStats: CustomStringConvertible {
        var maxAbs: Double = 0, sumAbs: Double = 0, count = 0
        mutating func add(_ a: Float, _ b: Float) {
            let d = Double(abs(a - b))
            maxAbs = max(maxAbs, d); sumAbs += d; count += 1
        }
        var mean: Double { count == 0 ? 0 : sumAbs / Double(count) }
        var description: String { "max \(String(format: "%.2e", maxAbs)) mean \(String(format: "%.2e", mean))" }
    }

    // MARK: float references

    func floatSoftmax(_ x: [Float], cols: Int, scale: Float) -> [Float] {
        var y = x
        y.withUnsafeMutableBufferPointer {
            Activations.softmaxRows(MutableMatrixRef($0.baseAddress!, rows: x.count / cols, cols: cols), scale: scale)
        }
        return y
    }

    func integerSoftmax(_ x: [Float], cols: Int, scale: Float, eightBit: Bool = false) -> [Float] {
        var y = x
        y.withUnsafeMutableBufferPointer {
            let m = MutableMatrixRef($0.baseAddress!, rows: x.count / cols, cols: cols)
            if eightBit { IntegerActivations.softmaxRows8(m, scale: scale) } else { IntegerActivations.softmaxRows(m, scale: scale) }
        }
        return y
    }

    func floatLayerNorm(_ x: [Float], cols: Int, _ w: [Float], _ b: [Float], integer: Bool) -> [Float] {
        var y = [Float](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { px in y.withUnsafeMutableBufferPointer { py in
            let i = MatrixRef(px.baseAddress!, rows: x.count / cols, cols: cols)
            let o = MutableMatrixRef(py.baseAddress!, rows: x.count / cols, cols: cols)
            if integer { IntegerActivations.layerNorm(i, weight: w, bias: b, eps: 1e-6, into: o) }
            else { Activations.layerNorm(i, weight: w, bias: b, eps: 1e-6, into: o) }
        } }
        return y
    }

    func rowSumStats(_ p: [Float], cols: Int) -> Double {
        var worst = 0.0
        for r in 0..<(p.count / cols) {
            var s = 0.0
            for k in 0..<cols { s += Double(p[r * cols + k]) }
            worst = max(worst, abs(s - 1))
        }
        return worst
    }

    // MARK: ShiftExp

    func testShiftExpFollowsTheShiftFormula() {
        // Against 2^(y·scale) with y = x + ⌊x/2⌋ − ⌊x/16⌋ (I-ViT's x·log₂e): what
        // is left is the 2^g approximation, 0.27% for the bent line and 6.15% for
        // I-ViT's line, plus truncation to 2^-20.
        for (fraction, bound) in [(ShiftExp.Fraction.quadratic, 0.0028), (.linear, 0.0616)] {
            for scale: Float in [1.0 / 4096, 0.00137, 0.25] {
                let e = ShiftExp(inputScale: scale, outputBits: 20, fraction: fraction)
                var worst = 0.0
                var x: Int32 = 0
                while Double(x) * Double(scale) > -8 {
                    let y = Int(x) + (Int(x) >> 1) - (Int(x) >> 4)
                    let ideal = pow(2, Double(y) * Double(scale)) * 1_048_576
                    let got = Double(e(x))
                    worst = max(worst, abs(got - ideal) / ideal - 1.5 / ideal)
                    x -= max(1, Int32(0.003 / scale))
                }
                XCTAssertLessThan(worst, bound, "\(fraction) scale \(scale)")
            }
        }
        let e = ShiftExp(inputScale: 1.0 / 4096, outputBits: 15)
        XCTAssertEqual(e(0), 1 << 15)
        XCTAssertEqual(e(-4096 * 100), 0, "far below the limit everything is 0")
        XCTAssertEqual(e(Int32.min + 1), 0)
    }

    // MARK: Shiftmax

    func testShiftmaxMatchesFloatSoftmax() {
        var all = ErrorStats()
        var worstDrift = 0.0
        for cols in Self.sizes {
            // Raw scores ±160 with the 1/√64 scale of attention: scaled logits ±20.
            let scaled = Self.logitRows(cols: cols, seed: UInt64(cols))
            let x = scaled.map { $0 * 8 }
            let ref = floatSoftmax(x, cols: cols, scale: 0.125)
            let got = integerSoftmax(x, cols: cols, scale: 0.125)
            var s = ErrorStats()
            for i in 0..<x.count { s.add(got[i], ref[i]); all.add(got[i], ref[i]) }
            XCTAssertLessThan(s.maxAbs, 0.005, "cols \(cols) \(s)")
            XCTAssertLessThan(s.mean, cols == 1 ? 1e-4 : 1e-3, "cols \(cols) \(s)")
            let drift = rowSumStats(got, cols: cols)
            XCTAssertLessThan(drift, 0.01, "cols \(cols)")
            worstDrift = max(worstDrift, drift)
        }
        print("Shiftmax 16-bit: worst row sum drift \(String(format: "%.4f", worstDrift))")
        print("Shiftmax 16-bit vs float softmax:", all)
    }

    func testShiftmaxEightBitAndLinearFraction() {
        var eight = ErrorStats(), linear = ErrorStats()
        for cols in Self.sizes {
            let x = Self.logitRows(cols: cols, seed: UInt64(cols) + 50)
            let ref = floatSoftmax(x, cols: cols, scale: 1)
            let p8 = integerSoftmax(x, cols: cols, scale: 1, eightBit: true)
            var s8 = ErrorStats()
            for i in 0..<x.count { s8.add(p8[i], ref[i]); eight.add(p8[i], ref[i]) }
            XCTAssertLessThan(s8.maxAbs, 0.006, "8-bit cols \(cols) \(s8)")
            // Each probability rounds by up to 1/510, so a row's sum can drift by
            // count/510; small probabilities all round the same way on flat rows.
            let drift = rowSumStats(p8, cols: cols)
            // Measured 0.004 / 0.078 / 0.165 / 0.694 at 3 / 257 / 384 / 1536.
            XCTAssertLessThanOrEqual(drift, Double(cols) / 2000 + 0.01, "8-bit cols \(cols)")
            print("Shiftmax 8-bit: worst row sum drift \(String(format: "%.3f", drift)) at \(cols) columns")

            // The core with I-ViT's own linear 2^g, on integer logits in 1/1000 units.
            let q = x.map { Int32(($0 * 1000).rounded()) }
            var out = [UInt16](repeating: 0, count: q.count)
            q.withUnsafeBufferPointer { pq in out.withUnsafeMutableBufferPointer { po in
                Shiftmax.rows(MatrixRef(pq.baseAddress!, rows: q.count / cols, cols: cols), scale: 0.001,
                              fraction: .linear, into: MutableMatrixRef(po.baseAddress!, rows: q.count / cols, cols: cols))
            } }
            var sl = ErrorStats()
            for i in 0..<x.count { sl.add(Float(out[i]) / 65535, ref[i]); linear.add(Float(out[i]) / 65535, ref[i]) }
            XCTAssertLessThan(sl.maxAbs, 0.02, "linear cols \(cols) \(sl)")
        }
        // The bent 2^g is what keeps the default within 1/200; the line is not.
        XCTAssertGreaterThan(linear.maxAbs, 0.01)
        print("Shiftmax 8-bit vs float softmax:", eight, "| I-ViT linear 2^g, 16-bit:", linear)
    }

    func testShiftmaxCoreOnRealisticIntegerScores() {
        // int8 q·k products summed over 64 dims, scale s_q·s_k/√64: logit units of ~0.0011.
        let cols = 257, rows = 8
        var rng = SplitMix64(seed: 77)
        let scale: Float = 0.02 * 0.03 / 8 * 14.7
        let q = (0..<(rows * cols)).map { _ in Int32(Int(rng.next() % 30001) - 15000) }
        var p8 = [UInt8](repeating: 0, count: q.count)
        q.withUnsafeBufferPointer { pq in p8.withUnsafeMutableBufferPointer { po in
            Shiftmax.rows(MatrixRef(pq.baseAddress!, rows: rows, cols: cols), scale: scale,
                          into: MutableMatrixRef(po.baseAddress!, rows: rows, cols: cols))
        } }
        let ref = floatSoftmax(q.map { Float($0) }, cols: cols, scale: scale)
        var s = ErrorStats()
        for i in 0..<q.count { s.add(Float(p8[i]) / 255, ref[i]) }
        XCTAssertLessThan(s.maxAbs, 0.006, "\(s)")
    }
}
