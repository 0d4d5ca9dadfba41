import COpenBLAS
import FipsArtifact
import FipsKernels
import FipsViT

/// OpenBLAS sgemm behind the executor's GEMM interface: the host's fast
/// fp32 forward pass is the same executor with this backend.
public struct BLASGemm: FloatGemm {
    public init(threads: Int? = nil) {
        if let t = threads { openblas_set_num_threads(Int32(t)) }
    }
    public func multiplyTransposed(_ a: MatrixRef<Float>, _ w: MatrixRef<Float>, bias: UnsafePointer<Float>?,
                                   into out: MutableMatrixRef<Float>) {
        let M = a.rows, N = w.rows, K = a.cols
        if let b = bias {
            for m in 0..<M { out.row(m).update(from: b, count: N) }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(M), Int32(N), Int32(K), 1,
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

extension ViTExecutor where Gemm == BLASGemm {
    /// fp32 forward on OpenBLAS over an in-memory model.
    public static func host(_ model: ViTModel, maxBatch: Int = 1, threads: Int? = nil) throws -> ViTExecutor<BLASGemm> {
        let w = HostWeights(model)
        return try ViTExecutor(config: model.config, gemm: BLASGemm(threads: threads), maxBatch: maxBatch,
                               owner: AnyObjectBox(release: { _ = w }), lookup: { w.views[$0] })
    }
}
