import ArgumentParser
import Foundation
import FipsArtifact
import FipsArtifactWriter
import FipsData
import enum FipsDeviceSupport.BuildInfo
import enum FipsDeviceSupport.ExitStatus
import func FipsDeviceSupport.parseByteCount
import func FipsDeviceSupport.parseDurationMicroseconds
import FipsCommandLine
import FipsHostModel
import FipsImport
import FipsKernels
import FipsLatency
import FipsPlan
import FipsTrain

@main
struct FipsPlanCommand: ParsableCommand {
    /// The kit's exit statuses (0, 2 usage, 3 model, file or no plan fits) instead of ArgumentParser's.
    static func main() { CommandLineMain.run(FipsPlanCommand.self, program: "fips-plan") }

    static let configuration = CommandConfiguration(
        commandName: "fips-plan",
        abstract: "Fit a ViT to a board: per block group, FiPS rank, projection sparsity and weight bits under a memory (and latency) budget.",
        discussion: """
        Memory = artifact bytes + the runtime's activation arena + fips-run's per-image
        buffers + the worst case of the inputs the plan accepts (one image of up to
        --max-pixels decoded and --max-input-bytes encoded, and fipsd's other
        --max-connections bodies), computed with the writer's, the executor's and
        the decoder's own functions. The limits are written into the artifact (the
        room left under the budget raises the encoded size), and fips-run and fipsd
        use them as their defaults. Each candidate's error is measured on the calibration
        images (MLP output error after SVD initialisation, pruning and quantisation;
        attention output error; quantisation as the build's: GPTQ from the
        calibration Hessians, or round-to-nearest with --rounding nearest), its
        latency predicted by the device profile (or the board's roofline figures).
        Every uniform setting that fits (the same choice in every group) is listed
        after the plan, best proxy first, and in plan.json. The choice per group is the exact optimum of a
        multiple-choice knapsack (DP over memory, Pareto sets on latency). Then the
        plan is compressed (FiPS reconstruction), quantised and written with plan.json.

        EXAMPLES:
          fips-plan --model data/dinov2_s.fips --calib fashion-mnist --board rpi5 --budget 20MB -o d20.fips
          fips-plan --model vit.onnx --calib photos/ --profile profiles/my-pi5.json --budget 50MB --latency 120ms -o model.fips
          fips-plan --model data/dinov2_s.fips --calib photos/ --board rpi4 --budget 16MB --dry-run
          fips-plan --random-vit-b16 --calib photos/ --board rpi5 --budget 50MB --dry-run
          fips-plan --random-vit-b16 --write-random vit_b16_random.fips
        """,
        version: BuildInfo.versionLine("fips-plan"))

