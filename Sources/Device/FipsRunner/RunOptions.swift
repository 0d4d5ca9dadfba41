import FipsDeviceSupport
import FipsImage
import FipsViT

/// `fips-run`: classify (or embed) images with a `.fips` model using the
/// device kernels only. Parsed by `runFlags` (FipsDeviceSupport's flag table).
public struct RunOptions: RuntimeChoiceOptions {
    public var model: String = ""
    public var topK: Int = 5
    /// --top-k was given: refused for a model without a head (it would print nothing it asked for).
    public var topKGiven = false
    /// Print the CLS embedding in each JSON line.
    public var embedding = false
    public var featuresOut: String? = nil
    /// nil: the model's planned limit, else 8 MP (`PlannedLimits`).
    public var maxPixels: Int? = nil
    /// nil: the model's planned limit, else 64 MiB.
    public var maxInputBytes: Int? = nil
    /// Decode JPEGs at full size even when a reduced DCT decode would do
    /// (for comparing the two: Benchmarks/decode_speed.py).
    public var fullDecode = false
    public var verbose = false
    /// Threads for the fp32 kernels; nil: the CPUs this process may use.
    public var threads: Int? = nil
    /// Integer GEMM kernel by name; nil: FIPS_KERNEL, else the CPU's best.
    public var kernel: String? = nil
    /// The non-linearities' forms (`--integer-nonlinear`).
    public var nonlinear = ExecutorOptions()
    /// Forward passes per image when benchmarking (nil: one, timed as usual).
    public var benchRuns: Int? = nil
    /// With --bench: each block's time over the runs (p50/p90/p99) and the cold start.
    public var perBlock = false
    public var images: [String] = []
}

public let runUsage = """
USAGE: fips-run --model <model.fips> [--top-k <k>] [--embedding] [--features-out <dir>] [--max-pixels <n>] [--max-input-bytes <size>]
                [--full-decode]
                [--threads <n>] [--kernel <name>] [--integer-nonlinear <list>] [--bench <runs> [--per-block]]
                [--verbose] <image> ...

Runs a .fips model on JPEG/PNG images with the device kernels: fp32 weights
(version 1 or 2), or packed 8/4/3-bit weights (version 2, from `fips quantize`
or `--bits`) on the integer GEMM kernels with int8 activations and int32
accumulation. Prints one JSON line per image:
  {"image": ..., "ms": <decode + preprocess + forward>, "decode_ms": ..., "forward_ms": ...,
   "top": [{"label": ..., "score": ...}, ...]}
(with --bench N, forward_ms is the median of N passes, beside forward_min_ms and forward_max_ms);
or, for a backbone without a classification head, "cls_norm": <L2 norm of the CLS feature>;
with --embedding, also "embedding": [<dim floats>], the image's CLS feature: the
way to use a backbone (retrieval, nearest neighbours against labelled examples;
`fips head` trains a head on them).
A bad image prints one error line on stderr naming the file; the others are
still processed, and the exit status is 1 (2: a bad command line, 3: the model
cannot be read or an output written).

OPTIONS:
  --model <path>         the model artifact (from `fips import` or `fips compress`)
  --top-k <k>            labels to print per image (default 5); refused for a model
                         without a classification head
  --embedding            add "embedding": the CLS token's final LayerNorm output
  --features-out <dir>   also write the final LayerNorm output of each image to
                         <dir>/<image stem>.npy (float32, [tokens, dim])
  --max-pixels <n>       refuse images with more pixels (default: the model's planned limit,
                         else 8000000); a JPEG is decoded
                         at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling) when its
                         shorter side stays at least the model's resize size, and counts
                         at that size; a progressive JPEG may use 3 bytes per allowed pixel
                         for libjpeg's whole-image buffer
  --max-input-bytes <size> refuse image files larger than this, e.g. 8M (default: the
                         model's planned limit, else 64M). fips-plan writes both limits into the
                         model so that one image's memory stays within its budget; a
                         larger value prints a warning that the budget no longer holds
  --full-decode          decode JPEGs at full size (slower, more memory; for comparison)
  --threads <n>          worker threads, 1 to 256 (default: the CPUs this process may
                         use: the affinity mask, so `taskset -c 0,1` means 2); the
                         results are bit-identical for every thread count
  --kernel <name>        integer GEMM kernel: scalar, avx2, avx512vnni, neon, neon-dotprod
                         (default: FIPS_KERNEL, else the fastest this CPU runs); every
                         kernel gives bit-identical results
  --integer-nonlinear <list>
                         I-ViT integer versions of softmax, gelu, layernorm (comma-
                         separated, or all) instead of the float ones
  --bench <runs>         run each image <runs> times and report the median, min and max
                         forward time ("ms" is then the median)
  --per-block            with --bench: after each image's line, one line per block (the
                         patch embedding, each block, the final norm and head) with its
                         p50/p90/p99 forward time over the runs; the image line gains
                         "cold_start_ms" (from the program's start: model map, decode and
                         preprocessing, first forward pass; the first image that ran)
  --verbose              print model, kernel, thread and memory figures on stderr:
                         artifact + arena + run buffers + the inputs' worst case at the
                         limits = the bound (and the plan's budget when it has one);
                         per image, its decoded size and the decode and preprocessing times
  -h, --help             show this help

EXAMPLES:
  fips-run --model dinov2_s.fips photos/chelsea.png photos/coffee.png
  fips-run --model classifier.fips --top-k 3 --features-out feats/ frame.jpg
  fips-run --model dinov2_s.q8.fips --embedding photos/*.jpg
  fips-run --model dinov2_s.fips --threads 2 --verbose photos/chelsea.png
  fips-run --model dinov2_s.q8.fips --threads 2 --bench 20 photos/chelsea.png
  FIPS_KERNEL=scalar fips-run --model fips33.q4.fips --integer-nonlinear all frame.jpg
"""

