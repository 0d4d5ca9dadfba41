"""Groups fips-run's per-function instruction counts (Benchmarks/qemu/insn_by_symbol.c)
into the parts of the work: integer GEMM, activation quantisation, softmax, ...

    import arm_attribution
    shares = arm_attribution.group(per_function)      # [(group, instructions)], GROUPS order

Symbols are the raw names in the static aarch64 fips-run: C names for the
kernels and the codecs, Embedded Swift mangled names ("$e11FipsKernels11ActivationsO11softmaxRows...")
for the rest, matched by substring. The first group with a matching pattern
wins; a function in none is "other". Each pattern says below why it is where
it is; `swift demangle` of the names in the top-symbol table of
arm_results.md shows what they are.
"""
import subprocess

GROUPS = [
    # The integer GEMM kernels of Sources/Device/CFipsKernels: the NEON
    # row loops (kneon_rows2_panel/kneon_rows_1 on Cortex-A72, SDOT
    # kdot_rows4_panel/kdot_rows_1 on A76),
    # their drivers and the tile decoders of the packed formats.
    ("integer GEMM", ["kneon_rows", "kdot_rows", "qg_gemm_", "fips_qgemm", "panel_weights",
                      "decode_q", "qg_decode_tile", "expand_sparse_tile"]),
    # Rows of activations to int8 with a scale per row (qgemm_arm.c /
    # qgemm_scalar.c) before every integer GEMM.
    ("activation quantisation", ["qg_quantize_", "fips_quantize_rows", "qg_row_scale"]),
    # Float softmax over the attention scores: on aarch64 the C of
    # activations_neon.c (fips_softmax_row_exp, and int8 attention's
    # fips_softmax_quantize_rows_neon, which also quantises the probabilities
    # for P·V); elsewhere FastMath.exp, called only by softmaxRows in this
    # model (geluTanh also calls it, but DINOv2 uses the erf GELU), and
    # SIMD8.max() only by softmaxRows' row maximum (the one .max() call in
    # Sources/Device).
    ("softmax", ["fips_softmax_", "softmaxRows", "Shiftmax", "8FastMathO3exp", "SIMDPsSF6ScalarRpzrlE3max"]),
    # The fp32 patch embedding: a 14x14 stride-14 convolution as a float GEMM
    # (F32Gemm, on aarch64 f32gemm_neon.c's fips_f32_gemm_nt_neon with its
    # static tile4x4 and dot_edge, is used for nothing else in an integer
    # model) and the executor's embed step (patch gather, position embedding).
    ("patch embedding", ["F32Gemm", "fips_f32_gemm_nt", "tile4x4", "dot_edge", "ExecutorC5embed"]),
    ("GELU", ["fips_gelu_erf", "geluErf", "geluTanh", "ShiftGELU"]),
    # PNG/JPEG decoding (libpng, zlib, libjpeg, linked statically) and
    # FipsImage's resize, crop and normalisation.
    ("image decode + resize", ["png_", "inflate", "adler32", "crc32_z", "zcalloc", "zcfree", "jpeg_", "jpeg",
                               "9FipsImage", "ResampleCoefficients", "Preprocessor"]),
    # What attention does besides its two GEMMs: V transposed, Q/K/V requantised
    # and packed into q8 tiles, the per-head loop.
    ("attention (non-GEMM)", ["integerAttention", "transposeV", "fips_transpose_f32", "packQ8Tiles", "Attention"]),
    ("LayerNorm", ["fips_layer_norm", "layerNorm", "LayerNorm"]),
]
OTHER = "other"


def group_of(name):
    for g, patterns in GROUPS:
        if any(p in name for p in patterns):
            return g
    return OTHER


def group(per_function):
    """[(group, instructions)] in GROUPS order, then other."""
    total = {g: 0 for g, _ in GROUPS}
    total[OTHER] = 0
    for name, n in per_function.items():
        total[group_of(name)] += n
    return list(total.items())


def demangle(names):
    """Readable names (swift demangle --simplified; C names pass through)."""
    try:
        p = subprocess.run(["swift", "demangle", "--simplified"], input="\n".join(names), capture_output=True,
                           text=True, check=True)
        out = p.stdout.splitlines()
        return out if len(out) == len(names) else list(names)
    except (OSError, subprocess.CalledProcessError):
        return list(names)