    @Option(help: "The model: .fips (fp32), .onnx or .safetensors.") var model: String?
    @Flag(help: "Use a ViT-B/16-shaped backbone (86M parameters) with random weights instead of --model.")
    var randomVitB16 = false
    @Option(help: "Only write a random fp32 .fips to this path and stop: ViT-B/16 with --random-vit-b16, else a tiny ViT (width 64, 4 blocks).")
    var writeRandom: String?
    @Option(help: "Calibration images: a folder of JPEG/PNG, or 'fashion-mnist'.") var calib: String?
    @Option(help: "Device profile JSON from fips-profile.") var profile: String?
    @Option(help: "Board name (boards/NAME.board) or path to a .board file; its roofline figures price latency, and --budget may not exceed its RAM_MB minus OS_RESERVE_MB.")
    var board: String?
    @Option(help: "Directory of the board files (default: ./boards, next to the installed programs, the source tree, /usr/local/share/fips/boards; or $FIPS_BOARDS_DIR).") var boardsDir: String?
    @Option(help: "Memory budget: artifact + activation arena + run buffers + inputs + fipsd's camera (--camera), e.g. 50MB (10^6), 48MiB, 900kB.")
    var budget: String?
    @Option(help: "Latency limit per image, e.g. 120ms or 0.12s.") var latency: String?
    @Option(help: "Runtime threads on the board (fips-run --threads): the latency model and the arena (one kernel scratch per thread) use it. Default: the board's cores, or the profile's usable CPUs.")
    var threads: Int?
    @Option(help: "Largest decoded image the model must accept, WxH or a pixel count (a JPEG counts its DCT-reduced size: a 12 MP photo decodes at 500x375).")
    var maxPixels = "640x480"
    @Option(help: "Largest encoded image (file, HTTP body, stdin frame) the model must accept, e.g. 256KiB; the room the plan leaves is added.")
    var maxInputBytes = "256KiB"
    @Option(help: "fipsd's HTTP connections at once, each holding up to one body.") var maxConnections = 2
    @Option(help: "fipsd's camera capture size the budget counts (WxH: its 4 V4L2 buffers at 2 bytes a pixel and the RGB frame waiting to be classified), or 'none' for a model fipsd serves without --camera. fipsd uses it as its --camera-size and refuses a larger one.")
    var camera = "640x480"
    @Option(help: "Blocks per group (one shared basis each).") var groupSize = 4
    @Option(help: "MLP parameter budgets that set the FiPS ranks, comma-separated.") var mlpBudgets = "0.25,0.375,0.5,0.625,0.75"
    @Option(help: "Projection sparsities, comma-separated (sparse only at 8 bits: q8-sparse).") var sparsities = "0,0.5,0.75"
    @Option(help: "MLP weight bits to consider (8, 4, 3, 2).") var mlpBits = "8,4,3,2"
    @Option(help: "Attention weight bits to consider.") var attentionBits = "8,4"
    @Option(help: "Calibration images.") var calibImages = 32
    @Option(help: "Tokens recorded per calibration image (CLS included).") var tokensPerImage = 16
    @Option(help: "Reconstruction steps per FiPS group of the chosen plan.") var steps = 600
    @Option(help: "Token rows per reconstruction step.") var batchRows = 1024
    @Option(help: "Peak learning rate of the reconstruction.") var lr: Float = 3e-4
    @Option(help: "Weight rounding of the chosen plan: gptq or nearest.") var rounding = "gptq"
    @Option(help: "Fine-tune end to end by distillation from the original (fips finetune) for this many steps; 0: no fine-tuning. By default quantisation-aware, through the grids of the plan's bit-widths (see --finetune).")
    var finetuneSteps = 0
    @Option(help: "qat: train the quantised model through its integer grids (fips finetune --qat); float: train the compressed float model before quantising it (only when the plan has FiPS groups).")
    var finetune = "qat"
    @Option(help: "Fine-tuning images: 'fashion-mnist' or a folder (default: --calib).") var finetuneData: String?
    @Option(help: "Fine-tuning images used.") var finetuneImages = 6400
    @Option(help: "Fine-tuning images per step.") var finetuneBatch = 32
    @Option(help: "Fine-tuning peak learning rate.") var finetuneLr: Float = FinetuneOptions().learningRate
    @Option(help: "Fine-tuning loss terms joined by '+': features, cls, logits, ce (default: features+cls+logits when the model has a head, features+cls without one; on the 22 MB plan the logits term gives 78.55% against 77.70%, Benchmarks/finetune_results.md).")
    var finetuneLoss: String?
    @Option(help: "Host threads for calibration and compression.") var hostThreads = 2
    @Option(help: "Baseline mode: the K-th best (by the error proxy) uniform setting that fits — the same rank, sparsity and bits in every group — instead of the optimised plan.")
    var uniform: Int?
    @Flag(help: "Print the plan and stop (no compression, nothing written).") var dryRun = false
    @Option(name: .shortAndLong, help: "Output artifact; plan.json is written next to it (NAME.plan.json).") var output: String?

    func validate() throws {
        if writeRandom != nil { return }
        if (model == nil) == !randomVitB16 { throw ValidationError("give either --model or --random-vit-b16") }
        if calib == nil { throw ValidationError("missing --calib (a folder of images, or fashion-mnist)") }
        if (profile == nil) == (board == nil) { throw ValidationError("give exactly one of --profile and --board") }
        guard let b = budget else { throw ValidationError("missing --budget (e.g. 50MB)") }
        if parseByteCount(b, requireUnit: true) == nil {
            throw ValidationError("--budget: cannot read '\(b)'" + (Int(b) != nil ? ": give a unit (\(b)MB, \(b)MiB or \(b)M; a bare number would be bytes)" : " (e.g. 50MB, 48MiB, 48M, 900kB)"))
        }
        if let l = latency, parseDurationMicroseconds(l) == nil {
            throw ValidationError("--latency: cannot read '\(l)'" + (Int(l) != nil ? ": give a unit (\(l)ms or \(l)s)" : " (e.g. 120ms or 0.12s)"))
        }
        if !dryRun && output == nil { throw ValidationError("missing -o (or --dry-run)") }
        if let t = threads, t < 1 || t > 256 { throw ValidationError("--threads must be 1...256") }
        if !["gptq", "nearest"].contains(rounding) { throw ValidationError("--rounding must be gptq or nearest") }
        if !["qat", "float"].contains(finetune) { throw ValidationError("--finetune must be qat or float, not '\(finetune)'") }
        if let l = finetuneLoss {
            do { _ = try LossTerms.parse(l) } catch { throw ValidationError("--finetune-loss: \(error)") }
        }
        if finetuneSteps < 0 || finetuneImages < 1 || finetuneBatch < 1 {
            throw ValidationError("--finetune-steps must be >= 0, --finetune-images and --finetune-batch >= 1")
        }
        _ = try parseInput()
        _ = try list(mlpBudgets, "--mlp-budgets", Double.init)
        _ = try list(sparsities, "--sparsities", Double.init)
        for (text, flag) in [(mlpBits, "--mlp-bits"), (attentionBits, "--attention-bits")] {
            for b in try list(text, flag, Int.init) where !QuantFormat.denseBits.contains(b) {
                throw ValidationError("\(flag): \(b) is not one of \(QuantFormat.denseBitsText)")
            }
        }
    }

