import CFipsKernels
import FipsViT

/// The `--kernel` check of fips-run and fipsd: sets `options.kernel` to the
/// integer GEMM kernel named `name` (nil: leaves it, so FIPS_KERNEL or the
/// CPU's best applies), or returns the error message, without the program's name.
public func selectKernel(_ name: String?, into options: inout ExecutorOptions) -> String? {
    guard let name = name else { return nil }
    let k = name.withCString { fips_qgemm_kernel_by_name($0) }
    if k == -1 { return "--kernel: no kernel named '\(name)' (known: scalar, avx2, avx512vnni, neon, neon-dotprod)" }
    if k < 0 { return "--kernel: this CPU cannot run the \(name) kernel" }
    options.kernel = k
    return nil
}

/// A FIPS_QKERNEL_* id's name ("neon-dotprod"), or `unknown` for an id with none.
public func kernelName(_ k: Int32, unknown: String = "?") -> String {
    guard let p = fips_qgemm_kernel_name(k) else { return unknown }
    return String(cString: p)
}
