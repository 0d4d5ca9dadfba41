import Foundation
import FipsArtifact
import FipsArtifactWriter
import FipsCompress
import FipsData
import FipsHostModel
import FipsLatency
import FipsQuantize

/// Calibration, sensitivities, the plan, and the compressed model it asks for.
public enum PlanPipeline {
    public struct CalibrationOptions {
        public var images = 32
        public var tokensPerImage = 16
        public var threads = 2
        public var seed: UInt64 = 0
        /// Also collect each MLP's input and hidden Hessians (GPTQ in the error proxy).
        public var mlpHessians = true
        public init() {}
    }

    public struct Calibration {
        public var images: any ImageSet
        public var activations: MLPCalibration
        public var attention: [String: InputStatistics]
        /// Per block, when collected: the MLP's input and hidden Hessians over every calibration token.
        public var mlpHessians: [Sensitivity.MLPHessians]?
        public var seconds: Double
    }

    /// Calibration images named by `--calib`: 'fashion-mnist' (training images after the first 200
    /// per class) or a folder of JPEG/PNG.
    public static func images(_ calib: String, count: Int, config: ViTConfig) throws -> any ImageSet {
        if calib == "fashion-mnist" {
            let ds = try FashionMNIST.load(split: .train)
            return ImageSubset(ds, indices: ds.calibrationIndices(count: count, skipPerClass: 200))
        }
        let folder = try ImageFolder.open(calib, config: config)
        guard folder.count > 0 else { throw PlanError.calibration("\(calib): no decodable images") }
        return ImageSubset(folder, indices: Array(0..<min(folder.count, count)))
    }

    public static func calibrate(_ model: ViTModel, images: any ImageSet, options o: CalibrationOptions) throws -> Calibration {
        let t0 = Date()
        var rec = CalibrationRecorder.Options()
        rec.tokensPerImage = o.tokensPerImage; rec.seed = o.seed; rec.threads = o.threads
        let (acts, _) = try CalibrationRecorder.record(model, images: images, options: rec, progressLabel: "calibration: MLP activations")
        var p = CalibrationPass.Options()
        p.threads = o.threads
        p.histogramBins = 256
        let mlp = o.mlpHessians
        p.layers = { $0.hasSuffix("attn.qkv") || $0.hasSuffix("attn.proj") || (mlp && ($0.hasSuffix("mlp.fc1") || $0.hasSuffix("mlp.fc2"))) }
        var stats = try CalibrationPass.run(model, images: images, options: p,
                                            progressLabel: mlp ? "calibration: attention and MLP inputs" : "calibration: attention inputs")
        var hessians: [Sensitivity.MLPHessians]? = nil
        if mlp {
            hessians = try (0..<model.config.depth).map { b in
                let n1 = TensorNames.block(b, "mlp.fc1"), n2 = TensorNames.block(b, "mlp.fc2")
                guard let s1 = stats[n1], let s2 = stats[n2] else { throw PlanError.calibration("no statistics for \(n1)/\(n2)") }
                return Sensitivity.MLPHessians(input: s1.hessian, hidden: s2.hessian)
            }
            for k in Array(stats.keys) where k.hasSuffix("mlp.fc1") || k.hasSuffix("mlp.fc2") { stats[k] = nil }
        }
        return Calibration(images: images, activations: acts, attention: stats, mlpHessians: hessians,
                           seconds: Date().timeIntervalSince(t0))
    }

    public static func sensitivity(_ model: ViTModel, groups: [[Int]], calibration cal: Calibration, options o: PlanOptions,
                                   progress: (String) -> Void = { _ in }) throws -> SensitivityTable {
        let t0 = Date()
        var mlp = [[MLPOption: Double]](), attn = [[Int: Double]]()
        if o.gptqProxy && cal.mlpHessians == nil {
            throw PlanError.calibration("the GPTQ error proxy needs the MLP Hessians (CalibrationOptions.mlpHessians)")
        }
        for g in groups {
            let opts = Planner.mlpOptions(config: model.config, blocks: g.count, options: o)
            mlp.append(try Sensitivity.mlpErrors(model: model, blocks: g, inputs: g.map { cal.activations.inputs[$0] },
                                                 outputs: g.map { cal.activations.outputs[$0] }, options: opts,
                                                 hessians: o.gptqProxy ? g.map { cal.mlpHessians![$0] } : nil, progress: progress))
            attn.append(try Sensitivity.attentionErrors(model: model, blocks: g, statistics: cal.attention, bits: o.attentionBits,
                                                        gptq: o.gptqProxy))
        }
        return SensitivityTable(mlp: mlp, attention: attn, seconds: Date().timeIntervalSince(t0))
    }

