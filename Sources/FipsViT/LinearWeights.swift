import FipsArtifact
import FipsKernels

/// Matrix multiply used for float linear layers and attention. The device
/// build uses `PortableGemm`; the host plugs in OpenBLAS. A generic
/// parameter, not an existential, so it also compiles as Embedded Swift.
public protocol FloatGemm {
    func multiplyTransposed(_ a: MatrixRef<Float>, _ w: MatrixRef<Float>, bias: UnsafePointer<Float>?,
                            into out: MutableMatrixRef<Float>)
}

public struct PortableGemm: FloatGemm {
    public init() {}
    public func multiplyTransposed(_ a: MatrixRef<Float>, _ w: MatrixRef<Float>, bias: UnsafePointer<Float>?,
                                   into out: MutableMatrixRef<Float>) {
        F32Gemm.multiplyTransposed(a, w, bias: bias, into: out)
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