    /// --max-pixels, --max-input-bytes and --max-connections.
    func parseInput() throws -> InputLimits {
        let p = maxPixels.split(separator: "x").compactMap { Int($0) }
        let pixels = p.count == 2 ? p[0] * p[1] : (p.count == 1 ? p[0] : 0)
        guard p.allSatisfy({ $0 > 0 }), pixels > 0, pixels < 1 << 32 else {
            throw ValidationError("--max-pixels must be WxH (e.g. 640x480) or a pixel count under 2^32")
        }
        guard let bytes = parseByteCount(maxInputBytes), bytes > 0, bytes <= 64 << 20 else {
            throw ValidationError("--max-input-bytes: '\(maxInputBytes)' is not a size from 1 byte to 64MiB (e.g. 256KiB)")
        }
        guard (1...200).contains(maxConnections) else { throw ValidationError("--max-connections must be from 1 to 200") }
        let cam = try parseCamera(maxPixels: pixels)
        return InputLimits(maxPixels: pixels, maxInputBytes: bytes, maxConnections: maxConnections, budgetBytes: 0, camera: cam)
    }

    /// --camera: WxH (as fipsd's --camera-size takes it) or none. A camera frame is
    /// an input too: its decode and resize are counted within --max-pixels
    /// (`CameraMemory`), so a camera with more pixels is refused here.
    func parseCamera(maxPixels pixels: Int) throws -> PlannedCamera {
        if camera == "none" { return .noCamera }
        let p = camera.split(separator: "x").compactMap { Int($0) }
        guard p.count == 2, (1...16384).contains(p[0]), (1...16384).contains(p[1]) else {
            throw ValidationError("--camera must be WxH (e.g. 640x480, each side 1 to 16384) or none")
        }
        guard p[0] * p[1] <= pixels else {
            throw ValidationError("--camera \(camera) has \(p[0] * p[1]) pixels, more than --max-pixels \(pixels): "
                                  + "a camera frame is an input; raise --max-pixels to at least \(camera)")
        }
        return .size(width: p[0], height: p[1])
    }

    func list<T>(_ s: String, _ flag: String, _ f: (String) -> T?) throws -> [T] {
        let v = s.split(separator: ",").map { f(String($0).trimmingCharacters(in: .whitespaces)) }
        guard !v.isEmpty, !v.contains(where: { $0 == nil }) else { throw ValidationError("\(flag): cannot read '\(s)'") }
        return v.map { $0! }
    }

    /// One line and the kit's exit status: 3 (a model or file that cannot be used,
    /// or no plan fits) unless the caller says the command line is at fault (2).
    func fail(_ s: String, status: Int32 = ExitStatus.modelOrIO) -> Never {
        FileHandle.standardError.write(("fips-plan: " + s + "\n").data(using: .utf8)!)
        Foundation.exit(status)
    }

    /// The dense fp32 model to plan (or the random ViT-B/16) and its name in the report.
    func loadModel() -> (ViTModel, String) {
        if randomVitB16 { return (RandomViT.make(RandomViT.vitB16), "random ViT-B/16") }
        let path = model!
        let original: ViTModel
        do {
            original = try ModelImporter.loadArtifactOrImport(path: path)
        } catch { fail("\(path): \(error)") }
        for i in 0..<original.config.depth where original.isFactorised(block: i) {
            fail("\(path): block \(i) is already compressed; fips-plan needs the dense fp32 model")
        }
        return (original, path)
    }

