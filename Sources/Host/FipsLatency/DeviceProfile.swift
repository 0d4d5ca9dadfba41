import Foundation

/// What `fips-profile` measured on a device: the JSON in profiles/NAME.json.
/// profiles/schema.json is the schema, profiles/README.md documents every
/// field and its unit. Times are milliseconds (medians), sizes bytes.
public struct DeviceProfile: Codable, Equatable {
    /// The only schema version this reader understands.
    public static let currentSchemaVersion = 1

    /// Always "fips-profile".
    public var schema: String
    public var schemaVersion: Int
    public var name: String
    /// Program and version that wrote the profile.
    public var generator: String
    /// Timings are meaningless (emulator, or a run asked not to measure).
    public var functionalOnly: Bool
    /// Made with --quick (a smaller grid, fewer repetitions).
    public var quick: Bool
    /// The time budget ran out and the remaining (least important) timings
    /// were skipped.
    public var truncated: Bool
    public var system: System
    public var kernels: Kernels
    public var memoryBandwidth: MemoryBandwidth
    /// Thread counts the timings were taken at.
    public var threads: [Int]
    /// Integer (and f32) GEMM timings: one linear layer as the runtime runs it.
    public var gemm: [GemmTiming]
    /// Everything in a transformer block except its linear layers, and the
    /// fixed work (patch embedding, final LayerNorm), per ViT shape.
    public var vit: [ViTTiming]
    /// Single non-GEMM operations (informational; the model uses `vit`).
    public var ops: [OpTiming]
    /// Seconds the measurement took.
    public var elapsedSeconds: Double

    public struct System: Codable, Equatable {
        /// uname machine: "x86_64", "aarch64".
        public var arch: String
        public var cpuModel: String
        /// CPU features the kernels care about, as /proc/cpuinfo spells them
        /// (x86: CPUID; aarch64: AT_HWCAP/AT_HWCAP2).
        public var features: [String]
        public var hwcap: UInt64?
        public var hwcap2: UInt64?
        public var onlineCpus: Int
        /// CPUs this process may run on (affinity mask).
        public var usableCpus: Int
        public var clusters: [Cluster]
        public var pageSize: Int
        public var memTotalBytes: Int64
        public var memAvailableBytes: Int64
        /// cgroup memory limit, null when there is none.
        public var cgroupMemoryLimitBytes: Int64?
        /// 1 or 2, null when no cgroup memory controller was found.
        public var cgroupVersion: Int?
    }

    public struct Cluster: Codable, Equatable {
        public var cpus: [Int]
        /// MIDR implementer:part ("0x41:0xd0b") on aarch64, null elsewhere.
        public var part: String?
        /// Core name when the part is known ("cortex-a76"), else the CPU model.
        public var core: String
        public var maxFreqKHz: Int?
    }

    public struct Kernels: Codable, Equatable {
        /// The integer GEMM kernel the runtime picks (fips_qgemm_best_kernel).
        public var best: String
        /// The kernel the timings were taken with (FIPS_KERNEL, else `best`).
        public var used: String
        public var supported: [String]
    }

    public struct MemoryBandwidth: Codable, Equatable {
        /// Sequential read, GB/s (10⁹ bytes), per thread count in `threads` order.
        public var readGBs: [Double]
        /// memcpy-style copy, GB/s counting bytes read plus written.
        public var copyGBs: [Double]
        public var bufferBytes: Int
    }

    public struct GemmTiming: Codable, Equatable {
        /// "q8", "q8-sparse", "q4g32", "q3g32", "q2g32" or "f32".
        public var format: String
        /// Fraction of zero weights (q8-sparse), 0 otherwise.
        public var sparsity: Double
        /// Activation rows (tokens), outputs, inputs: y[M,N] = x[M,K]·Wᵀ.
        public var m: Int
        public var n: Int
        public var k: Int
        public var threads: Int
        /// Median milliseconds of activation quantisation plus the GEMM.
        public var ms: Double
        public var runs: Int
    }

    public struct ViTTiming: Codable, Equatable {
        public var tokens: Int
        public var dim: Int
        public var heads: Int
        public var mlpDim: Int
        public var patchSize: Int
        /// "int8" or "f32" attention products.
        public var attention: String
        /// I-ViT integer softmax/GELU/LayerNorm.
        public var integerNonlinear: Bool
        public var threads: Int
        /// One block minus its four linear layers (LayerNorms, attention,
        /// softmax, GELU, residuals), ms.
        public var blockOtherMs: Double
        /// Patch embedding, position embedding, final LayerNorm, ms.
        public var fixedMs: Double
        public var runs: Int
    }

    public struct OpTiming: Codable, Equatable {
        /// "layernorm", "layernorm-int", "softmax", "softmax-int", "gelu",
        /// "gelu-int", "quantize-rows".
        public var op: String
        public var rows: Int
        public var cols: Int
        public var threads: Int
        public var ms: Double
    }

    enum CodingKeys: String, CodingKey {
        case schema, schemaVersion = "schema_version", name, generator, functionalOnly = "functional_only", quick, truncated
        case system, kernels, memoryBandwidth = "memory_bandwidth", threads, gemm, vit, ops
        case elapsedSeconds = "elapsed_seconds"
    }
}

