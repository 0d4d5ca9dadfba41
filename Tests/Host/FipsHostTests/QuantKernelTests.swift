import Foundation
import XCTest
import FipsHostModel
import FipsKernels
import FipsSyntheticInputs
import FipsArtifact

/// The integer GEMM kernels (CFipsKernels through FipsKernels.QuantizedGemm)
/// against a plain Swift reference of the contract in docs/KERNELS.md,
/// written from the spec and not from the C code: every kernel this CPU has,
/// every format, bit for bit.
final class QuantKernelTests: XCTestCase {
    // MARK: reference

    struct RefActs { var q: [Int8]; var scales: [Float]; var gsum: [Int32]; var Kp: Int }

    static func refQuantize(_ x: [Float], rows M: Int, cols K: Int, ldx: Int, staticScale: Float?) -> RefActs {
        let B = (K + 31) / 32, Kp = 32 * B
        var q = [Int8](repeating: 0, count: M * Kp), s = [Float](repeating: 0, count: M), gs = [Int32](repeating: 0, count: M * B)
        for m in 0..<M {
            var scale: Float
            if let st = staticScale {
                scale = st
            } else {
                var amax: Float = 0
                for k in 0..<K { amax = max(amax, abs(x[m * ldx + k])) }
                scale = amax == 0 ? 1 : amax / 127
            }
            let inv = 1 / scale
            for k in 0..<K {
                let r = (x[m * ldx + k] * inv).rounded(.toNearestOrEven)
                q[m * Kp + k] = Int8(max(-127, min(127, r)))
            }
            for b in 0..<B { gs[m * B + b] = (0..<32).reduce(Int32(0)) { $0 + Int32(q[m * Kp + 32 * b + $1]) } }
            s[m] = scale
        }
        return RefActs(q: q, scales: s, gsum: gs, Kp: Kp)
    }

    /// y[m][n] from the logical weights (values [N][K], scales [N] or [N][B]).
    static func refGemm(_ a: RefActs, M: Int, values: [Int8], scales: [Float], N: Int, K: Int, format: QuantFormat,
                        bias: [Float]?) -> [Float] {
        let B = (K + 31) / 32
        var y = [Float](repeating: 0, count: M * N)
        for m in 0..<M {
            for n in 0..<N {
                func blockSum(_ b: Int) -> Int32 {
                    var acc: Int32 = 0
                    for k in (32 * b)..<min(K, 32 * b + 32) { acc += Int32(a.q[m * a.Kp + k]) * Int32(values[n * K + k]) }
                    return acc
                }
                var v: Float
                if format.hasBlockScales {
                    var f: Float = 0
                    for b in 0..<B { f = f + Float(blockSum(b)) * scales[n * B + b] }
                    v = f * a.scales[m]
                } else {
                    var acc: Int32 = 0
                    for b in 0..<B { acc += blockSum(b) }
                    let t = scales[n] * a.scales[m]
                    v = Float(acc) * t
                }
                v = v + (bias?[n] ?? 0)
                y[m * N + n] = v
            }
        }
        return y
    }

