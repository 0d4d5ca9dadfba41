import Foundation
import XCTest
import FipsKernels
import FipsHostModel

/// ShiftGELU, I-LayerNorm and split determinism (IntegerActivationTests, continued).
extension IntegerActivationTests {
    // MARK: ShiftGELU

    func testShiftGELUMatchesFloatGELU() {
        var vsErf = ErrorStats(), vsSigmoid = ErrorStats()
        for n in Self.sizes + [16001] {
            let x = randomFloats(n, seed: UInt64(n) + 3, scale: 8)
            var ref = x, got = x
            ref.withUnsafeMutableBufferPointer { Activations.geluErf($0.baseAddress!, count: n) }
            got.withUnsafeMutableBufferPointer { IntegerActivations.gelu($0.baseAddress!, count: n) }
            var s = ErrorStats(), t = ErrorStats()
            for i in 0..<n {
                let sig = x[i] / (1 + Float(Foundation.exp(Double(-1.702 * x[i]))))
                s.add(got[i], ref[i]); vsErf.add(got[i], ref[i])
                t.add(got[i], sig); vsSigmoid.add(got[i], sig)
            }
            // x·σ(1.702x) is itself up to 0.0204 from the erf GELU.
            XCTAssertLessThan(s.maxAbs, 0.0215, "n \(n) \(s)")
            XCTAssertLessThan(t.maxAbs, 0.0015, "n \(n) vs x·σ(1.702x): \(t)")
        }
        XCTAssertLessThan(vsErf.mean, 0.007)
        XCTAssertLessThan(vsSigmoid.mean, 3e-4)
        print("ShiftGELU vs erf GELU:", vsErf, "| vs x·σ(1.702x):", vsSigmoid)
    }

    func testShiftGELUCoreLinearFractionAndExtremes() {
        // The core with I-ViT's line: σ is off by up to ~1.5%·x.
        let s: Float = 0.01
        let q = (-800...800).map { Int32($0) }
        var out = [Int32](repeating: 0, count: q.count)
        ShiftGELU.apply(q, count: q.count, scale: s, fraction: .linear, into: &out)
        var t = ErrorStats()
        for i in 0..<q.count {
            let x = Float(q[i]) * s
            t.add(Float(out[i]) * s, x / (1 + Float(Foundation.exp(Double(-1.702 * x)))))
        }
        XCTAssertLessThan(t.maxAbs, 0.03, "\(t)")
        XCTAssertGreaterThan(t.maxAbs, 0.005, "the line is visibly worse than the bent line")

        var x: [Float] = [0, 30, -30, 100, -100, 1e9, -1e9, .nan]
        x.withUnsafeMutableBufferPointer { IntegerActivations.gelu($0.baseAddress!, count: 8) }
        XCTAssertEqual(Array(x[0..<6]), [0, 30, 0, 100, 0, 262_144], "±2^18 is the Q12 range")
        XCTAssertEqual(x[6], 0)
        XCTAssertTrue(x[7].isFinite, "NaN quantises to some integer")
    }

    // MARK: I-LayerNorm

    func testIntegerLayerNormMatchesFloat() {
        var all = ErrorStats()
        for D in Self.sizes {
            let rows = 8
            let x = Self.layerNormRows(rows: rows, cols: D, seed: UInt64(D))
            var rng = SplitMix64(seed: UInt64(D) + 99)
            let w = (0..<D).map { _ in Float(0.1 + rng.nextUnit() * 2.9) * (rng.nextUnit() < 0.1 ? -1 : 1) }
            let b = (0..<D).map { _ in Float(rng.nextUnit() * 2 - 1) }
            let ref = floatLayerNorm(x, cols: D, w, b, integer: false)
            let got = floatLayerNorm(x, cols: D, w, b, integer: true)
            var s = ErrorStats()
            for i in 0..<x.count { s.add(got[i], ref[i]); all.add(got[i], ref[i]) }
            XCTAssertLessThan(s.maxAbs, 2e-4, "D \(D) \(s)")
        }
        print("I-LayerNorm vs float LayerNorm:", all)
    }