    /// Everything up to the plan (what --dry-run prints).
    /// `uniform`: instead of the knapsack's plan, the `uniform`-th best uniform setting that fits (1 = best proxy).
    /// `uniforms`: given every uniform setting that fits, best proxy first.
    public static func plan(_ model: ViTModel, calibration: Calibration, latency: LatencyModel, options o: PlanOptions,
                            uniform: Int? = nil, uniforms: (([Plan]) -> Void)? = nil,
                            progress: (String) -> Void = { _ in }) throws -> (Plan, SensitivityTable) {
        let groups = Planner.groups(depth: model.config.depth, size: o.groupSize)
        let memory = memoryModel(model, groups: groups, options: o)
        let sens = try sensitivity(model, groups: groups, calibration: calibration, options: o, progress: progress)
        let priced = Planner.price(config: model.config, memory: memory, sensitivity: sens, latency: latency, options: o)
        if uniform != nil || uniforms != nil {
            let list = Planner.uniformPlans(memory: memory, candidates: priced.candidates, fixedMs: priced.fixedMs,
                                            source: priced.source, options: o)
            uniforms?(list)
            if let k = uniform {
                guard k >= 1, k <= list.count else {
                    throw PlanError.infeasible("only \(list.count) uniform setting(s) fit budget \(formatBytes(o.budgetBytes))")
                }
                return (list[k - 1], sens)
            }
        }
        let plan = try Planner.solve(config: model.config, memory: memory, candidates: priced.candidates,
                                     fixedArtifact: priced.fixedArtifact, fixedMs: priced.fixedMs, source: priced.source, options: o)
        return (plan, sens)
    }

    public static func memoryModel(_ model: ViTModel, groups: [[Int]], options o: PlanOptions) -> PlanMemory {
        let known = Set(ViTModel.expectedShapes(model.config).map { $0.0 })
        let extras = model.tensors.keys.filter { !known.contains($0) }.sorted().map { ($0, model[$0].shape) }
        return PlanMemory(config: model.config, labels: model.labels, groups: groups, extraTensors: extras, headBits: 8,
                          threads: o.threads, input: o.input)
    }

    public struct BuildOptions {
        public var steps = 600
        public var learningRate: Float = 3e-4
        public var batchRows = 1024
        public var threads = 2
        public var seed: UInt64 = 0
        public var gptq = true
        /// Applied to the compressed float model before quantisation when the plan has FiPS
        /// groups: fips-plan's --finetune-steps (end-to-end distillation, FipsTrain).
        public var refine: ((ViTModel) throws -> ViTModel)? = nil
        /// Applied to the quantised artifact's bytes: fips-plan's --finetune-steps with
        /// --finetune qat (quantisation-aware training through the chosen grids, FipsTrain).
        /// It must keep every tensor's format, so the plan's bytes still hold.
        public var refineQuantised: (([UInt8]) throws -> [UInt8])? = nil
        public init() {}
    }

    /// Compresses the plan's FiPS groups (SVD initialisation, gradual pruning, reconstruction), quantises
    /// with the plan's bits per group, and returns the encoded artifact bytes.
    public static func build(_ model: ViTModel, plan: Plan, calibration cal: Calibration, options b: BuildOptions,
                             progress: @escaping (String) -> Void = { _ in }) throws -> (model: ViTModel, bytes: [UInt8], report: CompressionReport?) {
        var compressed = model
        var report: CompressionReport? = nil
        let fipsGroups = plan.groups.indices.filter { plan.chosen[$0].choice.mlp.rank > 0 }
        if !fipsGroups.isEmpty {
            var o = CompressionOptions()
            o.method = .fips
            o.groups = fipsGroups.map { plan.groups[$0] }
            o.ranks = fipsGroups.map { plan.chosen[$0].choice.mlp.rank }
            o.groupSparsity = fipsGroups.map { plan.chosen[$0].choice.mlp.sparsity }
            o.steps = b.steps; o.learningRate = b.learningRate; o.batchRows = b.batchRows; o.seed = b.seed; o.threads = b.threads
            o.rankMultiple = 1
            let r = try FipsCompressor.compress(model, calibration: cal.activations, options: o, progress: progress)
            compressed = r.0
            report = r.1
            if let refine = b.refine { compressed = try refine(compressed) }
        }
        var q = ModelQuantizationOptions()
        let depth = model.config.depth
        var mlpBits = [Int](repeating: 8, count: depth), attnBits = mlpBits
        for (gi, g) in plan.groups.enumerated() {
            for blk in g { mlpBits[blk] = plan.chosen[gi].choice.mlpBits; attnBits[blk] = plan.chosen[gi].choice.attentionBits }
        }
        q.blockBits = mlpBits
        q.blockAttentionBits = attnBits
        q.headBits = 8
        q.activations = nil            // per-token scales at run time (the kit's default)
        q.rounding = b.gptq ? .gptq : .nearest
        q.sparseWhenSmaller = true
        var stats = [String: InputStatistics]()
        if b.gptq {
            var p = CalibrationPass.Options()
            p.threads = b.threads
            p.histogramBins = 256
            stats = try CalibrationPass.run(compressed, images: cal.images, options: p, progressLabel: "quantisation statistics")
        }
        let (tensors, _) = try ModelQuantizer.quantize(compressed, statistics: stats, options: q)
        if let problem = compressed.validate() { throw PlanError.invalid("compressed model: \(problem)") }
        var bytes = ArtifactWriter.serialize(config: compressed.config, labels: compressed.labels,
                                             tensors: ArtifactWriter.encode(compressed, precision: .f32, quantized: tensors))
        if let refine = b.refineQuantised { bytes = try refine(bytes) }
        return (compressed, bytes, report)
    }
}
