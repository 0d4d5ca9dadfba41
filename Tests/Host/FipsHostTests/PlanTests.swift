import Foundation
import XCTest
import FipsArtifact
import FipsArtifactWriter
import FipsData
import FipsDeviceSupport
import FipsHostModel
import FipsLatency
import FipsPlan
import FipsQuantize
import FipsViT
import FipsTestSupport

final class PlanTests: XCTestCase {
    // MARK: knapsack

    func testKnapsackMatchesBruteForce() {
        var rng = SplitMix64(seed: 11)
        func unit() -> Double { rng.nextUnit() }
        var feasible = 0
        for trial in 0..<400 {
            let g = 1 + trial % 4
            let groups = (0..<g).map { _ in
                (0..<(1 + Int(unit() * 6))).map { _ in
                    KnapsackItem(bytes: Int(unit() * 100), ms: (unit() * 10 * 100).rounded() / 100, error: unit())
                }
            }
            let capacity = Int(unit() * Double(60 * g))
            let latency: Double? = trial % 3 == 0 ? nil : unit() * Double(8 * g)
            let u = trial % 5 == 0 ? 7 : 1
            let dp = MultipleChoiceKnapsack.solve(groups, capacity: capacity, latency: latency, unit: u)
            let bf = MultipleChoiceKnapsack.bruteForce(groups, capacity: capacity, latency: latency, unit: u)
            XCTAssertEqual(dp == nil, bf == nil, "trial \(trial): feasibility")
            guard let a = dp, let b = bf else { continue }
            feasible += 1
            func cost(_ p: [Int]) -> (Int, Double, Double) {
                p.enumerated().reduce((0, 0.0, 0.0)) { acc, e in
                    let it = groups[e.offset][e.element]
                    return (acc.0 + (it.bytes + u - 1) / u * u, acc.1 + it.ms, acc.2 + it.error)
                }
            }
            let (bytes, ms, err) = cost(a)
            XCTAssertLessThanOrEqual(bytes, capacity / u * u, "trial \(trial)")
            if let l = latency { XCTAssertLessThanOrEqual(ms, l + 1e-9, "trial \(trial)") }
            XCTAssertEqual(err, cost(b).2, accuracy: 1e-12, "trial \(trial): DP is not optimal")
        }
        XCTAssertGreaterThan(feasible, 100)
    }

    // MARK: a small model planned end to end

    static var tinyConfig: ViTConfig {
        var c = ViTConfig()
        c.family = .vit
        c.imageSize = 32; c.cropSize = 32; c.resizeShorter = 36
        c.patchSize = 8; c.dim = 64; c.depth = 4; c.heads = 2; c.mlpDim = 256
        c.hasLayerScale = true
        return c
    }

    static func board() throws -> LatencyModel {
        LatencyModel(board: try BoardDescription.load(path: TestPaths.packageRoot.appendingPathComponent("boards/rpi5.board").path))
    }

    static func calibration(_ m: ViTModel, images: Int, tokens: Int) throws -> PlanPipeline.Calibration {
        let c = m.config
        let set = TensorImageSet(tensors: (0..<images).map { randomFloats(c.channels * c.imageSize * c.imageSize, seed: UInt64(100 + $0)) })
        var o = PlanPipeline.CalibrationOptions()
        o.tokensPerImage = tokens
        o.threads = 1
        return try PlanPipeline.calibrate(m, images: set, options: o)
    }

    static func tinyOptions(_ budget: Int) -> PlanOptions {
        var o = PlanOptions(budgetBytes: budget)
        o.groupSize = 2
        o.threads = 2
        o.rankMultiple = 16
        o.mlpBudgets = [0.25, 0.5, 0.75]
        o.input = InputLimits(maxPixels: 64 * 48, maxInputBytes: 4096, maxConnections: 1, budgetBytes: 0)
        o.unit = 1
        return o
    }

