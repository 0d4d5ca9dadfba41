// swift build -c release --product fips-bench && .build/release/fips-bench kernels
import Foundation
import FipsKernels
import FipsSyntheticInputs
import FipsHostModel  // SplitMix64

/// `fips-bench kernels`: GMAC/s of each integer GEMM kernel and format on the ViT-S shapes.
/// Moved from QuantKernelTests.testThroughputReport (FIPS_BENCH=1); the inputs are
/// QuantKernelTests' (FipsSyntheticInputs).
enum KernelBench {
    typealias Acts = ActivationBuffers

    static func randomWeights(_ f: QuantFormat, N: Int, K: Int, rng: inout SplitMix64) -> ([Int8], [Float]) {
        randomPackedWeights(f, range: f.valueRange, N: N, K: K, rng: &rng)
    }

    /// GMAC/s of each kernel and format on the ViT-S shapes, next to the plain
    /// Swift Int8Gemm loop; one thread, thread CPU time. Prints, asserts nothing.
    /// ~15 s.
    static func run() {
        func cpuSeconds() -> Double {
            var t = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
            return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
        }
        func measure(_ body: () -> Void) -> Double {   // best of 7 × 30 ms
            body()
            var best = Double.infinity
            for _ in 0..<7 {
                let t0 = cpuSeconds(); var n = 0
                repeat { body(); n += 1 } while cpuSeconds() - t0 < 0.03
                best = min(best, (cpuSeconds() - t0) / Double(n))
            }
            return best
        }
        var rng = SplitMix64(seed: 1)
        let M = 257
        for (K, N) in [(384, 1536), (1536, 384)] {
            let macs = Double(M * N * K)
            let x = (0..<(M * K)).map { _ in Float(rng.nextUnit() * 2 - 1) }
            let acts = Acts(rows: M, cols: K)
            // Plain Swift baseline: Int8Gemm.multiplyTransposed (SIMD16 Int16 products, Int32 sums).
            let qa = (0..<(M * K)).map { _ in Int8(Int(rng.next() % 255) - 127) }
            let qw = (0..<(N * K)).map { _ in Int8(Int(rng.next() % 255) - 127) }
            let ones = [Float](repeating: 1, count: max(M, N))
            var outS = [Float](repeating: 0, count: M * N)
            let tSwift = measure {
                qa.withUnsafeBufferPointer { a in qw.withUnsafeBufferPointer { w in ones.withUnsafeBufferPointer { s in
                    outS.withUnsafeMutableBufferPointer { o in
                        Int8Gemm.multiplyTransposed(a.baseAddress!, aScales: s.baseAddress!, w.baseAddress!, wScales: s.baseAddress!,
                                                    M: M, N: N, K: K, bias: nil, into: MutableMatrixRef(o.baseAddress!, rows: M, cols: N))
                    } } } }
            }
            print(String(format: "M=%d K=%-4d N=%-4d plain Swift Int8Gemm      %6.1f GMAC/s", M, K, N, macs / tSwift * 1e-9))
            for kernel in QuantKernel.available {
                var line = String(format: "M=%d K=%-4d N=%-4d %-12s", M, K, N, kernel.name)
                let tq = measure {
                    x.withUnsafeBufferPointer { xp in
                        QuantizedGemm.quantizeActivations(MatrixRef(xp.baseAddress!, rows: M, cols: K), staticScale: nil, kernel: kernel, into: acts.a)
                    }
                }
                line += String(format: " quantize %6.1f us |", tq * 1e6)
                for f in [QuantFormat.q8, .q4g32, .q3g32, .q8sparse] {
                    var (values, scales) = randomWeights(f, N: N, K: K, rng: &rng)
                    if f == .q8sparse { values = values.map { rng.next() % 2 == 0 ? 0 : $0 } }   // ~50% zeros
                    let packed = QuantizedGemm.pack(values, scales: scales, rows: N, cols: K, format: f)!
                    var out = [Float](repeating: 0, count: M * N)
                    let t = packed.withMatrix { w -> Double in
                        let scratch = UnsafeMutableRawPointer.allocate(byteCount: QuantizedGemm.scratchBytes(for: w), alignment: 64)
                        defer { scratch.deallocate() }
                        return out.withUnsafeMutableBufferPointer { op in
                            measure {
                                QuantizedGemm.multiply(kernel: kernel, a: acts.a, rows: 0..<M, w: w, panels: 0..<w.panels, bias: nil,
                                                       into: MutableMatrixRef(op.baseAddress!, rows: M, cols: N), scratch: scratch)
                            }
                        }
                    }
                    line += String(format: " %@ %6.1f", f.name, macs / t * 1e-9)
                }
                print(line + "  GMAC/s")
            }
        }
    }
}
