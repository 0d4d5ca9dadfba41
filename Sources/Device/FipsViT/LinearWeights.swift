import CFipsKernels
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
    /// out = a · b (+ bias), b stored [in, out] (the factors of a FiPS MLP).
    func multiply(_ a: MatrixRef<Float>, _ b: MatrixRef<Float>, bias: UnsafePointer<Float>?,
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
    public func multiply(_ a: MatrixRef<Float>, _ b: MatrixRef<Float>, bias: UnsafePointer<Float>?,
                         into out: MutableMatrixRef<Float>, parallel: Bool) {
        F32Gemm.multiply(a, b, bias: bias, into: out)
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
        /// Packed integer tiles (artifact v2). `actScale` is the calibrated
        /// per-tensor scale of the input; nil quantises each token on the fly.
        case packed(fips_qmatrix, actScale: UnsafePointer<Float>?)
    }
    public let storage: Storage
    public let outFeatures: Int
    public let inFeatures: Int
    public let bias: UnsafePointer<Float>?

    /// nil for encodings a dense linear layer cannot use (f32 CSR).
    /// `actScale` is a one-element f32 tensor (the calibrated input scale).
    public init?(_ t: TensorView, bias: TensorView?, actScale: TensorView? = nil) {
        outFeatures = t.shape[0]
        inFeatures = t.elementCount / t.shape[0]
        switch t.dtype {
        case .f32: storage = .f32(t.floats)
        case .i8RowScaled: storage = .int8(t.int8s, scales: t.scales!)
        case .q8, .q4g32, .q3g32, .q8sparse, .q2g32:
            let m = fips_qmatrix(format: t.dtype.packedFormat!.rawValue, rows: Int32(t.shape[0]), cols: Int32(t.shape[1]),
                                 data: t.data, scales: t.scales, offsets: t.tileOffsets, masks: t.tileMasks)
            var scale: UnsafePointer<Float>? = nil
            if let a = actScale, a.dtype == .f32, a.elementCount == 1, a.floats[0] > 0, a.floats[0].isFinite { scale = a.floats }
            storage = .packed(m, actScale: scale)
        case .f32CSR: return nil
        }
        self.bias = bias?.floats
    }

    /// Padded input width of the packed formats (multiples of 32).
    public var paddedInFeatures: Int { PackedShape.paddedCols(inFeatures) }

    public var isPacked: Bool {
        if case .packed = storage { return true }
        return false
    }

    public var isInt8: Bool {
        if case .int8 = storage { return true }
        return false
    }
}

/// One factor of a factorised MLP layer: the shared basis U [d, r] (dense)
/// or a projection V [r, m], dense or sparse (CSR).
public struct FactorWeights {
    public enum Storage {
        case f32(UnsafePointer<Float>)
        case csr(SparseMatrix)
    }
    public let storage: Storage
    public let rows: Int
    public let cols: Int

    public init?(_ t: TensorView) {
        guard t.shape.count == 2 else { return nil }
        rows = t.shape[0]
        cols = t.shape[1]
        switch t.dtype {
        case .f32: storage = .f32(t.floats)
        case .f32CSR:
            storage = .csr(SparseMatrix(rows: rows, cols: cols, rowStart: t.csrRowStart!, colIndex: t.csrColIndex!,
                                        values: t.floats))
        case .i8RowScaled, .q8, .q4g32, .q3g32, .q8sparse, .q2g32: return nil
        }
    }
}

/// The MLP of one block: two dense linear layers, or the FiPS form
/// fc1: (x·U₁)·V₁ + b₁ and fc2: (h·V₂ᵀ)·U₂ᵀ + b₂, where U₁ and U₂ are the
/// group's shared basis (per-layer bases for the SVD baseline).
public enum MLPWeights {
    case dense(fc1: LinearWeights, fc2: LinearWeights)
    case factorised(fc1U: FactorWeights, fc1V: FactorWeights, fc1Bias: UnsafePointer<Float>,
                    fc2U: FactorWeights, fc2V: FactorWeights, fc2Bias: UnsafePointer<Float>)
    /// The FiPS form with integer factors, each stored as a linear map
    /// [out, in]: fc1 = Vt(Ut(x)) + b₁, fc2 = U(V(h)) + b₂ (Ut = U₁ᵀ, Vt = V₁ᵀ;
    /// the biases ride on Vt and U).
    case lowRank(fc1Ut: LinearWeights, fc1Vt: LinearWeights, fc2V: LinearWeights, fc2U: LinearWeights)

    /// Widest intermediate (rank) the factorised form needs scratch for.
    public var maxRank: Int {
        switch self {
        case .dense: return 0
        case .factorised(let u1, _, _, let u2, _, _): return max(u1.cols, u2.cols)
        case .lowRank(let ut, _, let v, _): return max(ut.outFeatures, v.outFeatures)
        }
    }

    /// The linear maps of this MLP (for sizing scratch).
    public var linears: [LinearWeights] {
        switch self {
        case .dense(let a, let b): return [a, b]
        case .factorised: return []
        case .lowRank(let a, let b, let c, let d): return [a, b, c, d]
        }
    }
}