    /// The smallest feasible budget, read from the infeasible-budget error.
    static func smallestBudget(_ message: String) -> Int? {
        guard let r = message.range(of: #"smallest feasible memory budget is [0-9.]+ [kM]?B \(([0-9]+) bytes\)"#,
                                    options: .regularExpression) else { return nil }
        let s = message[r]
        let open = s.lastIndex(of: "(")!
        return Int(s[s.index(after: open)...].split(separator: " ")[0])
    }

    /// The error proxy quantises as the build does: GPTQ from Hessians over every calibration token, with the
    /// Hessian-only work done once (identical to quantising directly), and its errors are below round-to-nearest's.
    func testProxyQuantisesWithGPTQAsTheBuild() throws {
        let model = RandomViT.make(PlanTests.tinyConfig, seed: 7)
        let c = model.config
        let cal = try PlanTests.calibration(model, images: 3, tokens: 17)
        let hs = try XCTUnwrap(cal.mlpHessians)
        XCTAssertEqual(hs.count, c.depth)
        XCTAssertTrue(hs.allSatisfy { $0.input.count == c.dim * c.dim && $0.hidden.count == c.mlpDim * c.mlpDim })
        XCTAssertNil(cal.attention[TensorNames.block(0, "mlp.fc1")], "MLP statistics are kept as Hessians only")
        // prepared once == direct GPTQ
        let w = model[TensorNames.block(1, "mlp.fc2.weight")]
        let direct = WeightQuantizer.quantize(w.data, rows: w.shape[0], cols: w.shape[1], bits: 3, rounding: .gptq, hessian: hs[1].hidden)
        let prepared = WeightQuantizer.quantize(w.data, rows: w.shape[0], cols: w.shape[1], bits: 3,
                                                prepared: WeightQuantizer.PreparedHessian(hs[1].hidden, cols: c.mlpDim))
        XCTAssertEqual(direct.values, prepared.values)
        XCTAssertEqual(direct.scales, prepared.scales)
        // GPTQ proxy below round-to-nearest, dense and FiPS alike
        let blocks = [0, 1]
        let opts = [MLPOption(mlp: .dense, bits: 3), MLPOption(mlp: .fips(rank: 48, sparsity: 0), bits: 3),
                    MLPOption(mlp: .fips(rank: 32, sparsity: 0), bits: 4)]
        let ins = blocks.map { cal.activations.inputs[$0] }, outs = blocks.map { cal.activations.outputs[$0] }
        let rtn = try Sensitivity.mlpErrors(model: model, blocks: blocks, inputs: ins, outputs: outs, options: opts)
        let gptq = try Sensitivity.mlpErrors(model: model, blocks: blocks, inputs: ins, outputs: outs, options: opts,
                                             hessians: blocks.map { hs[$0] })
        for o in opts {
            XCTAssertLessThan(gptq[o]!, rtn[o]!, "\(o)")
            XCTAssertGreaterThan(gptq[o]!, 0)
        }
        let aR = try Sensitivity.attentionErrors(model: model, blocks: blocks, statistics: cal.attention, bits: [4, 3])
        let aG = try Sensitivity.attentionErrors(model: model, blocks: blocks, statistics: cal.attention, bits: [4, 3], gptq: true)
        for b in [4, 3] { XCTAssertLessThan(aG[b]!, aR[b]!, "attention \(b) bits") }
        // the GPTQ proxy needs the Hessians; the round-to-nearest one does not
        var bare = cal
        bare.mlpHessians = nil
        XCTAssertThrowsError(try PlanPipeline.plan(model, calibration: bare, latency: try PlanTests.board(),
                                                   options: PlanTests.tinyOptions(10_000_000)))
        var o = PlanTests.tinyOptions(10_000_000)
        o.gptqProxy = false
        XCTAssertNoThrow(try PlanPipeline.plan(model, calibration: bare, latency: try PlanTests.board(), options: o))
    }

