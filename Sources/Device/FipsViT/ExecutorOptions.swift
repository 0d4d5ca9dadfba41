import FipsKernels

/// How an executor runs what the artifact leaves open. The programs' flag
/// spellings are parsed elsewhere (IntegerNonlinearityNames.swift).
public struct ExecutorOptions {
    /// The integer GEMM kernel (a FIPS_QKERNEL_* id); nil: FIPS_KERNEL from
    /// the environment, else the fastest this CPU has.
    public var kernel: Int32?
    /// Q·Kᵀ and P·V in int8 (per-token scales, computed on the fly); nil: on
    /// when the model has packed integer weights.
    public var integerAttention: Bool?
    /// I-ViT integer versions of the non-linearities (FipsKernels'
    /// Shiftmax, ShiftGELU, IntegerLayerNorm) instead of the float ones.
    public var softmax: NonlinearityMode
    public var gelu: NonlinearityMode
    public var layerNorm: NonlinearityMode
    public init(kernel: Int32? = nil, integerAttention: Bool? = nil, softmax: NonlinearityMode = .float,
                gelu: NonlinearityMode = .float, layerNorm: NonlinearityMode = .float) {
        self.kernel = kernel
        self.integerAttention = integerAttention
        self.softmax = softmax
        self.gelu = gelu
        self.layerNorm = layerNorm
    }

    /// Any of the three non-linearities in its integer form.
    public var usesIntegerNonlinearities: Bool { softmax == .integer || gelu == .integer || layerNorm == .integer }
}
