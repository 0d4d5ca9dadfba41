import XCTest
import FipsArtifact
import FipsArtifactWriter
import FipsBLASBackend
import FipsData
import FipsHostModel
import FipsQuantize
import FipsTestSupport
import FipsViT
@testable import FipsTrain

/// Quantisation-aware training: the weight grid's straight-through and LSQ
/// gradients against finite differences, and a packed student trained through
/// its grids written back so that the integer runtime computes what the
/// training forward computed.
final class QuantisationAwareTrainingTests: XCTestCase {
    /// ŵ = s·clamp(round(w/s)) has no useful derivative; LSQ's is that of the
    /// surrogate s·(clamp(w/s) + δ) with the rounding offset δ frozen at the
    /// point of evaluation (equal to ŵ there). Central differences of that
    /// surrogate, in Double, must match `WeightGrid.backward` for the weights
    /// (1 inside the range, 0 clipped) and the scale multipliers, for per-row
    /// and per-32 scales, stored and transposed orientation.
    func testWeightGridGradientsAreThoseOfTheLSQSurrogate() {
        for (dtype, transposed) in [(TensorDType.q8, false), (.q4g32, true), (.q3g32, false), (.q4g32, false), (.q2g32, true)] {
            let rows = 5, cols = 40
            var rng = SplitMix64(seed: UInt64(dtype.rawValue) &+ (transposed ? 100 : 0))
            func uniform() -> Float { Float(rng.nextUnit() * 2 - 1) }
            var grid = WeightGrid(storedName: "w", floatName: "w", dtype: dtype, rows: rows, cols: cols, transposed: transposed,
                                  initialScales: [], actScale: nil)
            let hi = Float(grid.format.valueRange.upperBound)
            grid.initialScales = (0..<(rows * grid.groups)).map { _ in (0.6 + 0.4 * Float(rng.nextUnit())) / hi }
            // 2-bit scales may be negative (the mirrored grid): half of them are.
            if dtype == .q2g32 { for k in stride(from: 0, to: grid.initialScales.count, by: 2) { grid.initialScales[k].negate() } }
            grid.weightOffset = 0
            grid.scaleOffset = rows * cols
            // multipliers below 1 push some weights past the range (clipped)
            var p = (0..<(rows * cols)).map { _ in uniform() } + (0..<grid.scaleCount).map { _ in 0.7 + 0.5 * Float(rng.nextUnit()) }
            let c = (0..<p.count).map { _ in Double(uniform()) }
            let lo = Double(grid.format.valueRange.lowerBound), hiD = Double(hi)

            var eff = p
            p.withUnsafeBufferPointer { pp in eff.withUnsafeMutableBufferPointer { grid.fakeQuantise(pp.baseAddress!, into: $0.baseAddress!) } }
            // δ frozen at p: round(clamp(v)) − clamp(v)
            let delta: [Double] = (0..<(rows * cols)).map { e in
                let s = Double(grid.initialScales[grid.scaleIndex(ofElement: e)] * p[grid.scaleOffset + grid.scaleIndex(ofElement: e)])
                let v = min(hiD, max(lo, Double(p[e]) / s))
                return Double(eff[e]) / s - v
            }
            func surrogate(_ q: [Double]) -> Double {
                var l = 0.0
                for e in 0..<(rows * cols) {
                    let k = grid.scaleIndex(ofElement: e)
                    let s = Double(grid.initialScales[k]) * q[grid.scaleOffset + k]
                    l += c[e] * s * (min(hiD, max(lo, q[e] / s)) + delta[e])
                }
                return l
            }
            var grad = c.map { Float($0) }
            p.withUnsafeBufferPointer { pp in grad.withUnsafeMutableBufferPointer { grid.backward(pp.baseAddress!, grad: $0.baseAddress!) } }
            var clipped = 0
            let base = p.map { Double($0) }
            for i in 0..<p.count {
                let h = 1e-6
                var a = base, b = base
                a[i] += h; b[i] -= h
                let numeric = (surrogate(a) - surrogate(b)) / (2 * h)
                XCTAssertEqual(Double(grad[i]), numeric, accuracy: 1e-4 * max(1, abs(numeric)), "\(dtype.name) parameter \(i)")
                if i < rows * cols && grad[i] == 0 && c[i] != 0 { clipped += 1 }
            }
            XCTAssertGreaterThan(clipped, 0, "\(dtype.name): no weight was clipped, the test misses that branch")
            XCTAssertLessThan(clipped, rows * cols / 2, "\(dtype.name): most weights clipped")
        }
    }

