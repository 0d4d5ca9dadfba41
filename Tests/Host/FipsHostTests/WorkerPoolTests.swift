import Foundation
import Synchronization
import XCTest
import FipsArtifact
import FipsBLASBackend
import FipsHostModel
import FipsKernels
import FipsViT
import FipsTestSupport

/// The device worker pool: every index exactly once, nesting, shutdown, and
/// results that do not depend on the thread count.
final class WorkerPoolTests: XCTestCase {
    /// Per-index hit counters, atomic so a double run cannot hide in a lost update.
    final class Hits {
        let p: UnsafeMutablePointer<Atomic<Int>>
        let count: Int
        init(_ n: Int) {
            count = n
            p = .allocate(capacity: max(n, 1))
            for i in 0..<n { (p + i).initialize(to: Atomic(0)) }
        }
        deinit { p.deinitialize(count: count); p.deallocate() }
        func hit(_ i: Int) { p[i].wrappingAdd(1, ordering: .relaxed) }
        func all(_ expected: Int) -> Bool { (0..<count).allSatisfy { p[$0].load(ordering: .relaxed) == expected } }
    }

    func testEveryIndexRunsExactlyOnce() {
        for threads in [1, 2, 3, 8] {
            let pool = WorkerPool(threads: threads)
            XCTAssertEqual(pool.threads, threads)
            for schedule in [WorkerPool.Schedule.dynamic, .contiguous] {
                for count in [0, 1, 2, 7, 1000] {
                    let hits = Hits(count)
                    pool.parallelFor(count, schedule: schedule) { i in hits.hit(i) }
                    XCTAssertTrue(hits.all(1), "threads \(threads) \(schedule) count \(count)")
                }
            }
        }
    }

    func testContiguousScheduleReallyUsesTheWorkers() {
        // The caller runs block 0, a worker the last block: different threads.
        let pool = WorkerPool(threads: 2)
        var first = pthread_self(), last = pthread_self()
        withUnsafeMutablePointer(to: &first) { f in withUnsafeMutablePointer(to: &last) { l in
            pool.parallelFor(100, schedule: .contiguous) { i in
                if i == 0 { f.pointee = pthread_self() }
                if i == 99 { l.pointee = pthread_self() }
            }
        } }
        XCTAssertNotEqual(pthread_equal(first, pthread_self()), 0, "the caller takes part")
        XCTAssertEqual(pthread_equal(first, last), 0, "the second half ran on a worker")
    }

    func testRepeatedNestedAndConcurrentCalls() {
        let pool = WorkerPool(threads: 3)
        // Many small jobs back to back: the barrier must hold every time.
        let hits = Hits(37)
        for rep in 0..<20_000 { pool.parallelFor(1 + rep % 37) { i in hits.hit(i) } }
        var expected = [Int](repeating: 0, count: 37)
        for rep in 0..<20_000 { for i in 0..<(1 + rep % 37) { expected[i] += 1 } }
        XCTAssertEqual((0..<37).map { hits.p[$0].load(ordering: .relaxed) }, expected)

        // A parallelFor inside a body runs inline instead of deadlocking.
        let nested = Hits(4 * 5)
        pool.parallelFor(4) { i in pool.parallelFor(5) { j in nested.hit(i * 5 + j) } }
        XCTAssertTrue(nested.all(1))

        // Two threads sharing one pool: one gets the workers, the other runs inline.
        let shared = Hits(2 * 500)
        DispatchQueue.concurrentPerform(iterations: 2) { t in
            for _ in 0..<50 { pool.parallelFor(500) { i in shared.hit(t * 500 + i) } }
        }
        XCTAssertTrue(shared.all(50))
    }

    func testPoolsStartAndStopCleanly() {
        for round in 0..<200 {
            let pool = WorkerPool(threads: 1 + round % 5)
            if round % 2 == 0 {
                let hits = Hits(10)
                pool.parallelFor(10) { hits.hit($0) }
                XCTAssertTrue(hits.all(1))
            }
        }   // deinit joins every worker; an idle pool and a used one alike
        XCTAssertGreaterThanOrEqual(WorkerPool.defaultThreads, 1)
        XCTAssertEqual(WorkerPool(threads: 0).threads, 1)
        XCTAssertEqual(WorkerPool(threads: 100_000).threads, 256)
    }

    /// How many elements differ in any bit (0 when bit-identical).
    func differing(_ a: [Float], _ b: [Float]) -> Int {
        a.count != b.count ? max(a.count, b.count) : zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count
    }

