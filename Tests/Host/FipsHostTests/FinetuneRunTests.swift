import XCTest
import FipsArtifact
import FipsArtifactWriter
import FipsData
import FipsHostModel
import FipsTestSupport
@testable import FipsTrain

/// The training loop on tiny models: it learns, it is deterministic for a seed
/// and thread count, --resume reaches the uninterrupted result bit for bit,
/// pruned entries and the shared basis survive, and bad pairs, data and
/// checkpoints are refused naming the problem.
final class FinetuneRunTests: XCTestCase {
    let config = TrainingModels.config()
    lazy var student = TrainingModels.fips(config, seed: 21)
    lazy var teacher = TrainingModels.dense(config, seed: 21)
    lazy var data = TensorImageSet(tensors: TrainingModels.images(config, count: 10, seed: 3))

    func options(steps: Int, threads: Int = 2) -> FinetuneOptions {
        var o = FinetuneOptions()
        o.steps = steps; o.batch = 4; o.threads = threads; o.learningRate = 3e-3; o.seed = 7
        return o
    }

    func train(_ o: FinetuneOptions) throws -> (ViTModel, FinetuneReport) {
        try Finetuner(student: student, teacher: teacher, data: data, options: o).run()
    }

    func testLossFallsAndPrunedEntriesAndTheSharedBasisSurvive() throws {
        let (tuned, report) = try train(options(steps: 30))
        XCTAssertLessThan(report.lastLoss, 0.7 * report.firstLoss, "30 steps should cut the distillation loss")
        for name in ["blocks.1.mlp.fc1.V", "blocks.2.mlp.fc2.V"] {
            let before = student[name].data, after = tuned[name].data
            for k in before.indices where before[k] == 0 { XCTAssertEqual(after[k], 0, "\(name)[\(k)] was pruned") }
            XCTAssertNotEqual(before, after, "\(name) was not trained")
        }
        let u = tuned["blocks.1.mlp.fc1.U"].data
        XCTAssertNotEqual(u, student["blocks.1.mlp.fc1.U"].data)
        for name in ["blocks.1.mlp.fc2.U", "blocks.2.mlp.fc1.U", "blocks.2.mlp.fc2.U"] { XCTAssertEqual(tuned[name].data, u) }
        // frozen: patch embedding and head
        XCTAssertEqual(tuned[TensorNames.patchWeight].data, student[TensorNames.patchWeight].data)
        XCTAssertEqual(tuned[TensorNames.headWeight].data, student[TensorNames.headWeight].data)
    }

    func testSameSeedAndThreadsGiveTheSameModel() throws {
        let a = try train(options(steps: 3)).0, b = try train(options(steps: 3)).0
        for (name, t) in a.tensors { XCTAssertEqual(t.data, b[name].data, name) }
    }

    func testResumeReachesTheUninterruptedResult() throws {
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ck = dir.appendingPathComponent("run.ckpt").path
        let whole = try train(options(steps: 5)).0
        var first = options(steps: 5)
        first.checkpointPath = ck; first.checkpointEvery = 2; first.stopAfterSteps = 3
        let (_, r1) = try train(first)
        XCTAssertEqual(r1.steps, 3)
        var second = options(steps: 5)
        second.resumePath = ck
        let (resumed, r2) = try train(second)
        XCTAssertEqual(r2.resumedFrom, 3)
        for (name, t) in whole.tensors { XCTAssertEqual(t.data, resumed[name].data, name) }
    }

    /// --head teacher: the student trains through, and is written with, the
    /// teacher's head (weights, bias, labels); a teacher without a head is refused.
    func testTeacherHeadReplacesTheStudents() throws {
        let refitted = TrainingModels.fips(config, seed: 99)   // same backbone shapes, another head
        XCTAssertNotEqual(refitted[TensorNames.headWeight].data, teacher[TensorNames.headWeight].data)
        var s = try FinetuneInputs.withTeacherHead(student, teacher: refitted)
        s.labels = ["a", "b", "c"]
        let withTeachers = try FinetuneInputs.withTeacherHead(s, teacher: teacher)
        for name in [TensorNames.headWeight, TensorNames.headBias] {
            XCTAssertEqual(withTeachers[name].data, teacher[name].data, name)
        }
        XCTAssertEqual(withTeachers.labels, teacher.labels)
        XCTAssertEqual(withTeachers[TensorNames.patchWeight].data, student[TensorNames.patchWeight].data)
        var o = options(steps: 2); o.loss = try LossTerms.parse("features+logits")
        let tuned = try Finetuner(student: withTeachers, teacher: teacher, data: data, options: o).run().0
        XCTAssertEqual(tuned[TensorNames.headWeight].data, teacher[TensorNames.headWeight].data)
        var headless = TrainingModels.config(); headless.numClasses = 0
        XCTAssertThrowsError(try FinetuneInputs.withTeacherHead(student, teacher: TrainingModels.dense(headless, seed: 1))) {
            XCTAssertTrue("\($0)".contains("the teacher has no head"), "\($0)")
        }
    }

