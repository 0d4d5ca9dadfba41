import ArgumentParser
import Foundation
import FipsArtifact
import FipsLatency
import FipsViT

struct Latency: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict a .fips model's forward time on a device, from its profile or its board's roofline.",
        discussion: """
        Prices what each block stores (attention and MLP formats, FiPS rank and
        projection sparsity) with the kernel timings fips-profile measured on the
        device (--profile), or with the board file's roofline figures (--board)
        when there is no profile. The prediction is for one image (batch 1), the
        time fips-run reports as "ms". The total comes with an uncertainty derived
        from how well the latency model reproduces measurements it has: with a
        profile, its leave-one-out error over the profile's own GEMM timings;
        with a board, the roofline against each measured profile in
        --profiles-dir whose name is a board file (none: unknown).

        EXAMPLES:
          fips latency --profile profiles/x86-64.json --model data/dinov2_s.q8.fips
          fips latency --profile profiles/x86-64.json --threads 1 model.fips
          fips latency --board rpi5 --model model.fips --integer-nonlinear all --json
        """)

    @OptionGroup var modelArgument: ModelArgument
    var model: String { modelArgument.path }

    @Option(help: "A device profile written by fips-profile (profiles/NAME.json).")
    var profile: String?

    @Option(help: "A board name (boards/NAME.board) or path, priced by its roofline figures.")
    var board: String?

    @Option(help: "Worker threads (default: the profile's largest measured count, or the board's cores).")
    var threads: Int?

    @Option(name: .customLong("boards-dir"), help: "Directory of the board files (default: ./boards, next to the installed programs, the source tree, /usr/local/share/fips/boards; or $FIPS_BOARDS_DIR).")
    var boardsDirectory: String?

    @Option(name: .customLong("profiles-dir"), help: "Directory of measured profiles the roofline's uncertainty is checked against (with --board).")
    var profilesDirectory = "profiles"

    @Option(help: ArgumentHelp("Price the I-ViT integer non-linearities that fips-run --integer-nonlinear LIST runs: all, or softmax,gelu,layernorm together (profiles time the three at once, so a part of them cannot be priced).", valueName: "list"))
    var integerNonlinear: String?

    /// --integer-nonlinear: the list fips-run takes, all three or none.
    func integerNonlinearities() throws -> Bool {
        guard let list = integerNonlinear else { return false }
        var o = ExecutorOptions()
        if let bad = o.selectIntegerNonlinearities(list) {
            throw ValidationError("--integer-nonlinear: '\(bad)' is not softmax, gelu, layernorm or all")
        }
        guard o.softmax == .integer && o.gelu == .integer && o.layerNorm == .integer else {
            throw ValidationError("--integer-nonlinear \(list): profiles time softmax, GELU and LayerNorm together, so only all can be priced")
        }
        return true
    }

    func validate() throws { _ = try integerNonlinearities() }

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        guard (profile == nil) != (board == nil) else { throw ValidationError("give exactly one of --profile or --board") }
        let lm: LatencyModel
        var defaultThreads = 1
        var pairs: [(board: BoardDescription, profile: DeviceProfile)] = []
        do {
            if let p = profile {
                let d = try DeviceProfile.load(path: p)
                if d.functionalOnly {
                    FileHandle.standardError.write("fips latency: warning: \(p) is functional-only (made under emulation); its timings mean nothing\n".data(using: .utf8)!)
                }
                lm = LatencyModel(profile: d); defaultThreads = d.threads.max() ?? 1
            } else {
                let b = board!
                let desc = b.hasSuffix(".board") || b.contains("/") ? try BoardDescription.load(path: b)
                                                                    : try BoardDescription.load(name: b, boardsDirectory: boardsDirectory)
                lm = LatencyModel(board: desc); defaultThreads = desc.cores
                pairs = measuredBoardProfiles()
            }
        } catch { throw CommandFailure(description: "\(error)") }
        let artifact: Artifact
        do { artifact = try Artifact(path: model) } catch { throw CommandFailure(description: error.message) }
        var exec = try ModelExecution(artifact: artifact)
        exec.integerNonlinear = try integerNonlinearities()
        let t = threads ?? defaultThreads
        let p = lm.predict(exec, threads: t)
        let u = lm.uncertainty(exec, threads: t, measuredPairs: pairs)
        let basis = u?.basis ?? (profile != nil ? "a functional-only profile: its timings mean nothing"
                                                : "no measured profile of a board in \(profilesDirectory) to check the roofline against")
        if json {
            var s = "{\"model\": \"\(model)\", \"source\": \"\(p.source)\", \"threads\": \(t), \"fixed_ms\": \(fmt(p.fixedMs)), \"block_ms\": ["
            s += p.blockMs.map { fmt($0) }.joined(separator: ", ")
            s += "], \"total_ms\": \(fmt(p.totalMs)), \"uncertainty\": \(u.map { fmt($0.fraction) } ?? "null"), "
            s += "\"uncertainty_ms\": \(u.map { fmt($0.fraction * p.totalMs) } ?? "null"), \"uncertainty_basis\": \"\(basis)\"}"
            print(s)
            return
        }
        print("\(model): predicted forward time, \(p.source), \(t) thread\(t == 1 ? "" : "s")")
        print("block  attention  mlp                                   ms")
        for (i, b) in exec.blocks.enumerated() {
            let mlp: String
            switch b.mlp {
            case .dense(let d): mlp = "dense \(d.name)"
            case .fips(let r, let u, let v, let s):
                mlp = "fips r=\(r) U \(u.name) V \(v.name) s=\(String(format: "%.2f", s))"
            }
            print(pad(String(i), 5, left: true) + "  " + pad(b.attention.name, 9) + "  " + pad(mlp, 32) + String(format: "%8.2f", p.blockMs[i]))
        }
        print(pad("fixed (patch embedding, final norm\(exec.config.hasHead ? ", head" : ""))", 52) + String(format: "%8.2f", p.fixedMs))
        print(pad("total", 52) + String(format: "%8.2f ms", p.totalMs)
              + (u.map { String(format: " ± %.2f ms (±%.0f%%)", $0.fraction * p.totalMs, 100 * $0.fraction) } ?? " ± unknown"))
        print("uncertainty: \(basis)")
    }

    /// Measured (not functional-only) profiles in --profiles-dir that have a board file of the same name.
    func measuredBoardProfiles() -> [(board: BoardDescription, profile: DeviceProfile)] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: profilesDirectory)) ?? []
        return files.filter { $0.hasSuffix(".json") && $0 != "schema.json" }.sorted().compactMap { f in
            guard let prof = try? DeviceProfile.load(path: profilesDirectory + "/" + f), !prof.functionalOnly,
                  let b = try? BoardDescription.load(name: prof.name, boardsDirectory: boardsDirectory) else { return nil }
            return (b, prof)
        }
    }

    func pad(_ s: String, _ n: Int, left: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, n - s.count))
        return left ? fill + s : s + fill
    }

    func fmt(_ v: Double) -> String { String(format: "%.4f", v) }
}