    /// Row splits start on F32Gemm's 4-row tiles, so every element is computed
    /// exactly as the single-thread kernel computes it.
    func testPooledGemmIsBitIdenticalToTheKernel() {
        let K = 19, N = 10   // a k tail and a column edge
        let w = randomFloats(N * K, seed: 5), b = randomFloats(K * N, seed: 6), bias = randomFloats(N, seed: 7)
        for threads in [2, 3, 4] {
            let backend = PooledBackend(pool: WorkerPool(threads: threads), minMACsPerTask: 0)
            for M in [1, 2, 3, 4, 5, 7, 8, 13, 31, 64] {
                let a = randomFloats(M * K, seed: UInt64(M))
                var ref = [Float](repeating: 0, count: M * N), out = ref, ref2 = ref, out2 = ref
                a.withUnsafeBufferPointer { pa in w.withUnsafeBufferPointer { pw in b.withUnsafeBufferPointer { pb in
                    bias.withUnsafeBufferPointer { pbias in
                        let am = MatrixRef(pa.baseAddress!, rows: M, cols: K)
                        let wm = MatrixRef(pw.baseAddress!, rows: N, cols: K), bm = MatrixRef(pb.baseAddress!, rows: K, cols: N)
                        func o(_ p: UnsafeMutableBufferPointer<Float>) -> MutableMatrixRef<Float> {
                            MutableMatrixRef(p.baseAddress!, rows: M, cols: N)
                        }
                        ref.withUnsafeMutableBufferPointer { F32Gemm.multiplyTransposed(am, wm, bias: pbias.baseAddress, into: o($0)) }
                        out.withUnsafeMutableBufferPointer {
                            backend.multiplyTransposed(am, wm, bias: pbias.baseAddress, into: o($0), parallel: true)
                        }
                        ref2.withUnsafeMutableBufferPointer { F32Gemm.multiply(am, bm, bias: pbias.baseAddress, into: o($0)) }
                        out2.withUnsafeMutableBufferPointer {
                            backend.multiply(am, bm, bias: pbias.baseAddress, into: o($0), parallel: true)
                        }
                    } } } }
                XCTAssertEqual(differing(out, ref), 0, "a·wᵀ, \(threads) threads, M \(M)")
                XCTAssertEqual(differing(out2, ref2), 0, "a·b, \(threads) threads, M \(M)")
            }
        }
    }

    func forward<B: ComputeBackend>(_ model: ViTModel, backend: B, batch: Int) throws -> ([Float], [Float]) {
        let w = HostWeights(model)
        let c = model.config
        let ex = try ViTExecutor(config: c, backend: backend, maxBatch: batch, owner: AnyObjectBox(release: { _ = w }),
                                 lookup: { w.views[$0] })
        let input = randomFloats(batch * c.channels * c.imageSize * c.imageSize, seed: 3)
        var feats = [Float](repeating: 0, count: batch * c.tokenCount * c.dim)
        var logits = [Float](repeating: 0, count: batch * c.numClasses)
        ex.forward(batch: batch, images: input, features: &feats, logits: &logits)
        return (feats, logits)
    }

    func testExecutorIsBitIdenticalForEveryThreadCount() throws {
        // Batch 3: 15 token rows, so row splits are uneven and end in a
        // partial tile; 3 classes: a head narrower than one tile.
        let model = makeTinyModel(seed: 21, classes: 3)
        let ref = try forward(model, backend: PortableBackend(), batch: 3)
        XCTAssertTrue(ref.0.allSatisfy { $0.isFinite })
        for threads in [1, 2, 3, 4] {
            let pooled = PooledBackend(pool: WorkerPool(threads: threads), minMACsPerTask: 0)
            let out = try forward(model, backend: pooled, batch: 3)
            XCTAssertEqual(differing(out.0, ref.0), 0, "features, \(threads) threads")
            XCTAssertEqual(differing(out.1, ref.1), 0, "logits, \(threads) threads")
        }
    }

    var fipsRun: URL { TestPaths.products.appendingPathComponent("fips-run") }

    func testFipsRunFeaturesDoNotDependOnThreads() throws {
        let model = TestPaths.data.appendingPathComponent("dinov2_s.fips").path
        let chelsea = TestPaths.photos.appendingPathComponent("chelsea.png").path
        try TestPaths.require(model)
        try TestPaths.require(chelsea)
        let dir = TestPaths.temporaryDirectory()
        var features = [Data]()
        for threads in [1, 2] {
            let out = dir.appendingPathComponent("t\(threads)")
            let (status, _, err) = try runProcess(fipsRun, ["--model", model, "--threads", "\(threads)", "--verbose",
                                                            "--features-out", out.path, chelsea])
            XCTAssertEqual(status, 0, err)
            XCTAssertTrue(err.contains("threads \(threads) ("), err)
            features.append(try Data(contentsOf: out.appendingPathComponent("chelsea.npy")))
        }
        XCTAssertGreaterThan(features[0].count, 257 * 384 * 4, "[257, 384] float32 plus the header")
        XCTAssertTrue(features[0] == features[1], "--threads 1 and --threads 2 give different features")
    }

    func testFipsRunRejectsBadThreadCounts() throws {
        for bad in ["0", "257", "two", "-1"] {
            let (status, _, err) = try runProcess(fipsRun, ["--model", "m.fips", "--threads", bad, "x.png"])
            XCTAssertEqual(status, 2, bad)
            XCTAssertTrue(err.contains("--threads needs an integer from 1 to 256"), err)
        }
        let (status, out, _) = try runProcess(fipsRun, ["--help"])
        XCTAssertEqual(status, 0)
        XCTAssertTrue(out.contains("--threads <n>"))
    }
}
