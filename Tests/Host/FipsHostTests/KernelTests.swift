import Foundation
import XCTest
import FipsBLASBackend
import FipsHostModel
import FipsKernels
import FipsViT

final class KernelTests: XCTestCase {
    func naive(_ a: [Float], _ w: [Float], M: Int, N: Int, K: Int, bias: [Float]?) -> [Float] {
        var out = [Float](repeating: 0, count: M * N)
        for m in 0..<M { for n in 0..<N {
            var s = 0.0
            for k in 0..<K { s += Double(a[m * K + k]) * Double(w[n * K + k]) }
            out[m * N + n] = Float(s) + (bias?[n] ?? 0)
        } }
        return out
    }

    func testF32GemmMatchesNaiveOnOddShapes() {
        for (M, N, K) in [(1, 1, 1), (3, 5, 7), (4, 4, 8), (5, 9, 17), (13, 6, 64), (257, 7, 33)] {
            let a = randomFloats(M * K, seed: UInt64(M * 100 + K)), w = randomFloats(N * K, seed: UInt64(N + 7))
            let bias = randomFloats(N, seed: 3)
            var out = [Float](repeating: .nan, count: M * N)
            a.withUnsafeBufferPointer { pa in w.withUnsafeBufferPointer { pw in bias.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { po in
                    F32Gemm.multiplyTransposed(MatrixRef(pa.baseAddress!, rows: M, cols: K), MatrixRef(pw.baseAddress!, rows: N, cols: K),
                                               bias: pb.baseAddress!, into: MutableMatrixRef(po.baseAddress!, rows: M, cols: N))
                } } } }
            let ref = naive(a, w, M: M, N: N, K: K, bias: bias)
            XCTAssertLessThan(Similarity.maxAbsDifference(out, ref), 1e-4, "\(M)x\(N)x\(K)")
        }
    }

    func testStridedViewsAndBLASAgree() {
        // Q·Kᵀ read straight out of a fused [T, 3d] buffer, as attention does.
        let T = 11, d = 12, hd = 4
        let qkv = randomFloats(T * 3 * d, seed: 9)
        var portable = [Float](repeating: 0, count: T * T), blas = portable
        qkv.withUnsafeBufferPointer { p in
            let q = MatrixRef(p.baseAddress! + hd, rows: T, cols: hd, stride: 3 * d)
            let k = MatrixRef(p.baseAddress! + d + hd, rows: T, cols: hd, stride: 3 * d)
            portable.withUnsafeMutableBufferPointer { PortableBackend().multiplyTransposed(q, k, bias: nil, into: MutableMatrixRef($0.baseAddress!, rows: T, cols: T), parallel: true) }
            blas.withUnsafeMutableBufferPointer { BLASBackend(threads: 2).multiplyTransposed(q, k, bias: nil, into: MutableMatrixRef($0.baseAddress!, rows: T, cols: T), parallel: true) }
        }
        var ref = [Float](repeating: 0, count: T * T)
        for i in 0..<T { for j in 0..<T {
            var s: Float = 0
            for c in 0..<hd { s += qkv[i * 3 * d + hd + c] * qkv[j * 3 * d + d + hd + c] }
            ref[i * T + j] = s
        } }
        XCTAssertLessThan(Similarity.maxAbsDifference(portable, ref), 1e-5)
        XCTAssertLessThan(Similarity.maxAbsDifference(blas, ref), 1e-5)
    }

    func testInt8GemmIsExactIntegerArithmetic() {
        let M = 5, N = 7, K = 37
        var rng = SplitMix64(seed: 5)
        let qa = (0..<(M * K)).map { _ in Int8(Int(rng.next() % 255) - 127) }
        let qw = (0..<(N * K)).map { _ in Int8(Int(rng.next() % 255) - 127) }
        let sa = [Float](repeating: 0.5, count: M), sw = [Float](repeating: 0.25, count: N)
        var out = [Float](repeating: 0, count: M * N)
        out.withUnsafeMutableBufferPointer { po in
            Int8Gemm.multiplyTransposed(qa, aScales: sa, qw, wScales: sw, M: M, N: N, K: K, bias: nil,
                                        into: MutableMatrixRef(po.baseAddress!, rows: M, cols: N))
        }
        for m in 0..<M { for n in 0..<N {
            var s: Int32 = 0
            for k in 0..<K { s += Int32(qa[m * K + k]) * Int32(qw[n * K + k]) }
            XCTAssertEqual(out[m * N + n], Float(s) * 0.125)
        } }
    }

    func testQuantizeRowsUsesFullRange() {
        let a: [Float] = [0.5, -1.0, 0.25, 0, 0, 0]
        var q = [Int8](repeating: 0, count: 6)
        var s = [Float](repeating: 0, count: 2)
        a.withUnsafeBufferPointer { Int8Gemm.quantizeRows(MatrixRef($0.baseAddress!, rows: 2, cols: 3), into: &q, scales: &s) }
        XCTAssertEqual(q, [64, -127, 32, 0, 0, 0])
        XCTAssertEqual(s[0], 1 / 127, accuracy: 1e-9)
        XCTAssertEqual(s[1], 1, "an all-zero row keeps a unit scale instead of dividing by zero")
    }

    func testFastErfAndExpAgainstLibm() {
        var worstErf: Double = 0, worstExp: Double = 0
        var x: Float = -6
        while x < 6 {
            let e = FastMath.erf(SIMD8(repeating: x))[0]
            worstErf = max(worstErf, abs(Double(e) - Foundation.erf(Double(x))))
            x += 0.001
        }
        x = -87
        while x < 20 {
            let e = FastMath.exp(SIMD8(repeating: x))[0]
            let ref = Foundation.exp(Double(x))
            worstExp = max(worstExp, abs(Double(e) - ref) / ref)
            x += 0.01
        }
        XCTAssertLessThan(worstErf, 2e-6)
        XCTAssertLessThan(worstExp, 5e-7)
        XCTAssertEqual(FastMath.exp(SIMD8(repeating: -Float.infinity))[0], 0)
    }

    func testLayerNormSoftmaxGelu() {
        let D = 19
        let x = randomFloats(2 * D, seed: 4, scale: 3)
        let w = randomFloats(D, seed: 5), b = randomFloats(D, seed: 6)
        var out = [Float](repeating: 0, count: 2 * D)
        x.withUnsafeBufferPointer { px in out.withUnsafeMutableBufferPointer { po in
            Activations.layerNorm(MatrixRef(px.baseAddress!, rows: 2, cols: D), weight: w, bias: b, eps: 1e-6,
                                  into: MutableMatrixRef(po.baseAddress!, rows: 2, cols: D))
        } }
        for r in 0..<2 {
            let row = x[(r * D)..<((r + 1) * D)].map(Double.init)
            let mean = row.reduce(0, +) / Double(D)
            let v = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(D)
            for k in 0..<D {
                let ref = (row[k] - mean) / (v + 1e-6).squareRoot() * Double(w[k]) + Double(b[k])
                XCTAssertEqual(Double(out[r * D + k]), ref, accuracy: 1e-5)
            }
        }
        var s = x
        s.withUnsafeMutableBufferPointer { Activations.softmaxRows(MutableMatrixRef($0.baseAddress!, rows: 2, cols: D), scale: 0.5) }
        for r in 0..<2 {
            let row = x[(r * D)..<((r + 1) * D)].map { Foundation.exp(Double($0) * 0.5) }
            let sum = row.reduce(0, +)
            for k in 0..<D { XCTAssertEqual(Double(s[r * D + k]), row[k] / sum, accuracy: 1e-6) }
        }
        var g = x
        g.withUnsafeMutableBufferPointer { Activations.geluErf($0.baseAddress!, count: 2 * D) }
        for i in 0..<(2 * D) {
            let v = Double(x[i])
            XCTAssertEqual(Double(g[i]), v * 0.5 * (1 + Foundation.erf(v / 2.0.squareRoot())), accuracy: 1e-5)
        }
    }
}
