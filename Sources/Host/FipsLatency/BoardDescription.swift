import Foundation

/// A board file (boards/NAME.board): how to build for the board and its
/// roofline figures, each with the `# source:` line it came from. The format
/// is docs/CROSS_BUILD.md's: KEY=value lines, '#' comment lines, values bare
/// or in double quotes; a `# source: ...` comment covers the KEY lines that
/// follow it up to the next comment block.
public struct BoardDescription: Equatable {
    public struct Cluster: Equatable {
        public var core: String
        public var cores: Int
        public var freqMHz: Double
        public var fp32MacsPerCyclePerCore: Double
        public var int8MacsPerCyclePerCore: Double
    }

    public var name: String
    public var description: String
    public var triple: String
    public var targetCPU: String
    public var cores: Int
    /// Clusters in the file's order (the first is the big one).
    public var clusters: [Cluster]
    public var freqMHz: Double
    /// The smallest RAM the board is sold with, MB.
    public var ramMB: Int
    public var ramVariantsMB: [Int]
    /// RAM the OS and its services keep (OS_RESERVE_MB), MB; 0 when the file does not say.
    public var osReserveMB: Int
    public var memoryBandwidthGBs: Double
    public var fp32MacsPerCyclePerCore: Double
    public var int8MacsPerCyclePerCore: Double
    public var features: [String]
    /// Every KEY=value of the file, unquoted.
    public var values: [String: String]
    /// For each key, the text of the `# source:` line covering it (without
    /// "source:"), when there is one.
    public var sources: [String: String]

    /// The figures a board file must give a `# source:` for.
    public static let figureKeys = [
        "CORES", "CLUSTERS", "CLUSTER_CPUS", "CLUSTER_CORES", "FREQ_MHZ", "CLUSTER_FREQ_MHZ", "RAM_MB",
        "RAM_MB_VARIANTS", "OS_RESERVE_MB", "MEM_BW_GBS", "FP32_MACS_PER_CYCLE_PER_CORE", "INT8_MACS_PER_CYCLE_PER_CORE",
        "CLUSTER_FP32_MACS_PER_CYCLE_PER_CORE", "CLUSTER_INT8_MACS_PER_CYCLE_PER_CORE", "FEATURES",
    ]

    /// True when the board's CPU has the int8 dot-product instructions the
    /// fast kernels use (asimddp / avx512_vnni) — for the roofline.
    public var hasDotProduct: Bool { features.contains("asimddp") || features.contains("avx512_vnni") }

    /// Where `--board NAME` looks for NAME.board, first match wins: $FIPS_BOARDS_DIR;
    /// ./boards; an installed kit's share folder next to the program
    /// (<bin>/../share/fips/boards); the repository the program was built in
    /// (the folder above .build/ holding boards/ and Package.swift); then
    /// /usr/local/share/fips/boards and /usr/share/fips/boards. So `--board rpi5`
    /// works from any directory, not only from the repository root.
    public static func searchPath() -> [String] {
        var dirs: [String] = []
        if let env = ProcessInfo.processInfo.environment["FIPS_BOARDS_DIR"], !env.isEmpty { dirs.append(env) }
        dirs.append("boards")
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        dirs.append(exe.appendingPathComponent("../share/fips/boards").standardized.path)
        var up = exe
        for _ in 0..<5 {
            if FileManager.default.fileExists(atPath: up.appendingPathComponent("Package.swift").path) {
                dirs.append(up.appendingPathComponent("boards").path)
                break
            }
            up = up.deletingLastPathComponent()
        }
        dirs += ["/usr/local/share/fips/boards", "/usr/share/fips/boards"]
        return dirs
    }

    /// NAME.board from `boardsDirectory`, or from the first folder of `searchPath()` that has it.
    public static func load(name: String, boardsDirectory: String? = nil) throws -> BoardDescription {
        let dirs = boardsDirectory.map { [$0] } ?? searchPath()
        for d in dirs where FileManager.default.fileExists(atPath: d + "/" + name + ".board") {
            return try load(path: d + "/" + name + ".board")
        }
        var known = Set<String>()
        for d in dirs {
            for f in (try? FileManager.default.contentsOfDirectory(atPath: d)) ?? [] where f.hasSuffix(".board") { known.insert(String(f.dropLast(6))) }
        }
        throw BoardError(path: name, reason: "no such board '\(name)' in \(dirs.joined(separator: ", "))"
                         + (known.isEmpty ? "" : " (boards: \(known.sorted().joined(separator: ", ")))"))
    }