    /// The latency model of `--profile` or `--board`, and the board's thread count.
    func loadLatencyModel() -> (LatencyModel, Int) {
        do {
            if let p = profile {
                let prof = try DeviceProfile.load(path: p)
                return (LatencyModel(profile: prof), prof.system.usableCpus)
            } else {
                let desc = try boardDescription(board!)
                return (LatencyModel(board: desc), desc.cores)
            }
        } catch { fail("\(error)") }
    }

    func boardDescription(_ b: String) throws -> BoardDescription {
        b.hasSuffix(".board") ? try BoardDescription.load(path: b) : try BoardDescription.load(name: b, boardsDirectory: boardsDir)
    }

    /// --budget against the board's RAM minus what its OS keeps, before any slow work.
    func checkBudgetFitsBoard() {
        guard let b = board else { return }
        do {
            if let why = try boardDescription(b).budgetRefusal(parseByteCount(budget!)!) { fail("--budget \(budget!): " + why, status: ExitStatus.usage) }
        } catch { fail("\(error)") }
    }

    func planOptions(threads: Int) throws -> PlanOptions {
        var o = PlanOptions(budgetBytes: parseByteCount(budget!)!)
        o.latencyMs = latency.flatMap { parseDurationMicroseconds($0) }.map { Double($0) / 1000 }
        o.threads = threads
        o.groupSize = groupSize
        o.mlpBudgets = try list(mlpBudgets, "--mlp-budgets", Double.init)
        o.sparsities = try list(sparsities, "--sparsities", Double.init)
        o.mlpBits = try list(mlpBits, "--mlp-bits", Int.init)
        o.attentionBits = try list(attentionBits, "--attention-bits", Int.init)
        o.input = try parseInput()
        o.gptqProxy = rounding == "gptq"
        return o
    }

    /// The baselines: every uniform setting (the same choice in every group) that fits, best proxy first;
    /// printed, and returned for the plan's JSON.
    func reportUniforms(_ uniformList: [Plan]) -> [[String: Any]] {
        func describe(_ g: GroupChoice) -> String {
            (g.mlp.rank > 0 ? "fips r\(g.mlp.rank)" + (g.mlp.sparsity > 0 ? " s\(g.mlp.sparsity)" : "") : "dense") + " \(g.mlpBits)/\(g.attentionBits)b"
        }
        print("uniform settings that fit: \(uniformList.count)")
        for (i, u) in uniformList.enumerated() {
            print(String(format: "  uniform %2d: %@  memory %d  error proxy %.4e  predicted %.2f ms", i + 1,
                         describe(u.chosen[0].choice), u.memory.totalBytes, u.totalError, u.predictedMs))
        }
        return uniformList.enumerated().map { i, u in
            ["k": i + 1, "setting": describe(u.chosen[0].choice), "memory_bytes": u.memory.totalBytes, "error": u.totalError,
             "predicted_ms": u.predictedMs]
        }
    }