extension DeviceProfile.System {
    enum CodingKeys: String, CodingKey {
        case arch, cpuModel = "cpu_model", features, hwcap, hwcap2, onlineCpus = "online_cpus", usableCpus = "usable_cpus"
        case clusters, pageSize = "page_size", memTotalBytes = "mem_total_bytes", memAvailableBytes = "mem_available_bytes"
        case cgroupMemoryLimitBytes = "cgroup_memory_limit_bytes", cgroupVersion = "cgroup_version"
    }
}
extension DeviceProfile.Cluster {
    enum CodingKeys: String, CodingKey { case cpus, part, core, maxFreqKHz = "max_freq_khz" }
}
extension DeviceProfile.MemoryBandwidth {
    enum CodingKeys: String, CodingKey { case readGBs = "read_gbs", copyGBs = "copy_gbs", bufferBytes = "buffer_bytes" }
}
extension DeviceProfile.ViTTiming {
    enum CodingKeys: String, CodingKey {
        case tokens, dim, heads, mlpDim = "mlp_dim", patchSize = "patch_size", attention
        case integerNonlinear = "integer_nonlinear", threads, blockOtherMs = "block_other_ms", fixedMs = "fixed_ms", runs
    }
}

/// Why a profile could not be read.
public struct DeviceProfileError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): not a usable fips-profile device profile: \(reason)" }
}

extension DeviceProfile {
    /// Reads and checks a profile. Errors name the file and, for a JSON that
    /// does not match the schema, the field (as a JSON path) and what is wrong.
    public static func load(path: String) throws -> DeviceProfile {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw DeviceProfileError(path: path, reason: "cannot read the file (\((error as NSError).localizedDescription))")
        }
        return try decode(data, path: path)
    }

    public static func decode(_ data: Data, path: String = "<profile>") throws -> DeviceProfile {
        // The version first, so a newer file says so instead of failing on a field.
        if let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
            if let s = obj["schema"] as? String, s != "fips-profile" {
                throw DeviceProfileError(path: path, reason: "\"schema\" is \"\(s)\", expected \"fips-profile\"")
            }
            if let v = obj["schema_version"] as? Int, v != currentSchemaVersion {
                throw DeviceProfileError(path: path, reason: "schema_version \(v) is not supported (this build reads version \(currentSchemaVersion)); re-run fips-profile from this release")
            }
        }
        let p: DeviceProfile
        do { p = try JSONDecoder().decode(DeviceProfile.self, from: data) } catch let e as DecodingError {
            throw DeviceProfileError(path: path, reason: describe(e))
        } catch {
            throw DeviceProfileError(path: path, reason: "\(error)")
        }
        if let problem = p.validate() { throw DeviceProfileError(path: path, reason: problem) }
        return p
    }

    /// nil when the profile is consistent enough to price a model with.
    public func validate() -> String? {
        if schema != "fips-profile" { return "\"schema\" is \"\(schema)\", expected \"fips-profile\"" }
        if schemaVersion != DeviceProfile.currentSchemaVersion { return "schema_version \(schemaVersion) is not supported" }
        if threads.isEmpty || threads.contains(where: { $0 < 1 }) { return "\"threads\" must list thread counts ≥ 1" }
        if gemm.isEmpty { return "\"gemm\" has no timings" }
        for (i, g) in gemm.enumerated() {
            if !["q8", "q8-sparse", "q4g32", "q3g32", "q2g32", "f32"].contains(g.format) { return "gemm[\(i)].format \"\(g.format)\" is unknown" }
            if g.m < 1 || g.n < 1 || g.k < 1 || g.threads < 1 { return "gemm[\(i)] has a non-positive size or thread count" }
            if !(g.ms.isFinite && g.ms >= 0) { return "gemm[\(i)].ms is not a non-negative number" }
            if !(g.sparsity >= 0 && g.sparsity < 1) { return "gemm[\(i)].sparsity must be in [0, 1)" }
        }
        if vit.isEmpty { return "\"vit\" has no timings" }
        return nil
    }

    static func describe(_ e: DecodingError) -> String {
        func path(_ c: [CodingKey]) -> String {
            var s = "$"
            for k in c { if let i = k.intValue { s += "[\(i)]" } else { s += "." + k.stringValue } }
            return s
        }
        switch e {
        case .keyNotFound(let k, let ctx): return "missing field \(path(ctx.codingPath + [k]))"
        case .typeMismatch(let t, let ctx): return "\(path(ctx.codingPath)) should be \(t): \(ctx.debugDescription)"
        case .valueNotFound(let t, let ctx): return "\(path(ctx.codingPath)) is null, should be \(t)"
        case .dataCorrupted(let ctx): return ctx.codingPath.isEmpty ? "not valid JSON (\(ctx.underlyingError.map { "\($0)" } ?? ctx.debugDescription))" : "\(path(ctx.codingPath)): \(ctx.debugDescription)"
        @unknown default: return "\(e)"
        }
    }
}