    /// Decodes packed tiles as docs/ARTIFACT.md describes them (independent of the C unpacker).
    static func specDecode(_ p: PackedQuantMatrix) -> (values: [Int8], scales: [Float]) {
        let N = p.rows, K = p.cols, P = (N + 15) / 16, B = (K + 31) / 32
        var v = [Int8](repeating: 0, count: N * K)
        var s = [Float](repeating: 0, count: p.format.hasBlockScales ? N * B : N)
        for pi in 0..<P {
            for b in 0..<B {
                let t = pi * B + b
                for g in 0..<8 { for c in 0..<16 { for tt in 0..<4 {
                    let i = c * 4 + tt, n = 16 * pi + c, k = 32 * b + 4 * g + tt
                    var value: Int
                    switch p.format {
                    case .q8: value = Int(Int8(bitPattern: p.data[t * 512 + g * 64 + i]))
                    case .q4g32:
                        let byte = Int(p.data[t * 256 + (g / 2) * 64 + i])
                        value = (g % 2 == 0 ? byte & 15 : byte >> 4) - 8
                    case .q3g32:
                        let low = (Int(p.data[t * 192 + (g / 4) * 64 + i]) >> (2 * (g % 4))) & 3
                        let high = (Int(p.data[t * 192 + 128 + i]) >> g) & 1
                        value = (low | high << 2) - 4
                    case .q2g32:
                        value = ((Int(p.data[t * 128 + (g / 4) * 64 + i]) >> (2 * (g % 4))) & 3) - 2
                    case .q8sparse:
                        let pos = g * 64 + i
                        let word = p.masks[t * 8 + pos / 64], bit = UInt64(1) << UInt64(pos % 64)
                        if word & bit == 0 { value = 0; break }
                        var before = 0
                        for w in 0..<(pos / 64) { before += p.masks[t * 8 + w].nonzeroBitCount }
                        before += (word & (bit - 1)).nonzeroBitCount
                        value = Int(Int8(bitPattern: p.data[Int(p.offsets[t]) + before]))
                    default: fatalError("no such format")
                    }
                    if n < N && k < K { v[n * K + k] = Int8(value) } else { XCTAssertEqual(value, 0, "padding must hold 0") }
                } } }
            }
        }
        for n in 0..<N {
            if p.format.hasBlockScales { for b in 0..<B { s[n * B + b] = p.scales[((n / 16) * B + b) * 16 + n % 16] } }
            else { s[n] = p.scales[n] }
        }
        return (v, s)
    }

    // MARK: helpers

    typealias Acts = ActivationBuffers

    static func range(_ f: QuantFormat) -> ClosedRange<Int> {
        switch f {
        case .q8, .q8sparse: return -127...127
        case .q4g32: return -8...7
        case .q3g32: return -4...3
        case .q2g32: return -2...1
        default: fatalError("no such format")
        }
    }

    /// Random weights in the range this test reads from the spec (`range`), not the table's.
    static func randomWeights(_ f: QuantFormat, N: Int, K: Int, rng: inout SplitMix64) -> ([Int8], [Float]) {
        randomPackedWeights(f, range: range(f), N: N, K: K, rng: &rng)
    }

    static func bits(_ a: [Float]) -> [UInt32] { a.map { $0.bitPattern } }

    // MARK: tests

    /// The one format table (fips_qgemm.h) against the artifact's dtypes and
    /// docs/ARTIFACT.md's numbers, written out here independently.
    func testFormatTableAgreesWithArtifactTypes() {
        let expect: [(TensorDType, String, Int, Int, Int, Bool)] = [
            (.q8, "q8", 8, 512, 0, false), (.q4g32, "q4g32", 4, 256, 32, false),
            (.q3g32, "q3g32", 3, 192, 32, false), (.q8sparse, "q8-sparse", 8, 512, 0, true),
            (.q2g32, "q2g32", 2, 128, 32, false),
        ]
        XCTAssertEqual(QuantFormat.all.count, expect.count)
        for (t, name, bits, tile, group, sparse) in expect {
            guard let f = t.packedFormat else { return XCTFail("\(t) has no packed format") }
            XCTAssertEqual(Int(f.rawValue), Int(t.rawValue))
            XCTAssertEqual(f.name, name); XCTAssertEqual(t.name, name)
            XCTAssertEqual(f.bits, bits); XCTAssertEqual(t.weightBits, bits)
            XCTAssertEqual(f.tileBytes, tile); XCTAssertEqual(f.groupSize, group); XCTAssertEqual(f.isSparse, sparse)
            XCTAssertEqual(f.valueRange, Self.range(f))
            XCTAssertEqual(f.auxAlignment, sparse ? 8 : 4)
        }
        for t in [TensorDType.f32, .i8RowScaled, .f32CSR] { XCTAssertNil(t.packedFormat); XCTAssertNil(t.weightBits) }
        XCTAssertNil(QuantFormat(rawValue: 0)); XCTAssertNil(QuantFormat(rawValue: 8))
        XCTAssertEqual(QuantFormat.dense(bits: 4), .q4g32); XCTAssertEqual(QuantFormat.dense(bits: 2), .q2g32)
        XCTAssertEqual(QuantFormat.denseBits, [8, 4, 3, 2])
        let s = PackedShape(rows: 40, cols: 70)
        XCTAssertEqual(s.paddedRows, 48); XCTAssertEqual(s.paddedCols, 96); XCTAssertEqual(s.tiles, 9)
        XCTAssertEqual(s.denseBytes(QuantFormat.q3g32), 9 * 192); XCTAssertEqual(s.scaleCount(QuantFormat.q4g32), 48 * 3)
        XCTAssertEqual(s.scaleCount(QuantFormat.q8), 48); XCTAssertEqual(s.denseBytes(TensorDType.q8), 9 * 512)
    }

