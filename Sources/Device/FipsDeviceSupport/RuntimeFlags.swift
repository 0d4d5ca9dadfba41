import FipsViT

/// The options of a program that runs a model and lets its user choose the
/// GEMM kernel and the integer non-linearities (fips-run, fipsd).
public protocol RuntimeChoiceOptions {
    /// `--kernel`: checked against this CPU by `selectKernel` once parsing is done.
    var kernel: String? { get set }
    /// `--integer-nonlinear`: which I-ViT integer non-linearities replace the float ones.
    var nonlinear: ExecutorOptions { get set }
}

extension Flag where Options: RuntimeChoiceOptions {
    /// `--kernel NAME`, spelled and explained the same in every program.
    public static var kernel: Flag {
        .value("--kernel", missing: "--kernel needs a name (scalar, avx2, avx512vnni, neon, neon-dotprod)") { o, v in
            o.kernel = v
            return nil
        }
    }

    /// `--integer-nonlinear LIST`, spelled and explained the same in every program.
    public static var integerNonlinear: Flag {
        .value("--integer-nonlinear", missing: "--integer-nonlinear needs softmax, gelu, layernorm (comma-separated) or all") { o, v in
            guard let bad = o.nonlinear.selectIntegerNonlinearities(v) else { return nil }
            return "--integer-nonlinear: '\(bad)' is not softmax, gelu, layernorm or all"
        }
    }
}