/// The pool's own limit (FIPS_POOL_MAX_THREADS).
let maxThreads = 256

let runFlags = FlagTable<RunOptions>(
    defaults: RunOptions(),
    flags: [
        .value("--model", missing: "--model needs a path") { o, v in o.model = v; return nil },
        .integer("--top-k", in: 1...Int.max, error: "--top-k needs a positive integer") { o, k in o.topK = k; o.topKGiven = true },
        .set("--embedding") { $0.embedding = true },
        .value("--features-out", missing: "--features-out needs a directory") { o, v in o.featuresOut = v; return nil },
        .integer("--max-pixels", in: 1...Int.max, error: "--max-pixels needs a positive integer") { o, k in o.maxPixels = k },
        .bytes("--max-input-bytes", in: 1...(1 << 40), error: "--max-input-bytes needs a positive size (e.g. 8M, 500kB, 4096)") { o, k in o.maxInputBytes = k },
        .set("--full-decode") { $0.fullDecode = true },
        .value("--threads", missing: "--threads needs an integer from 1 to \(maxThreads)") { o, v in
            guard let k = parseInt(v), k >= 1 && k <= maxThreads else {
                return "--threads needs an integer from 1 to \(maxThreads), not '\(v)'"
            }
            o.threads = k
            return nil
        },
        .kernel,
        .integerNonlinear,
        .integer("--bench", in: 1...100_000, error: "--bench needs a run count from 1 to 100000") { o, k in o.benchRuns = k },
        .set("--per-block") { $0.perBlock = true },
        .set("--verbose", "-v") { $0.verbose = true },
    ],
    loneDashIsArgument: true,
    argument: { o, a in o.images.append(a); return nil },
    finish: { o in
        if o.model.isEmpty { return "missing --model" }
        if o.images.isEmpty { return "no images given" }
        if o.perBlock && o.benchRuns == nil { return "--per-block needs --bench <runs>" }
        return nil
    })
