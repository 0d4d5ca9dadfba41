import FipsArtifact
import FipsKernels

/// What the executor needs from the machine: a float matrix multiply (for
/// float linear layers and attention) and a way to run independent pieces of
/// work in parallel. The device build uses `PortableBackend`; the host plugs
/// in OpenBLAS and Dispatch. A generic parameter, not an existential, so it
/// also compiles as Embedded Swift.
public protocol ComputeBackend {
    /// How many pieces `parallelFor` runs at once; the executor sizes its
    /// per-task scratch and work split from it.
    var parallelism: Int { get }
    /// out = a · wᵀ (+ bias). `parallel: false` when the caller is already
    /// inside `parallelFor`.
    func multiplyTransposed(_ a: MatrixRef<Float>, _ w: MatrixRef<Float>, bias: UnsafePointer<Float>?,
                            into out: MutableMatrixRef<Float>, parallel: Bool)
    /// Runs body(0..<count), possibly concurrently; returns when all are done.
    func parallelFor(_ count: Int, _ body: (Int) -> Void)
}

/// The device's own kernels, one thread (the worker pool comes with the
/// integer runtime).
public struct PortableBackend: ComputeBackend {
    public init() {}
    public var parallelism: Int { 1 }
    public func multiplyTransposed(_ a: MatrixRef<Float>, _ w: MatrixRef<Float>, bias: UnsafePointer<Float>?,
                                   into out: MutableMatrixRef<Float>, parallel: Bool) {
        F32Gemm.multiplyTransposed(a, w, bias: bias, into: out)
    }
    public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        for i in 0..<count { body(i) }
    }
}

/// A linear layer's weight [out, in] in one of the artifact's encodings.
public struct LinearWeights {
    public enum Storage {
        case f32(UnsafePointer<Float>)
        case int8(UnsafePointer<Int8>, scales: UnsafePointer<Float>)
    }
    public let storage: Storage
    public let outFeatures: Int
    public let inFeatures: Int
    public let bias: UnsafePointer<Float>?

    public init(_ t: TensorView, bias: TensorView?) {
        outFeatures = t.shape[0]
        inFeatures = t.elementCount / t.shape[0]
        switch t.dtype {
        case .f32: storage = .f32(t.floats)
        case .i8RowScaled: storage = .int8(t.int8s, scales: t.scales!)
        }
        self.bias = bias?.floats
    }

    public var isInt8: Bool {
        if case .int8 = storage { return true }
        return false
    }
}