    func testRefusals() throws {
        var wide = TrainingModels.config(); wide.dim = 24; wide.mlpDim = 48
        XCTAssertThrowsError(try Finetuner(student: student, teacher: TrainingModels.dense(wide, seed: 1), data: data,
                                           options: options(steps: 1))) {
            XCTAssertEqual("\($0)", "student and teacher differ in width: 16 vs 24")
        }
        var deep = TrainingModels.config(); deep.depth = 4
        XCTAssertThrowsError(try Finetuner.checkPair(student: student, teacher: TrainingModels.dense(deep, seed: 1))) {
            XCTAssertTrue("\($0)".contains("depth: 3 vs 4"), "\($0)")
        }
        XCTAssertThrowsError(try Finetuner.checkPair(student: student, teacher: student)) {
            XCTAssertTrue("\($0)".contains("teacher must be the uncompressed fp32 model"), "\($0)")
        }
        XCTAssertThrowsError(try Finetuner(student: student, teacher: teacher, data: TensorImageSet(tensors: []),
                                           options: options(steps: 1))) {
            XCTAssertTrue("\($0)".contains("no images"), "\($0)")
        }
        // a checkpoint of another student, and one of other options
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ck = dir.appendingPathComponent("other.ckpt").path
        var o = options(steps: 2); o.checkpointPath = ck
        _ = try Finetuner(student: TrainingModels.fips(config, seed: 99), teacher: teacher, data: data, options: o).run()
        var r = options(steps: 2); r.resumePath = ck
        XCTAssertThrowsError(try train(r)) { XCTAssertTrue("\($0)".contains("from another model"), "\($0)") }
        _ = try train(o)
        var other = options(steps: 2); other.resumePath = ck; other.learningRate = 1e-3
        XCTAssertThrowsError(try train(other)) { XCTAssertTrue("\($0)".contains("other training options"), "\($0)") }
        var bytes = try Data(contentsOf: URL(fileURLWithPath: ck)); bytes[100] ^= 1
        try bytes.write(to: URL(fileURLWithPath: ck))
        XCTAssertThrowsError(try train(r)) { XCTAssertTrue("\($0)".contains("corrupt"), "\($0)") }
    }

    /// The command end to end: a run on a folder writes the model and removes its
    /// checkpoint; a packed student, a mismatched teacher and an empty folder
    /// fail with one line naming the problem and write nothing.
    func testFinetuneCommand() throws {
        let fips = TestPaths.products.appendingPathComponent("fips")
        try TestPaths.require(fips.path)
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        func path(_ n: String) -> String { dir.appendingPathComponent(n).path }
        try ArtifactWriter.write(student, precision: .f32, to: path("s.fips"))
        try ArtifactWriter.write(teacher, precision: .f32, to: path("t.fips"))
        try ArtifactWriter.write(teacher, precision: .int8, to: path("t8.fips"))
        var wide = TrainingModels.config(); wide.dim = 24; wide.mlpDim = 48
        try ArtifactWriter.write(TrainingModels.dense(wide, seed: 1), precision: .f32, to: path("wide.fips"))
        let images = dir.appendingPathComponent("images"), empty = dir.appendingPathComponent("empty")
        for d in [images, empty] { try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true) }
        for f in ["chelsea_q90.jpg", "grey.png"] {
            try FileManager.default.copyItem(at: TestPaths.deviceFixtures.appendingPathComponent("images").appendingPathComponent(f), to: images.appendingPathComponent(f))
        }
        let common = ["--images", "2", "--steps", "2", "--batch", "2", "--threads", "1"]
        let (rc, out, err) = try runProcess(fips, ["finetune", "--model", path("s.fips"), "--teacher", path("t.fips"),
                                                   "--data", images.path, "-o", path("out.fips")] + common)
        XCTAssertEqual(rc, 0, err)
        XCTAssertTrue(out.contains("fine-tuned 2 steps"), out)
        // by default a float student is written with the teacher's head
        let out0 = ArtifactReaderHost.load(try Artifact(path: path("out.fips")))
        XCTAssertEqual(out0[TensorNames.headWeight].data, teacher[TensorNames.headWeight].data)
        XCTAssertTrue(err.contains("loss features+cls+logits, the teacher's head"), err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("out.fips.ckpt")))
        for (student, teacher, data, expected) in [
            ("t8.fips", "t.fips", images.path, "must be an fp32 model"),
            ("s.fips", "t8.fips", images.path, "the teacher must be an fp32 model"),
            ("s.fips", "wide.fips", images.path, "differ in width: 16 vs 24"),
            ("s.fips", "t.fips", empty.path, "no JPEG or PNG images"),
            ("s.fips", "t.fips", path("missing"), "no such folder"),
        ] {
            let (rc, _, err) = try runProcess(fips, ["finetune", "--model", path(student), "--teacher", path(teacher),
                                                     "--data", data, "-o", path("bad.fips")] + common)
            XCTAssertNotEqual(rc, 0)
            XCTAssertTrue(err.contains(expected), "\(expected): \(err)")
            XCTAssertEqual(err.split(separator: "\n").count, 1, err)
            XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad.fips")))
        }
    }
}
