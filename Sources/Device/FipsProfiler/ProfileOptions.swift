import CFipsSys
import FipsDeviceSupport

/// `fips-profile`: measures what the latency model needs on the device it
/// runs on and writes profiles/NAME.json (schema: profiles/schema.json,
/// fields: profiles/README.md). Device code: no Foundation; arguments
/// through `profileFlags` (FipsDeviceSupport's flag table), like fips-run.
public struct ProfileOptions {
    public var name: String? = nil
    public var output: String? = nil
    public var quick = false
    public var threads: Int? = nil
    public var maxSeconds: Double? = nil
    public var functionalOnly = false
}

/// The schema version this program writes (profiles/schema.json).
public let profileSchemaVersion = 1
let generatorName = "fips-profile 1"

public let profileUsage = """
USAGE: fips-profile [--name <name>] [-o <file>] [--quick] [--threads <n>] [--max-seconds <s>]
                    [--functional-only]

Measures this device for fips-plan's latency model and writes a JSON profile:
CPU model and features (AT_HWCAP/HWCAP2 on aarch64: asimddp, i8mm, sve; CPUID
on x86-64: avx2, avx512_vnni), cores and clusters, MemTotal/MemAvailable, the
cgroup memory limit, the page size; memory bandwidth (read and copy); the
integer GEMM (q8, q8-sparse at several sparsities, q4g32, q3g32, q2g32) and f32 GEMM
at the shapes a ViT runs (tokens 197 and 257, widths 384 and 768, FiPS ranks)
on 1..N threads; and, per ViT shape, everything in a block besides its linear
layers plus the fixed work (patch embedding, final LayerNorm), timed through
the runtime's own executor. Schema: profiles/schema.json; every field is
described in profiles/README.md.

Repetitions are bounded: each timing takes its share of --max-seconds (at least
one warm-up and three timed runs); when the time is spent the remaining, less
important timings are skipped and the profile says "truncated": true.

OPTIONS:
  --name <name>          the profile's name (default: the host name)
  -o, --output <file>    where to write it (default: profiles/<name>.json)
  --quick                a smaller grid (fewer ranks, only the ViT-S width, 1 and N
                         threads) with a 20 s default budget
  --threads <n>          measure 1..n threads (default: the CPUs this process may
                         use; above 4, only 1, 2, 4, ... and n)
  --max-seconds <s>      time budget of the whole run (default 60, --quick 20)
  --functional-only      run every code path once and mark the profile
                         "functional_only": true: its timings mean nothing (for
                         emulators such as qemu-aarch64, and CI)
  -h, --help             show this help

Progress goes to stderr when it is a terminal; nothing but the final line when piped.

EXAMPLES:
  fips-profile -o profiles/my-pi5.json
  fips-profile --name rpi5-8gb --threads 4
  fips-profile --quick --max-seconds 30
  qemu-aarch64-static build/rpi5/fips-profile --quick --functional-only -o /tmp/qemu.json
"""

let profileFlags = FlagTable<ProfileOptions>(
    defaults: ProfileOptions(),
    flags: [
        .value("--name", missing: "--name needs a name") { o, v in
            if v.isEmpty { return "--name needs a name" }
            for b in v.utf8 where !(b == 45 || b == 46 || b == 95 || (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)) {
                return "--name '\(v)': use letters, digits, '.', '-' and '_' only"
            }
            o.name = v
            return nil
        },
        .value("-o", missing: "-o needs a file path") { o, v in
            if v.isEmpty { return "-o needs a file path" }
            o.output = v
            return nil
        },
        .value("--output", missing: "--output needs a file path") { o, v in
            if v.isEmpty { return "--output needs a file path" }
            o.output = v
            return nil
        },
        .set("--quick") { $0.quick = true },
        .set("--functional-only") { $0.functionalOnly = true },
        .value("--threads", missing: "--threads needs an integer from 1 to 256") { o, v in
            guard let k = parseInt(v), k >= 1 && k <= 256 else { return "--threads needs an integer from 1 to 256, not '\(v)'" }
            o.threads = k
            return nil
        },
        .value("--max-seconds", missing: "--max-seconds needs a number of seconds") { o, v in
            var ok: Int32 = 0
            let s = v.withCString { fips_parse_double($0, &ok) }
            guard ok == 1, s > 0, s <= 86400 else { return "--max-seconds needs a positive number of seconds, not '\(v)'" }
            o.maxSeconds = s
            return nil
        },
    ],
    argument: { _, a in "unexpected argument '\(a)'" })