    public static func load(path: String) throws -> BoardDescription {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw BoardError(path: path, reason: "cannot read the file")
        }
        return try parse(text, path: path)
    }

    public static func parse(_ text: String, path: String = "<board>") throws -> BoardDescription {
        var values = [String: String](), sources = [String: String]()
        var source: String? = nil
        var inComments = false
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw)
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                if !inComments { source = nil; inComments = true }
                let body = line.dropFirst().trimmingCharacters(in: .whitespaces)
                if body.hasPrefix("source:") { source = body.dropFirst(7).trimmingCharacters(in: .whitespaces) }
                continue
            }
            inComments = false
            guard let eq = line.firstIndex(of: "="), line[line.startIndex..<eq].allSatisfy({ $0.isUppercase || $0.isNumber || $0 == "_" }),
                  line.first!.isUppercase else {
                throw BoardError(path: path, reason: "line \(n + 1): cannot parse '\(line)' (KEY=value expected)")
            }
            let key = String(line[..<eq])
            var value = String(line[line.index(after: eq)...])
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            values[key] = value
            if let s = source { sources[key] = s }
        }
        func need(_ k: String) throws -> String {
            guard let v = values[k], !v.isEmpty else { throw BoardError(path: path, reason: "missing \(k)") }
            return v
        }
        func number(_ k: String) throws -> Double {
            let v = try need(k)
            guard let d = Double(v), d > 0 else { throw BoardError(path: path, reason: "\(k)=\(v) is not a positive number") }
            return d
        }
        func list(_ k: String) -> [String] { (values[k] ?? "").split(separator: ",").map { String($0) } }
        func numbers(_ k: String, count: Int, fallback: Double) throws -> [Double] {
            let l = list(k)
            if l.isEmpty { return Array(repeating: fallback, count: count) }
            guard l.count == count else { throw BoardError(path: path, reason: "\(k) lists \(l.count) values for \(count) clusters") }
            return try l.map { s in
                guard let d = Double(s), d > 0 else { throw BoardError(path: path, reason: "\(k): '\(s)' is not a positive number") }
                return d
            }
        }
        let ramMB = Int(try number("RAM_MB"))
        let reserve = Int(values["OS_RESERVE_MB"] ?? "0") ?? -1
        guard reserve >= 0, reserve < ramMB else {
            throw BoardError(path: path, reason: "OS_RESERVE_MB=\(values["OS_RESERVE_MB"] ?? "") is not a whole number of MB below RAM_MB=\(ramMB)")
        }
        let cores = Int(try number("CORES"))
        let clusterCount = Int(values["CLUSTERS"] ?? "1") ?? 1
        let freq = try number("FREQ_MHZ")
        let fp32 = try number("FP32_MACS_PER_CYCLE_PER_CORE")
        let int8 = try number("INT8_MACS_PER_CYCLE_PER_CORE")
        let cpus = list("CLUSTER_CPUS")
        let clusterCores = try numbers("CLUSTER_CORES", count: clusterCount, fallback: Double(cores / max(1, clusterCount)))
        let clusterFreq = try numbers("CLUSTER_FREQ_MHZ", count: clusterCount, fallback: freq)
        let clusterFP32 = try numbers("CLUSTER_FP32_MACS_PER_CYCLE_PER_CORE", count: clusterCount, fallback: fp32)
        let clusterInt8 = try numbers("CLUSTER_INT8_MACS_PER_CYCLE_PER_CORE", count: clusterCount, fallback: int8)
        var clusters = [Cluster]()
        for i in 0..<clusterCount {
            clusters.append(Cluster(core: i < cpus.count ? cpus[i] : try need("TARGET_CPU"), cores: Int(clusterCores[i]),
                                    freqMHz: clusterFreq[i], fp32MacsPerCyclePerCore: clusterFP32[i],
                                    int8MacsPerCyclePerCore: clusterInt8[i]))
        }
        if clusters.reduce(0, { $0 + $1.cores }) != cores {
            throw BoardError(path: path, reason: "CLUSTER_CORES add up to \(clusters.reduce(0) { $0 + $1.cores }), not CORES=\(cores)")
        }
        return BoardDescription(
            name: try need("NAME"), description: values["DESCRIPTION"] ?? "", triple: try need("TRIPLE"),
            targetCPU: try need("TARGET_CPU"), cores: cores, clusters: clusters, freqMHz: freq,
            ramMB: ramMB, ramVariantsMB: list("RAM_MB_VARIANTS").compactMap { Int($0) }, osReserveMB: reserve,
            memoryBandwidthGBs: try number("MEM_BW_GBS"), fp32MacsPerCyclePerCore: fp32, int8MacsPerCyclePerCore: int8,
            features: list("FEATURES"), values: values, sources: sources)
    }

    /// The bytes one process may plan for: RAM_MB minus OS_RESERVE_MB. A board
    /// file's MB are the RAM chips' binary megabytes (a "512 MB" Pi has 2^29 bytes).
    public var processBytes: Int { (ramMB - osReserveMB) << 20 }

    /// nil when a memory budget of `budgetBytes` fits what the board leaves a
    /// process; else the refusal, naming the board's RAM and the OS's share:
    /// a plan the board cannot hold is worse than no plan.
    public func budgetRefusal(_ budgetBytes: Int) -> String? {
        if budgetBytes <= processBytes { return nil }
        return "budget \(budgetBytes) bytes exceeds what \(name) leaves a process: RAM \(ramMB) MB (RAM_MB) minus \(osReserveMB) MB "
            + "the OS needs (OS_RESERVE_MB) = \(processBytes) bytes"
    }

    /// Figure keys present in the file without a `# source:` line covering them.
    public var unsourcedFigures: [String] {
        BoardDescription.figureKeys.filter { values[$0] != nil && (sources[$0] ?? "").isEmpty }
    }
}

public struct BoardError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}
