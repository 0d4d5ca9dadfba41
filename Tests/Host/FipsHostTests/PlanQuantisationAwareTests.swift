import XCTest
import FipsArtifact
import FipsArtifactWriter
import FipsData
import FipsHostModel
import FipsPlan
import FipsTestSupport
import FipsTrain

/// fips-plan --finetune-steps (quantisation-aware by default): the plan's
/// quantised model trained through its grids keeps every tensor's format,
/// stays within the plan's bytes with the pruned zeros of its q8-sparse
/// projections kept, and is a different model from the post-training one.
final class PlanQuantisationAwareTests: XCTestCase {
    func testTrainingThroughThePlansGridsKeepsItsFormatsBytesAndPrunedZeros() throws {
        let model = RandomViT.make(PlanTests.tinyConfig, seed: 8)
        let cal = try PlanTests.calibration(model, images: 4, tokens: 17)
        var o = PlanTests.tinyOptions(10_000_000)
        o.allowDense = false
        o.sparsities = [0.5]
        o.mlpBits = [8]
        let (plan, _) = try PlanPipeline.plan(model, calibration: cal, latency: try PlanTests.board(), options: o)
        var b = PlanPipeline.BuildOptions()
        b.steps = 8; b.batchRows = 64; b.threads = 1
        let ptq = try PlanPipeline.build(model, plan: plan, calibration: cal, options: b)
        let c = model.config
        let images = TensorImageSet(tensors: (0..<8).map { randomFloats(c.channels * c.imageSize * c.imageSize, seed: UInt64(300 + $0)) })
        var t = FinetuneOptions()
        t.steps = 4; t.batch = 4; t.threads = 2; t.learningRate = 1e-3
        var loss: (Double, Double)? = nil
        b.refineQuantised = { bytes in
            let r = try QuantisedArtifactTraining.train(bytes, teacher: model, data: images, options: t)
            loss = (r.report.firstLoss, r.report.lastLoss)
            return r.bytes
        }
        let qat = try PlanPipeline.build(model, plan: plan, calibration: cal, options: b)
        XCTAssertNotNil(loss)
        XCTAssertLessThanOrEqual(qat.bytes.count, plan.memory.artifactBytes)
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        func load(_ bytes: [UInt8], _ name: String) throws -> Artifact {
            let path = dir.appendingPathComponent(name).path
            try ArtifactWriter.writeAtomically(bytes, to: path)
            return try Artifact(path: path)
        }
        let before = try load(ptq.bytes, "ptq.fips"), after = try load(qat.bytes, "qat.fips")
        var sparse = 0, changed = 0
        for x in before.tensors {
            let y = try XCTUnwrap(after.tensor(x.name), x.name)
            XCTAssertEqual(y.dtype, x.dtype, x.name)
            XCTAssertEqual(y.shape, x.shape, x.name)
            guard x.dtype.packedFormat != nil else { continue }
            let a = try XCTUnwrap(PackedWeights.unpack(x)), z = try XCTUnwrap(PackedWeights.unpack(y))
            if a.values != z.values || a.scales != z.scales { changed += 1 }
            guard x.dtype == .q8sparse else { continue }
            sparse += 1
            for k in a.values.indices where a.values[k] == 0 { XCTAssertEqual(z.values[k], 0, "\(x.name)[\(k)] was pruned") }
        }
        XCTAssertGreaterThan(sparse, 0, "the plan should have q8-sparse projections")
        XCTAssertGreaterThan(changed, 0, "training changed no packed weight")
    }
}
