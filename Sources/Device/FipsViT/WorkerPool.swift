import CFipsSys
import FipsKernels

/// Persistent worker threads (CFipsSys's fips_pool): `threads - 1` workers
/// created once, plus the calling thread, which takes part in every
/// `parallelFor`. Idle workers sleep on a futex, so a daemon that holds a
/// pool between requests uses no CPU. One `parallelFor` runs at a time; a
/// `parallelFor` called from inside a body (or from a second thread while
/// one runs) runs its indices on the calling thread, in order.
public final class WorkerPool {
    /// How indices are handed out.
    public enum Schedule {
        /// Each thread takes the next unclaimed index: for pieces of uneven cost.
        case dynamic
        /// Thread p of P runs the contiguous block [count·p/P, count·(p+1)/P).
        case contiguous
    }

    let pool: OpaquePointer
    /// Threads taking part in each `parallelFor`, the caller's included.
    public let threads: Int

    /// The CPUs this process may run on (affinity mask, cgroup cpuset).
    public static var defaultThreads: Int { Int(fips_cpu_count()) }

    /// `threads` is clamped to 1...256; if the OS refuses to start a thread
    /// the pool is smaller (see `threads`).
    public init(threads: Int = WorkerPool.defaultThreads) {
        let n = Int32(min(max(threads, 1), Int(FIPS_POOL_MAX_THREADS)))
        guard let p = fips_pool_create(n) else { fatalError("WorkerPool: out of memory") }
        pool = p
        self.threads = Int(fips_pool_threads(p))
    }

    deinit { fips_pool_destroy(pool) }

    /// Runs body(0..<count), spread over the pool; returns when all are done.
    public func parallelFor(_ count: Int, schedule: Schedule = .dynamic, _ body: (Int) -> Void) {
        if count <= 0 { return }
        if count == 1 || threads == 1 {
            for i in 0..<count { body(i) }
            return
        }
        // The closure never outlives this call (fips_pool_run is a barrier),
        // so the C side may hold a pointer to it for the call's duration.
        withoutActuallyEscaping(body) { escapable in
            var f = escapable
            withUnsafeMutablePointer(to: &f) { p in
                fips_pool_run(pool, Int64(count), workerPoolTrampoline, UnsafeMutableRawPointer(p),
                              schedule == .dynamic ? FIPS_POOL_DYNAMIC : FIPS_POOL_STATIC)
            }
        }
    }
}

/// Calls the Swift closure a `parallelFor` passed as the job's context.
private let workerPoolTrampoline: @convention(c) (UnsafeMutableRawPointer?, Int64) -> Void = { ctx, i in
    ctx.unsafelyUnwrapped.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(i))
}

/// The device's fp32 kernels (F32Gemm) on a worker pool: each GEMM's output
/// rows are split into contiguous chunks, one per thread.
///
/// Chunks start on multiples of four rows, F32Gemm's register tile, so every
/// output element goes through exactly the code path (4×4 tile or edge dot
/// product) and summation order it takes in the single-thread kernel: the
/// results are bit-identical for any thread count.
public struct PooledBackend: ComputeBackend {
    public let pool: WorkerPool
    /// A GEMM smaller than this many multiply-adds per extra thread is not
    /// split: waking a worker costs a few microseconds.
    public let minMACsPerTask: Int

    public init(pool: WorkerPool, minMACsPerTask: Int = 1 << 16) {
        self.pool = pool
        self.minMACsPerTask = max(0, minMACsPerTask)
    }

    public init(threads: Int = WorkerPool.defaultThreads) {
        self.init(pool: WorkerPool(threads: threads))
    }

    public var parallelism: Int { pool.threads }

    public func multiplyTransposed(_ a: MatrixRef<Float>, _ w: MatrixRef<Float>, bias: UnsafePointer<Float>?,
                                   into out: MutableMatrixRef<Float>, parallel: Bool) {
        splitRows(a, out, macsPerRow: w.rows * a.cols, parallel: parallel) { a, out in
            F32Gemm.multiplyTransposed(a, w, bias: bias, into: out)
        }
    }

    public func multiply(_ a: MatrixRef<Float>, _ b: MatrixRef<Float>, bias: UnsafePointer<Float>?,
                         into out: MutableMatrixRef<Float>, parallel: Bool) {
        splitRows(a, out, macsPerRow: b.cols * a.cols, parallel: parallel) { a, out in
            F32Gemm.multiply(a, b, bias: bias, into: out)
        }
    }

    public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        pool.parallelFor(count, body)
    }

    /// Runs `body` on one contiguous block of rows per task, blocks a
    /// multiple of 4 rows long (but the last).
    func splitRows(_ a: MatrixRef<Float>, _ out: MutableMatrixRef<Float>, macsPerRow: Int, parallel: Bool,
                   _ body: (MatrixRef<Float>, MutableMatrixRef<Float>) -> Void) {
        let M = a.rows
        let quads = (M + 3) / 4
        var tasks = parallel ? min(pool.threads, quads) : 1
        if minMACsPerTask > 0 { tasks = min(tasks, max(1, M * macsPerRow / minMACsPerTask)) }
        if tasks <= 1 { body(a, out); return }
        let perQuads = (quads + tasks - 1) / tasks
        tasks = (quads + perQuads - 1) / perQuads       // no empty trailing task
        let per = perQuads * 4
        pool.parallelFor(tasks, schedule: .contiguous) { t in
            let lo = t * per, hi = min(M, lo + per)
            guard lo < hi else { return }
            body(MatrixRef(a.row(lo), rows: hi - lo, cols: a.cols, stride: a.stride),
                 MutableMatrixRef(out.row(lo), rows: hi - lo, cols: out.cols, stride: out.stride))
        }
    }
}