    /// A tiny FiPS model (blocks 1 and 2 share fc1's and fc2's bases) with block 0
    /// at 8 bits, the rest at `bits`, one layer with a calibrated input scale.
    func packedStudent(in dir: URL, bits: Int = 4) throws -> (path: String, teacher: ViTModel) {
        let c = TrainingModels.config()
        var model = TrainingModels.fips(c, seed: 31)
        var rng = SplitMix64(seed: 77)
        let u2 = HostTensor(shape: [c.dim, 8], data: (0..<(c.dim * 8)).map { _ in Float(rng.nextUnit() - 0.5) })
        for b in 1...2 { model.tensors[TensorNames.block(b, "mlp.fc2.U")] = u2 }
        var o = ModelQuantizationOptions()
        o.rounding = .nearest; o.activations = nil
        o.blockBits = [8, bits, bits]
        var (tensors, _) = try ModelQuantizer.quantize(model, statistics: [:], options: o)
        tensors[TensorNames.block(1, "attn.proj.weight")]!.actScale = 0.02
        let path = dir.appendingPathComponent("student.q.fips").path
        try ArtifactWriter.write(model, precision: .f32, quantized: tensors, to: path)
        return (path, TrainingModels.dense(c, seed: 31))
    }

    /// Features of `image` by the integer runtime on the artifact at `path`.
    func runtimeFeatures(_ path: String, _ image: [Float]) throws -> [Float] {
        let a = try Artifact(path: path)
        let ex = try ViTExecutor(artifact: a, backend: BLASBackend(threads: 1))
        var f = [Float](repeating: 0, count: a.config.tokenCount * a.config.dim), l = [Float](repeating: 0, count: a.config.numClasses)
        ex.forward(batch: 1, images: image, features: &f, logits: &l)
        return f
    }

    /// Features of `image` by the quantisation-aware training forward at the tuner's parameters.
    func trainingFeatures(_ t: Finetuner, _ image: [Float]) -> [Float] {
        let q = t.quantised!, n = t.layout.count
        var rounded = [Float](repeating: 0, count: n)
        t.params.withUnsafeBufferPointer { p in rounded.withUnsafeMutableBufferPointer { q.fakeQuantise(p.baseAddress!, into: $0.baseAddress!, count: n) } }
        let act = ImageActivations(config: t.layout.config, rank: t.layout.maxRank)
        image.withUnsafeBufferPointer { img in
            rounded.withUnsafeBufferPointer { TrainingForward(layout: t.layout, grids: q.activations).run(img.baseAddress!, $0.baseAddress!, act) }
        }
        return Array(UnsafeBufferPointer(start: act.features, count: t.layout.config.tokenCount * t.layout.config.dim))
    }

    /// The bar is a CLS cosine of 0.999, but leaving the activations
    /// float still passes that on a model this small (0.99996), so the features
    /// must also agree to 1e-5 of their largest value (measured: 2e-7; without
    /// the activation roundings: 7e-3).
    func assertSame(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let d = TrainingModels.config().dim
        let worst = zip(a, b).map { abs($0 - $1) }.max()!, scale = b.map { abs($0) }.max()!
        XCTAssertLessThan(worst, 1e-5 * scale, "\(what): features differ", file: file, line: line)
        XCTAssertGreaterThan(Similarity.cosine(Array(a[0..<d]), Array(b[0..<d])), 0.999, "\(what): CLS", file: file, line: line)
        XCTAssertGreaterThan(Similarity.cosine(a, b), 0.999, "\(what): all tokens", file: file, line: line)
    }

