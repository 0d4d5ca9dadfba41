import Foundation
import FipsArtifact
import FipsArtifactWriter
import FipsData
import FipsHostModel

/// Quantisation-aware training of a packed artifact held in memory (the
/// planner's quantised plan, before it is written): the bytes go through a
/// private temporary file (the artifact reader maps files), come back trained
/// in the same formats, so the plan's byte count still holds (a q8-sparse
/// tensor keeps its pruned zeros and can only shrink).
public enum QuantisedArtifactTraining {
    public static func train(_ bytes: [UInt8], teacher: ViTModel, data: any ImageSet, options: FinetuneOptions,
                             progress: (FinetuneProgress) -> Void = { _ in }) throws -> (bytes: [UInt8], report: FinetuneReport, trained: Int) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fips-qat-\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("quantised.fips").path
        try ArtifactWriter.writeAtomically(bytes, to: path)
        let student = try FinetuneInputs.quantisedModel(path)
        let tuner = try Finetuner(student: student.model, teacher: teacher, data: data, options: options, quantised: student)
        let (model, report) = try tuner.run(progress: progress)
        let tensors = ArtifactWriter.encode(model, precision: .f32, quantized: tuner.packedTensors()!)
        return (ArtifactWriter.serialize(config: model.config, labels: model.labels, tensors: tensors), report, tuner.layout.trainableCount)
    }
}