    func testInfeasibleBudgetNamesTheSmallestFeasibleOne() throws {
        let model = RandomViT.make(PlanTests.tinyConfig, seed: 3)
        let cal = try PlanTests.calibration(model, images: 2, tokens: 17)
        let lat = try PlanTests.board()
        var message = ""
        XCTAssertThrowsError(try PlanPipeline.plan(model, calibration: cal, latency: lat, options: PlanTests.tinyOptions(1000))) { e in
            message = "\(e)"
        }
        XCTAssertTrue(message.contains("budget 1.0 kB is infeasible for this model on this board"), message)
        XCTAssertTrue(message.contains("the fastest achievable latency is"), message)
        let smallest = try XCTUnwrap(PlanTests.smallestBudget(message), message)
        // exactly that budget fits, one byte less does not
        let (plan, _) = try PlanPipeline.plan(model, calibration: cal, latency: lat, options: PlanTests.tinyOptions(smallest))
        XCTAssertEqual(plan.memory.totalBytes, smallest)
        XCTAssertThrowsError(try PlanPipeline.plan(model, calibration: cal, latency: lat, options: PlanTests.tinyOptions(smallest - 1)))
        // a latency no plan meets names the fastest one
        var o = PlanTests.tinyOptions(10_000_000)
        o.latencyMs = 1e-6
        XCTAssertThrowsError(try PlanPipeline.plan(model, calibration: cal, latency: lat, options: o)) { e in
            XCTAssertTrue("\(e)".contains("the fastest achievable latency is"), "\(e)")
            XCTAssertTrue("\(e)".contains("above the 0.0 ms asked for"), "\(e)")
        }
    }

    /// Six budgets from the smallest feasible one to the 8-bit dense model: plan, compress, quantise, write, load.
    /// The file's size plus the executor's arena plus the run buffers plus the inputs' worst case never exceeds the budget, and
    /// each equals what the planner predicted (the artifact to the byte when no q8-sparse tensor is involved,
    /// otherwise bounded by it).
    func testSixBudgetsPlanWriteLoad() throws {
        let model = RandomViT.make(PlanTests.tinyConfig, seed: 5)
        let cal = try PlanTests.calibration(model, images: 4, tokens: 17)
        let lat = try PlanTests.board()
        var smallest = 0
        XCTAssertThrowsError(try PlanPipeline.plan(model, calibration: cal, latency: lat, options: PlanTests.tinyOptions(1))) { e in
            smallest = PlanTests.smallestBudget("\(e)") ?? 0
        }
        XCTAssertGreaterThan(smallest, 0)
        let groups = Planner.groups(depth: 4, size: 2)
        let memory = PlanPipeline.memoryModel(model, groups: groups, options: PlanTests.tinyOptions(1))
        let largest = memory.breakdown(groups.map { _ in GroupChoice(mlp: .dense, mlpBits: 8, attentionBits: 8) }).totalBytes
        XCTAssertGreaterThan(largest, smallest)
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var sawSparse = false, sawFips = false, sawDense = false
        for k in 0..<6 {
            let budget = smallest + (largest - smallest) * k / 5
            let o = PlanTests.tinyOptions(budget)
            let (plan, _) = try PlanPipeline.plan(model, calibration: cal, latency: lat, options: o)
            XCTAssertLessThanOrEqual(plan.memory.totalBytes, budget)
            var b = PlanPipeline.BuildOptions()
            b.steps = 8; b.batchRows = 64; b.threads = 1
            let built = try PlanPipeline.build(model, plan: plan, calibration: cal, options: b)
            let path = dir.appendingPathComponent("plan\(k).fips").path
            try ArtifactWriter.writeAtomically(built.bytes, to: path)
            let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
            let artifact = try Artifact(path: path)
            let ex = try ViTExecutor(artifact: artifact, backend: PooledBackend(threads: o.threads))
            XCTAssertEqual(ex.arenaBytes, plan.memory.arenaBytes, "budget \(budget): arena")
            XCTAssertEqual(ClassifierBuffers(config: artifact.config).bytes, plan.memory.ioBytes)
            if plan.memory.artifactExact {
                XCTAssertEqual(size, plan.memory.artifactBytes, "budget \(budget): artifact bytes")
            } else {
                XCTAssertLessThanOrEqual(size, plan.memory.artifactBytes, "budget \(budget): artifact bytes")
                sawSparse = true
            }
            let measured = size + ex.arenaBytes + ClassifierBuffers(config: artifact.config).bytes + plan.memory.inputBytes
            XCTAssertLessThanOrEqual(measured, budget, "budget \(budget)")
            print("budget \(budget): file \(size) (planned \(plan.memory.artifactBytes)\(plan.memory.artifactExact ? "" : ", bound")) + arena \(ex.arenaBytes) (planned \(plan.memory.arenaBytes)) + run buffers \(plan.memory.ioBytes) + inputs \(plan.memory.inputBytes) = \(measured); "
                  + plan.choices.map { "\($0.mlp) \($0.mlpBits)/\($0.attentionBits)" }.joined(separator: "; "))
            for c in plan.choices { if c.mlp.rank > 0 { sawFips = true } else { sawDense = true } }
            // the written model runs
            let c = artifact.config
            let img = randomFloats(c.channels * c.imageSize * c.imageSize, seed: 9)
            var feats = [Float](repeating: 0, count: c.tokenCount * c.dim)
            img.withUnsafeBufferPointer { i in feats.withUnsafeMutableBufferPointer { ex.forward(batch: 1, images: i.baseAddress!, features: $0.baseAddress!) } }
            XCTAssertTrue(feats.allSatisfy { $0.isFinite })
        }
        XCTAssertTrue(sawFips && sawDense, "the six budgets should exercise FiPS and dense groups (sparse seen: \(sawSparse))")
    }