    func testKernelSelection() {
        let available = QuantKernel.available
        XCTAssertEqual(available.first, QuantKernel.scalar)
        XCTAssertTrue(available.contains(QuantKernel.best))
        XCTAssertEqual(QuantKernel.scalar.name, "scalar")
        XCTAssertNil(QuantKernel(name: "no-such-kernel"))
        XCTAssertEqual(Set(QuantKernel.allNames), ["scalar", "avx2", "avx512vnni", "neon", "neon-dotprod"])
        for name in QuantKernel.allNames {
            // A kernel made by name is one the CPU runs; the others are refused.
            if let k = QuantKernel(name: name) { XCTAssertTrue(available.contains(k)); XCTAssertEqual(k.name, name) }
            else { XCTAssertFalse(available.map(\.name).contains(name)) }
        }
        #if arch(x86_64)
        XCTAssertNil(QuantKernel(name: "neon"))
        #elseif arch(arm64)
        XCTAssertNil(QuantKernel(name: "avx2"))
        #endif
        if ProcessInfo.processInfo.environment["FIPS_KERNEL"] == nil { XCTAssertEqual(QuantKernel.fromEnvironment(), QuantKernel.best) }
        print("QuantKernelTests: kernels here: \(available.map(\.name).joined(separator: " ")); best \(QuantKernel.best.name)")
    }

    func testPackRoundTripAndSpecLayout() {
        var rng = SplitMix64(seed: 77)
        for f in [QuantFormat.q8, .q4g32, .q3g32, .q2g32, .q8sparse] {
            for (N, K) in [(1, 1), (3, 5), (17, 31), (33, 33), (16, 64), (20, 100)] {
                let (values, scales) = Self.randomWeights(f, N: N, K: K, rng: &rng)
                guard let p = QuantizedGemm.pack(values, scales: scales, rows: N, cols: K, format: f) else {
                    XCTFail("pack \(f.name) \(N)x\(K)"); continue
                }
                let P = (N + 15) / 16, B = (K + 31) / 32
                let bytesPerTile = [QuantFormat.q8: 512, .q4g32: 256, .q3g32: 192, .q2g32: 128][f]
                if let bpt = bytesPerTile { XCTAssertEqual(p.data.count, P * B * bpt) }
                else {
                    XCTAssertEqual(p.data.count, values.filter { $0 != 0 }.count)
                    XCTAssertEqual(p.offsets.count, P * B + 1); XCTAssertEqual(p.offsets.first, 0)
                    XCTAssertEqual(Int(p.offsets.last!), p.data.count); XCTAssertEqual(p.masks.count, P * B * 8)
                }
                XCTAssertEqual(p.scales.count, f.hasBlockScales ? P * B * 16 : 16 * P)
                let spec = Self.specDecode(p)
                XCTAssertEqual(spec.values, values, "\(f.name) \(N)x\(K) layout")
                XCTAssertEqual(Self.bits(spec.scales), Self.bits(scales), "\(f.name) \(N)x\(K) scales")
                let back = p.withMatrix { QuantizedGemm.unpack($0) }
                XCTAssertEqual(back.values, values, "\(f.name) \(N)x\(K) round trip")
                XCTAssertEqual(Self.bits(back.scales), Self.bits(scales))
            }
            // Out-of-range values are refused.
            let bad = [Int8](repeating: Int8(Self.range(f).upperBound == 127 ? -128 : Self.range(f).upperBound + 1), count: 4)
            XCTAssertNil(QuantizedGemm.pack(bad, scales: [Float](repeating: 1, count: 2), rows: 2, cols: 2, format: f))
        }
        // An all-zero sparse matrix has no data bytes and still multiplies.
        let z = QuantizedGemm.pack([Int8](repeating: 0, count: 6), scales: [1, 1, 1], rows: 3, cols: 2, format: .q8sparse)!
        XCTAssertEqual(z.data.count, 0)
        let acts = Acts(rows: 2, cols: 2)
        [Float](arrayLiteral: 1, -2, 3, 4).withUnsafeBufferPointer { QuantizedGemm.quantizeActivations(MatrixRef($0.baseAddress!, rows: 2, cols: 2), staticScale: nil, into: acts.a) }
        var out = [Float](repeating: .nan, count: 6)
        z.withMatrix { w in
            let scratch = UnsafeMutableRawPointer.allocate(byteCount: QuantizedGemm.scratchBytes(for: w), alignment: 64)
            defer { scratch.deallocate() }
            out.withUnsafeMutableBufferPointer {
                QuantizedGemm.multiply(kernel: .best, a: acts.a, rows: 0..<2, w: w, panels: 0..<1, bias: nil,
                                       into: MutableMatrixRef($0.baseAddress!, rows: 2, cols: 3), scratch: scratch)
            }
        }
        XCTAssertEqual(Self.bits(out), [UInt32](repeating: 0, count: 6))
    }