    /// Before training the training forward is the runtime on the PTQ model;
    /// after 20 steps the written artifact (same formats, same size) is the
    /// training forward at the trained parameters, and it moved away from the start.
    /// At 4 bits and at 2 (q2g32, with its negative scales).
    func testPackedStudentAfterTrainingIsWhatTheIntegerRuntimeComputes() throws {
        for (bits, format) in [(4, "q4g32"), (2, "q2g32")] { try packedStudentAfterTraining(bits: bits, format: format) }
    }

    func packedStudentAfterTraining(bits: Int, format: String) throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (path, teacher) = try packedStudent(in: dir, bits: bits)
        let student = try FinetuneInputs.quantisedModel(path)
        XCTAssertEqual(Set(student.grids.map { $0.dtype.name }), ["q8", format])
        let c = student.model.config
        let images = TrainingModels.images(c, count: 12, seed: 4)
        var o = FinetuneOptions()
        o.steps = 20; o.batch = 4; o.threads = 2; o.learningRate = 3e-3; o.scaleLearningRate = 3e-2
        let tuner = try Finetuner(student: student.model, teacher: teacher, data: TensorImageSet(tensors: Array(images[0..<10])),
                                  options: o, quantised: student)
        for k in 10..<12 { assertSame(trainingFeatures(tuner, images[k]), try runtimeFeatures(path, images[k]), "before") }
        let (tuned, report) = try tuner.run()
        XCTAssertLessThan(report.lastLoss, 0.8 * report.firstLoss)
        let out = dir.appendingPathComponent("tuned.fips").path
        try ArtifactWriter.write(tuned, precision: .f32, quantized: tuner.packedTensors()!, to: out)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: out)[.size] as? Int,
                       try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int, "the formats kept their sizes")
        let before = try Artifact(path: path), after = try Artifact(path: out)
        for t in before.tensors { XCTAssertEqual(after.tensor(t.name)?.dtype, t.dtype, t.name) }
        XCTAssertEqual(after.tensor(TensorNames.block(1, "attn.proj.act_scale"))?.floats[0], 0.02)
        for k in 10..<12 {
            let trained = trainingFeatures(tuner, images[k])
            assertSame(trained, try runtimeFeatures(out, images[k]), "after")
            XCTAssertLessThan(Similarity.cosine(trained, try runtimeFeatures(path, images[k])), 0.9999, "training changed nothing")
        }
    }

    /// `fips finetune --qat` on a packed student writes a packed model; a float
    /// student with --qat and a packed one without are refused naming the fix.
    func testFinetuneCommandQAT() throws {
        let fips = TestPaths.products.appendingPathComponent("fips")
        try TestPaths.require(fips.path)
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        func path(_ n: String) -> String { dir.appendingPathComponent(n).path }
        let (student, teacher) = try packedStudent(in: dir)
        try ArtifactWriter.write(teacher, precision: .f32, to: path("t.fips"))
        let images = dir.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: TestPaths.deviceFixtures.appendingPathComponent("images/chelsea_q90.jpg"),
                                         to: images.appendingPathComponent("chelsea_q90.jpg"))
        let common = ["--teacher", path("t.fips"), "--data", images.path, "--images", "1", "--steps", "2", "--batch", "1", "--threads", "1"]
        let (rc, out, err) = try runProcess(fips, ["finetune", "--qat", "--model", student, "-o", path("out.fips")] + common)
        XCTAssertEqual(rc, 0, err)
        XCTAssertTrue(err.contains("quantisation-aware fine-tuning"), err)
        XCTAssertTrue(out.contains("fine-tuned 2 steps"), out)
        XCTAssertEqual(try Artifact(path: path("out.fips")).tensor(TensorNames.block(1, "attn.qkv.weight"))?.dtype, .q4g32)
        for (args, expected) in [(["--qat", "--model", path("t.fips")], "no packed integer weights"),
                                 (["--model", student], "train it through its integer grids with --qat")] {
            let (rc, _, err) = try runProcess(fips, ["finetune"] + args + ["-o", path("bad.fips")] + common)
            XCTAssertNotEqual(rc, 0)
            XCTAssertTrue(err.contains(expected), "\(expected): \(err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad.fips")))
        }
    }
}