    func testIntegerLayerNormCoreAndSquareRoot() {
        var rng = SplitMix64(seed: 5)
        for _ in 0..<2000 {
            let n = rng.next() >> (rng.next() % 64)
            let r = IntegerLayerNorm.squareRoot(n)
            XCTAssertLessThanOrEqual(r.multipliedFullWidth(by: r).low, n)
            let r1 = r + 1, sq = r1.multipliedFullWidth(by: r1)
            XCTAssertTrue(sq.high > 0 || sq.low > n, "\(n)")
        }
        XCTAssertEqual(IntegerLayerNorm.squareRoot(UInt64.max), 4_294_967_295)

        // An int8 row with scale 0.05 and an identity affine, output Q12: the
        // coarse input is exact in integers, so the error is the output step.
        let D = 384
        let q = (0..<D).map { _ in Int32(Int(rng.next() % 255) - 127) }
        let w = [Float](repeating: 1, count: D), b = [Float](repeating: 0, count: D)
        var wq = [Int32](repeating: 0, count: D), bq = wq, out = wq
        IntegerLayerNorm.quantizeAffine(weight: w, bias: b, dim: D, outputBits: 12, weightQ: &wq, biasQ: &bq)
        IntegerLayerNorm.row(q, dim: D, scale: 0.05, eps: 1e-6, weightQ: wq, biasQ: bq, outputBits: 12, into: &out)
        let xf = q.map { Float($0) * 0.05 }
        let ref = floatLayerNorm(xf, cols: D, w, b, integer: false)
        var s = ErrorStats()
        for i in 0..<D { s.add(Float(out[i]) / 4096, ref[i]) }
        XCTAssertLessThan(s.maxAbs, 3e-4, "\(s)")

        // A constant row: variance 0, output is the bias.
        let c = [Float](repeating: 3, count: 5), cb: [Float] = [1, -2, 0.5, 0, 4]
        let y = floatLayerNorm(c, cols: 5, [Float](repeating: 2, count: 5), cb, integer: true)
        XCTAssertEqual(y, cb)
    }

    func testEmptyShapesAreNoOps() {
        var one: [Float] = [5]
        one.withUnsafeMutableBufferPointer { p in
            IntegerActivations.softmaxRows(MutableMatrixRef(p.baseAddress!, rows: 0, cols: 1), scale: 1)
            IntegerActivations.softmaxRows(MutableMatrixRef(p.baseAddress!, rows: 1, cols: 0), scale: 1)
            IntegerActivations.gelu(p.baseAddress!, count: 0)
            IntegerActivations.layerNorm(MatrixRef(p.baseAddress!, rows: 1, cols: 0), weight: p.baseAddress!, bias: p.baseAddress!,
                                         eps: 1e-6, into: MutableMatrixRef(p.baseAddress!, rows: 1, cols: 0))
        }
        XCTAssertEqual(one, [5])
    }

    // MARK: determinism

    func testRowResultsDoNotDependOnTheSplit() {
        let cols = 257, rows = 9
        let x = Self.logitRows(cols: cols, seed: 3)
        let whole = integerSoftmax(x, cols: cols, scale: 0.7)
        for r in [0, 4, 8] {
            let one = integerSoftmax(Array(x[(r * cols)..<((r + 1) * cols)]), cols: cols, scale: 0.7)
            XCTAssertEqual(one, Array(whole[(r * cols)..<((r + 1) * cols)]))
        }

        let g = randomFloats(rows * 1536, seed: 4, scale: 8)
        var all = g, split = g
        all.withUnsafeMutableBufferPointer { IntegerActivations.gelu($0.baseAddress!, count: g.count) }
        split.withUnsafeMutableBufferPointer { p in
            var at = 0
            for n in [1, 7, 1536, 1000, 3000] { IntegerActivations.gelu(p.baseAddress! + at, count: n); at += n }
            IntegerActivations.gelu(p.baseAddress! + at, count: g.count - at)
        }
        XCTAssertEqual(all, split)

        let D = 384
        let ln = Self.layerNormRows(rows: rows, cols: D, seed: 8)
        let w = randomFloats(D, seed: 9), b = randomFloats(D, seed: 10)
        let lnAll = floatLayerNorm(ln, cols: D, w, b, integer: true)
        for r in 0..<rows {
            let one = floatLayerNorm(Array(ln[(r * D)..<((r + 1) * D)]), cols: D, w, b, integer: true)
            XCTAssertEqual(one, Array(lnAll[(r * D)..<((r + 1) * D)]), "row \(r)")
        }
    }
}