    func run() throws {
        let onTerminal = isatty(2) != 0
        func progress(_ line: String) {
            if onTerminal { FileHandle.standardError.write(("\r\u{1b}[K" + line).data(using: .utf8)!) }
        }
        func endProgress() { if onTerminal { FileHandle.standardError.write("\r\u{1b}[K".data(using: .utf8)!) } }
        func note(_ s: String) { endProgress(); FileHandle.standardError.write((s + "\n").data(using: .utf8)!) }

        if let path = writeRandom {
            let m = RandomViT.make(randomVitB16 ? RandomViT.vitB16 : RandomViT.tiny)
            do { try ArtifactWriter.write(m, precision: .f32, to: path) } catch { fail("\(error)") }
            note("wrote \(path): random \(randomVitB16 ? "ViT-B/16" : "tiny ViT") backbone, \(ParameterCount(m).backbone) parameters")
            return
        }
        checkBudgetFitsBoard()
        let (original, modelName) = loadModel()
        let (latencyModel, defaultThreads) = loadLatencyModel()
        let threads = max(1, self.threads ?? defaultThreads)
        let o = try planOptions(threads: threads)

        let t0 = Date()
        let calibration: PlanPipeline.Calibration
        do {
            let images = try PlanPipeline.images(calib!, count: calibImages, config: original.config)
            var co = PlanPipeline.CalibrationOptions()
            co.images = calibImages; co.tokensPerImage = tokensPerImage; co.threads = hostThreads
            co.mlpHessians = rounding == "gptq"
            calibration = try PlanPipeline.calibrate(original, images: images, options: co)
        } catch { fail("\(calib!): \(error)") }
        note(String(format: "calibration: %d images, %d rows per block, %.1f s", calibration.images.count,
                    calibration.activations.inputs[0].shape[0], calibration.seconds))
        let plan: Plan
        let sens: SensitivityTable
        var uniformList = [Plan]()
        do {
            (plan, sens) = try PlanPipeline.plan(original, calibration: calibration, latency: latencyModel, options: o, uniform: uniform,
                                                 uniforms: { uniformList = $0 }, progress: progress)
        } catch let e as PlanError {
            fail(e.description)
        } catch { fail("\(error)") }
        note(String(format: "sensitivity: %d candidates per group measured in %.1f s", sens.mlp.first?.count ?? 0, sens.seconds))
        print("plan for \(modelName) (\(ParameterCount(original).backbone) parameters), \(plan.latencySource):")
        print(plan.table())
        let uniformJSON = reportUniforms(uniformList)
        var inputs: [String: Any] = ["model": modelName, "calib": calib!, "calib_images": calibration.images.count,
                                     "tokens_per_image": tokensPerImage, "group_size": groupSize, "threads": threads,
                                     "mlp_budgets": o.mlpBudgets, "sparsities": o.sparsities, "mlp_bits": o.mlpBits,
                                     "attention_bits": o.attentionBits, "steps": steps, "rounding": rounding,
                                     "mode": uniform.map { "uniform #\($0)" } ?? "plan"]
        if let p = profile { inputs["profile"] = p }
        if let b = board { inputs["board"] = b }
        if dryRun { return }

        var bo = PlanPipeline.BuildOptions()
        bo.steps = steps; bo.learningRate = lr; bo.batchRows = batchRows; bo.threads = hostThreads; bo.gptq = rounding == "gptq"
        var finetuneReport: FinetuneReport? = nil
        if finetuneSteps > 0 && finetune == "float" {
            bo.refine = { compressed in
                let (tuned, report) = try self.finetune(compressed, teacher: original, note: note)
                finetuneReport = report
                return tuned
            }
        } else if finetuneSteps > 0 {
            bo.refineQuantised = { bytes in
                let (tuned, report) = try self.finetuneQuantised(bytes, teacher: original, note: note)
                finetuneReport = report
                return tuned
            }
        }
        let built: (model: ViTModel, bytes: [UInt8], report: FipsCompressReport?)
        do {
            let r = try PlanPipeline.build(original, plan: plan, calibration: calibration, options: bo, progress: progress)
            built = (r.model, r.bytes, r.report)
        } catch { fail("\(error)") }
        endProgress()
        let artifact = built.bytes.count
        let total = artifact + plan.memory.runtimeBytes
        guard total <= o.budgetBytes else {
            fail("internal: the written artifact (\(artifact) bytes) exceeds the plan's \(plan.memory.artifactBytes); not written")
        }
        let limits = PlanMemory.stampedLimits(o.input, usedBytes: total, budgetBytes: o.budgetBytes)
        let stamped = ArtifactWriter.stampInputLimits(built.bytes, limits)
        let out = output!
        do { try ArtifactWriter.writeAtomically(stamped, to: out) } catch { fail("\(error)") }
        let jsonPath = (out.hasSuffix(".fips") ? String(out.dropLast(5)) : out) + ".plan.json"
        let measured: [String: Any] = ["written_artifact_bytes": artifact, "written_memory_bytes": total,
                                       "seconds": Date().timeIntervalSince(t0)]
        var json = plan.json(inputs: inputs, measured: measured)
        json["finetuned"] = finetuneJSON(finetuneReport, hasHead: original.config.hasHead)
        json["input_limits"] = limitsJSON(limits)
        json["uniform_settings_that_fit"] = uniformJSON
        do {
            let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: jsonPath))
        } catch { fail("\(jsonPath): \(error)") }
        print("wrote \(out): \(artifact) bytes (planned \(plan.memory.artifactBytes)\(plan.memory.artifactExact ? ", exact" : ", bound")); "
              + "memory \(total) of \(o.budgetBytes) bytes; \(jsonPath)")
        print("input limits (fips-run's and fipsd's defaults): \(limits.maxPixels) decoded pixels, \(limits.maxInputBytes) bytes encoded, "
              + "\(limits.maxConnections) fipsd connections, camera \(limits.camera?.text ?? "none")")
    }
}

/// plan.json's `input_limits`: what the artifact records for fips-run and fipsd.
func limitsJSON(_ l: InputLimits) -> [String: Any] {
    ["max_pixels": l.maxPixels, "max_input_bytes": l.maxInputBytes, "max_connections": l.maxConnections,
     "budget_bytes": l.budgetBytes, "camera": l.camera?.text ?? "none"]
}

typealias FipsCompressReport = FipsCompress.CompressionReport
import FipsCompress