    func testQuantizeActivationsMatchesReferenceOnEveryKernel() {
        var rng = SplitMix64(seed: 5)
        for K in [1, 5, 31, 32, 33, 100, 384] {
            for mode in 0..<3 {      // 0 dynamic, 1 static, 2 static with exact ties
                let M = 7, ldx = K + 3
                var x = (0..<(M * ldx)).map { _ in Float(rng.nextUnit() * 2 - 1) * 4 }
                if mode == 2 { x = x.map { ($0 * 40).rounded() / 4 } }   // quarters: x/0.5 hits n + 1/2
                for k in 0..<K { x[2 * ldx + k] = 0 }                    // all-zero row: scale 1
                x[3 * ldx] = -0.0; x[4 * ldx] = 1e30; x[4 * ldx + K - 1] = -1e30
                let st: Float? = mode == 0 ? nil : mode == 1 ? 0.013 : 0.5
                let ref = Self.refQuantize(x, rows: M, cols: K, ldx: ldx, staticScale: st)
                for kernel in QuantKernel.available {
                    let acts = Acts(rows: M, cols: K)
                    x.withUnsafeBufferPointer { xp in
                        let xm = MatrixRef(xp.baseAddress!, rows: M, cols: K, stride: ldx)
                        // Two calls over a row split: rows are independent.
                        QuantizedGemm.quantizeActivations(xm, staticScale: st, kernel: kernel, into: acts.a, rows: 0..<3)
                        QuantizedGemm.quantizeActivations(xm, staticScale: st, kernel: kernel, into: acts.a, rows: 3..<M)
                    }
                    let what = "\(kernel.name) K=\(K) mode=\(mode)"
                    XCTAssertEqual(acts.q, ref.q, what)
                    XCTAssertEqual(Self.bits(acts.scales), Self.bits(ref.scales), what)
                    XCTAssertEqual(acts.gsum, ref.gsum, what)
                }
            }
        }
    }

