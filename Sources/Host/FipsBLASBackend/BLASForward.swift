import COpenBLAS
import Dispatch
import FipsArtifact
import FipsHostModel
import FipsKernels
import FipsViT

/// OpenBLAS sgemm and Dispatch behind the executor's backend interface: the
/// host's fast fp32 forward pass is the same executor as the device's.
///
/// OpenBLAS itself runs single-threaded; this backend splits each GEMM's rows
/// and the attention heads over `threads` Dispatch workers. Letting OpenBLAS
/// thread internally left its workers spinning (sched_yield) while the
/// executor's own element-wise work ran, so two cores did the work of one.
public struct BLASBackend: ComputeBackend {
    public let threads: Int

    public init(threads: Int = 1) {
        self.threads = max(1, threads)
        openblas_set_num_threads(1)
    }

    public var parallelism: Int { threads }

    public func multiplyTransposed(_ a: MatrixRef<Float>, _ w: MatrixRef<Float>, bias: UnsafePointer<Float>?,
                                   into out: MutableMatrixRef<Float>, parallel: Bool) {
        splitRows(a, out, parallel: parallel) { a, out in
            BLASBackend.sgemm(a, w, transposed: true, bias: bias, into: out)
        }
    }

    public func multiply(_ a: MatrixRef<Float>, _ b: MatrixRef<Float>, bias: UnsafePointer<Float>?,
                         into out: MutableMatrixRef<Float>, parallel: Bool) {
        splitRows(a, out, parallel: parallel) { a, out in
            BLASBackend.sgemm(a, b, transposed: false, bias: bias, into: out)
        }
    }

    /// Runs `body` on one contiguous block of rows per worker (≥ 32 rows each).
    func splitRows(_ a: MatrixRef<Float>, _ out: MutableMatrixRef<Float>, parallel: Bool,
                   _ body: (MatrixRef<Float>, MutableMatrixRef<Float>) -> Void) {
        let M = a.rows
        let tasks = parallel ? min(threads, max(1, M / 32)) : 1
        if tasks <= 1 { body(a, out); return }
        let per = (M + tasks - 1) / tasks
        DispatchQueue.concurrentPerform(iterations: tasks) { t in
            let lo = t * per, hi = min(M, lo + per)
            guard lo < hi else { return }
            body(MatrixRef(a.row(lo), rows: hi - lo, cols: a.cols, stride: a.stride),
                 MutableMatrixRef(out.row(lo), rows: hi - lo, cols: out.cols, stride: out.stride))
        }
    }

    public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        if threads == 1 || count == 1 { for i in 0..<count { body(i) }; return }
        DispatchQueue.concurrentPerform(iterations: count, execute: body)
    }

    /// out = a·wᵀ (w stored [out, in]) or a·w (w stored [in, out]), plus bias.
    static func sgemm(_ a: MatrixRef<Float>, _ w: MatrixRef<Float>, transposed: Bool, bias: UnsafePointer<Float>?,
                      into out: MutableMatrixRef<Float>) {
        let M = a.rows, N = out.cols, K = a.cols
        if let b = bias {
            for m in 0..<M { out.row(m).update(from: b, count: N) }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transposed ? CblasTrans : CblasNoTrans, Int32(M), Int32(N), Int32(K), 1,
                    a.base, Int32(a.stride), w.base, Int32(w.stride), bias == nil ? 0 : 1,
                    out.base, Int32(out.stride))
    }
}

/// A host model's tensors copied into 64-byte aligned buffers and exposed as
/// `TensorView`s, so the same executor runs an in-memory `ViTModel`.
public final class HostWeights {
    public let views: [String: TensorView]
    private var buffers: [UnsafeMutableRawPointer] = []

    public init(_ model: ViTModel) {
        var v = [String: TensorView]()
        var bufs = [UnsafeMutableRawPointer]()
        for (name, t) in model.tensors {
            let bytes = 4 * t.count
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 4), alignment: 64)
            t.data.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: bytes) }
            bufs.append(p)
            v[name] = TensorView(name: name, dtype: .f32, shape: t.shape, data: UnsafeRawPointer(p),
                                 byteCount: bytes, scales: nil)
        }
        views = v
        buffers = bufs
    }
    deinit { buffers.forEach { $0.deallocate() } }
}

extension ViTExecutor where Backend == BLASBackend {
    /// fp32 forward on OpenBLAS over an in-memory model.
    public static func host(_ model: ViTModel, maxBatch: Int = 1, threads: Int = 1) throws -> ViTExecutor<BLASBackend> {
        let w = HostWeights(model)
        return try ViTExecutor(config: model.config, backend: BLASBackend(threads: threads), maxBatch: maxBatch,
                               owner: AnyObjectBox(release: { _ = w }), lookup: { w.views[$0] })
    }
}