    /// Pruned projections (q8-sparse): the artifact is bounded by the plan (kept weights + 127 bytes per tensor),
    /// the arena exact.
    func testSparsePlanIsBounded() throws {
        let model = RandomViT.make(PlanTests.tinyConfig, seed: 8)
        let cal = try PlanTests.calibration(model, images: 4, tokens: 17)
        var o = PlanTests.tinyOptions(10_000_000)
        o.allowDense = false
        o.sparsities = [0.5, 0.75]
        o.mlpBits = [8]
        let (plan, _) = try PlanPipeline.plan(model, calibration: cal, latency: try PlanTests.board(), options: o)
        XCTAssertTrue(plan.choices.allSatisfy { $0.mlp.sparsity > 0 && $0.mlpFormat == "q8-sparse" })
        XCTAssertFalse(plan.memory.artifactExact)
        var b = PlanPipeline.BuildOptions()
        b.steps = 8; b.batchRows = 64; b.threads = 1
        let built = try PlanPipeline.build(model, plan: plan, calibration: cal, options: b)
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("sparse.fips").path
        try ArtifactWriter.writeAtomically(built.bytes, to: path)
        let artifact = try Artifact(path: path)
        XCTAssertTrue(artifact.tensors.contains { $0.dtype == .q8sparse })
        let ex = try ViTExecutor(artifact: artifact, backend: PooledBackend(threads: o.threads))
        XCTAssertEqual(ex.arenaBytes, plan.memory.arenaBytes)
        XCTAssertLessThanOrEqual(built.bytes.count, plan.memory.artifactBytes)
        print("sparse plan: file \(built.bytes.count), bound \(plan.memory.artifactBytes) (slack \(plan.memory.artifactBytes - built.bytes.count))")
    }

    /// A ViT-B/16-shaped backbone (86M parameters, random weights) planned for 50 MB (dry run: no compression).
    func testViTB16PlansInto50MB() throws {
        let model = RandomViT.make(RandomViT.vitB16, seed: 1)
        XCTAssertEqual(ParameterCount(model).backbone, 85_798_656)
        let cal = try PlanTests.calibration(model, images: 2, tokens: 8)
        var o = PlanOptions(budgetBytes: 50_000_000)
        o.threads = 4
        o.mlpBudgets = [0.25, 0.5]
        let (plan, _) = try PlanPipeline.plan(model, calibration: cal, latency: try PlanTests.board(), options: o)
        XCTAssertLessThanOrEqual(plan.memory.totalBytes, 50_000_000)
        XCTAssertGreaterThan(plan.memory.totalBytes, 40_000_000, "a 50 MB budget should be mostly used")
        XCTAssertEqual(plan.groups.count, 3)
        print(plan.table())
    }
}