    func testGemmIsBitExactOnEveryKernelFormatAndSplit() {
        var rng = SplitMix64(seed: 2024)
        let kernels = QuantKernel.available
        var cases = 0
        for f in [QuantFormat.q8, .q4g32, .q3g32, .q2g32, .q8sparse] {
            for M in [1, 2, 7, 257] { for N in [1, 3, 17, 33] { for K in [1, 5, 31, 33, 100, 384] {
                if M == 257 && K < 100 && N < 17 { continue }     // keep the time small
                let useStatic = rng.next() % 2 == 0, useBias = rng.next() % 2 == 0
                let ldx = K + Int(rng.next() % 3)
                let x = (0..<(M * ldx)).map { _ in Float(rng.nextUnit() * 2 - 1) * 3 }
                let st: Float? = useStatic ? 0.025 : nil
                let ref = Self.refQuantize(x, rows: M, cols: K, ldx: ldx, staticScale: st)
                let (values, scales) = Self.randomWeights(f, N: N, K: K, rng: &rng)
                let bias: [Float]? = useBias ? (0..<N).map { _ in Float(rng.nextUnit() - 0.5) } : nil
                let expected = Self.refGemm(ref, M: M, values: values, scales: scales, N: N, K: K, format: f, bias: bias)
                let packed = QuantizedGemm.pack(values, scales: scales, rows: N, cols: K, format: f)!
                let ldo = N + 2
                let acts = Acts(rows: M, cols: K)
                x.withUnsafeBufferPointer { xp in
                    QuantizedGemm.quantizeActivations(MatrixRef(xp.baseAddress!, rows: M, cols: K, stride: ldx), staticScale: st, into: acts.a)
                }
                packed.withMatrix { w in
                    let scratch = UnsafeMutableRawPointer.allocate(byteCount: QuantizedGemm.scratchBytes(for: w), alignment: 64)
                    defer { scratch.deallocate() }
                    for kernel in kernels {
                        for split in 0..<3 {
                            var out = [Float](repeating: Float(bitPattern: 0x7FC0_DEAD), count: M * ldo)
                            out.withUnsafeMutableBufferPointer { op in
                                let o = MutableMatrixRef(op.baseAddress!, rows: M, cols: N, stride: ldo)
                                bias.withOptionalPointer { bp in
                                    var pieces: [(Range<Int>, Range<Int>)] = []
                                    switch split {
                                    case 0: pieces = [(0..<M, 0..<w.panels)]
                                    case 1: // rows in random pieces, as threads split them
                                        var m = 0
                                        while m < M { let e = m + 1 + Int(rng.next() % UInt64(M - m)); pieces.append((m..<e, 0..<w.panels)); m = e }
                                    default: // panels in random pieces, in reverse order
                                        var p = 0
                                        while p < w.panels { let e = p + 1 + Int(rng.next() % UInt64(w.panels - p)); pieces.insert((0..<M, p..<e), at: 0); p = e }
                                    }
                                    for (rows, panels) in pieces {
                                        QuantizedGemm.multiply(kernel: kernel, a: acts.a, rows: rows, w: w, panels: panels, bias: bp,
                                                               into: o, scratch: scratch)
                                    }
                                }
                            }
                            var got = [Float](), pad = [UInt32]()
                            for m in 0..<M {
                                got += out[(m * ldo)..<(m * ldo + N)]
                                pad += out[(m * ldo + N)..<(m * ldo + ldo)].map(\.bitPattern)
                            }
                            let what = "\(kernel.name) \(f.name) M=\(M) N=\(N) K=\(K) static=\(useStatic) bias=\(useBias) split=\(split)"
                            if Self.bits(got) != Self.bits(expected) {
                                let i = got.indices.first { got[$0].bitPattern != expected[$0].bitPattern }!
                                XCTFail("\(what): [\(i / N)][\(i % N)] \(got[i]) != \(expected[i])")
                            }
                            XCTAssertTrue(pad.allSatisfy { $0 == 0x7FC0_DEAD }, "\(what): wrote past N")
                        }
                    }
                }
                cases += 1
            } } }
        }
        print("QuantKernelTests: \(cases) GEMM cases bit-exact on \(kernels.map(\.name).joined(separator: ", ")) (3 splits each)")
    }
}

private extension Optional where Wrapped == [Float] {
    func withOptionalPointer<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        switch self {
        case .none: return body(nil)
        case .some(let a): return a.withUnsafeBufferPointer { body($0.baseAddress) }
        }
    }
}
