import XCTest
import FipsArtifact
import FipsBLASBackend
import FipsHostModel
import FipsViT
@testable import FipsTrain

/// Every backward of the fine-tuning graph against central finite differences
/// of the loss: for each parameter tensor, the derivative along a random
/// direction (over all its entries) must equal the analytic gradient's dot
/// product with it. Covers LayerNorm, attention (softmax), both GELUs, the
/// shared FiPS basis (its gradient summed over the group), the sparse V,
/// LayerScale, the tokens, the head's pooling, and each loss.
final class TrainingGradientTests: XCTestCase {
    /// Loss of one image and the analytic gradient at `params`.
    func lossAndGradient(_ layout: ParameterLayout, _ params: [Float], teacher: ParameterLayout, _ tparams: [Float],
                         image: [Float], loss: DistillationLoss, label: Int?) -> (Double, [Float]) {
        let w = Worker(layout: layout, teacher: teacher, inputLength: image.count, parameters: layout.count)
        var terms = [Double](repeating: 0, count: LossTerms.names.count)
        image.withUnsafeBufferPointer { img in
            params.withUnsafeBufferPointer { p in
                tparams.withUnsafeBufferPointer { tp in
                    w.run(images: img.baseAddress!, indices: 0..<1, inputLength: image.count, student: p.baseAddress!,
                          teacher: tp.baseAddress!, loss: loss, labels: label.map { [$0] }, weight: 1, terms: &terms)
                }
            }
        }
        let total = zip(LossTerms.names, terms).filter { loss.terms.contains($0.0.1) }.reduce(0) { $0 + $1.1 }
        return (total, Array(UnsafeBufferPointer(start: w.grad, count: layout.count)))
    }

    /// `eps`: the finite-difference step; smaller where the loss curves more (its error is O(eps²)).
    func checkGradients(student: ViTModel, teacher: ViTModel, loss terms: LossTerms, label: Int? = nil, eps: Float = 1e-2,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        let (layout, params) = try ParameterLayout.of(student)
        let (tl, tp) = try ParameterLayout.of(teacher)
        let image = TrainingModels.images(student.config, count: 1, seed: 5)[0]
        let loss = DistillationLoss(terms: terms, temperature: 2)
        let (l0, grad) = lossAndGradient(layout, params, teacher: tl, tp, image: image, loss: loss, label: label)
        XCTAssertGreaterThan(l0, 1e-3, "the loss is too small to test", file: file, line: line)
        var rng = SplitMix64(seed: 11)
        var checked = 0
        for slot in layout.slots where slot.trains {
            let dir = (0..<slot.count).map { _ in Float(rng.nextUnit() * 2 - 1) }
            var analytic: Double = 0
            for k in 0..<slot.count { analytic += Double(grad[slot.offset + k]) * Double(dir[k]) }
            func lossAt(_ sign: Float) -> Double {
                var p = params
                for k in 0..<slot.count { p[slot.offset + k] += sign * eps * dir[k] }
                return lossAndGradient(layout, p, teacher: tl, tp, image: image, loss: loss, label: label).0
            }
            let numeric = (lossAt(1) - lossAt(-1)) / Double(2 * eps)
            let tolerance = 2e-3 * max(1, abs(numeric))
            XCTAssertEqual(analytic, numeric, accuracy: tolerance, "\(slot.name) (\(terms))", file: file, line: line)
            checked += 1
        }
        XCTAssertGreaterThan(checked, 20, file: file, line: line)
    }

    func testFiPSModelFeatureAndCLSLossGradients() throws {
        let c = TrainingModels.config()
        try checkGradients(student: TrainingModels.fips(c, seed: 1), teacher: TrainingModels.dense(c, seed: 2),
                           loss: [.features, .cls])
    }

    func testLogitAndCrossEntropyGradientsThroughThePooledHead() throws {
        let c = TrainingModels.config()
        try checkGradients(student: TrainingModels.fips(c, seed: 3), teacher: TrainingModels.dense(c, seed: 4),
                           loss: [.logits, .ce], label: 1)
    }

    func testTanhGELUAndCLSPooling() throws {
        let c = TrainingModels.config(tanh: true, pooling: .cls)
        try checkGradients(student: TrainingModels.dense(c, seed: 5), teacher: TrainingModels.dense(c, seed: 6),
                           loss: [.features, .logits])
    }

    /// Distilled DeiT: the distillation token is trained, and the head reads it beside the CLS token.
    func testDistillationTokenGradients() throws {
        let c = TrainingModels.config(distilled: true)
        try checkGradients(student: TrainingModels.fips(c, seed: 14), teacher: TrainingModels.dense(c, seed: 15),
                           loss: [.features, .logits, .ce], label: 2, eps: 3e-3)
    }

    /// The group's basis is one parameter: one slot for the four tensors that use it.
    func testSharedBasisIsOneSlotAndDenseBlocksKeepTheirOwn() throws {
        let c = TrainingModels.config()
        let (layout, _) = try ParameterLayout.of(TrainingModels.fips(c, seed: 1))
        let u = ["blocks.1.mlp.fc1.U", "blocks.1.mlp.fc2.U", "blocks.2.mlp.fc1.U", "blocks.2.mlp.fc2.U"].map { layout.slotOfName[$0]! }
        XCTAssertEqual(Set(u).count, 1)
        XCTAssertEqual(layout.slots.filter { $0.name.hasSuffix(".U") }.count, 1)
        XCTAssertNotNil(layout.slotOfName["blocks.0.mlp.fc1.weight"])
    }

    /// The training forward is the executor's fp32 forward (features and logits).
    func testForwardMatchesTheExecutor() throws {
        for model in [TrainingModels.fips(TrainingModels.config(), seed: 7),
                      TrainingModels.dense(TrainingModels.config(tanh: true, pooling: .cls), seed: 8),
                      TrainingModels.fips(TrainingModels.config(distilled: true), seed: 10)] {
            let c = model.config
            let (layout, params) = try ParameterLayout.of(model)
            let image = TrainingModels.images(c, count: 1, seed: 9)[0]
            let act = ImageActivations(config: c, rank: layout.maxRank)
            image.withUnsafeBufferPointer { img in
                params.withUnsafeBufferPointer { TrainingForward(layout: layout).run(img.baseAddress!, $0.baseAddress!, act) }
            }
            let ex = try ViTExecutor.host(model)
            var feats = [Float](repeating: 0, count: c.tokenCount * c.dim), logits = [Float](repeating: 0, count: c.numClasses)
            ex.forward(batch: 1, images: image, features: &feats, logits: &logits)
            let scale = feats.map { abs($0) }.max()!
            for k in feats.indices { XCTAssertEqual(act.features[k], feats[k], accuracy: 1e-5 * scale) }
            for k in logits.indices { XCTAssertEqual(act.logits[k], logits[k], accuracy: 1e-4 * max(1, abs(logits[k]))) }
        }
    }
}
