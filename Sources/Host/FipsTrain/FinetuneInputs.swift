import Foundation
import FipsArtifact
import FipsArtifactWriter
import FipsData
import FipsHostModel

/// The models and images of a fine-tuning run, as the command line names them.
public enum FinetuneInputs {
    /// Reads a float artifact. A packed (integer) one is refused: training it
    /// means training through its integer grids, which `--qat` asks for
    /// (`quantisedModel`).
    public static func floatModel(_ path: String, role: String) throws -> ViTModel {
        let a: Artifact
        do { a = try Artifact(path: path) } catch { throw TrainingError("\(path): \(error.message)") }
        if let t = a.tensors.first(where: { $0.dtype != .f32 && $0.dtype != .f32CSR }) {
            throw TrainingError("\(path): the \(role) must be an fp32 model, but tensor \(t.name) is \(t.dtype.name)"
                                + (role == "student" ? " (train it through its integer grids with --qat)" : ""))
        }
        return ArtifactReaderHost.load(a)
    }

    /// The student with the teacher's head (weights, bias, classes, pooling and
    /// labels) in place of its own. A head refitted to the compressed features
    /// (`fips compress --refit-head`) stops fitting them once distillation moves
    /// them back toward the teacher's; with the teacher's head, the logits term
    /// trains exactly the decision the original model makes, and the written
    /// model carries a head that fits the features it was trained to produce.
    public static func withTeacherHead(_ student: ViTModel, teacher: ViTModel) throws -> ViTModel {
        guard teacher.config.hasHead, let w = teacher.tensors[TensorNames.headWeight],
              let b = teacher.tensors[TensorNames.headBias] else {
            throw TrainingError("--head teacher: the teacher has no head (train one with fips head)")
        }
        var s = student
        s.config.numClasses = teacher.config.numClasses
        s.config.headPooling = teacher.config.headPooling
        s.tensors[TensorNames.headWeight] = w
        s.tensors[TensorNames.headBias] = b
        s.labels = teacher.labels
        return s
    }

    /// Reads a packed artifact as a quantisation-aware student.
    public static func quantisedModel(_ path: String) throws -> QuantisedStudent {
        let a: Artifact
        do { a = try Artifact(path: path) } catch { throw TrainingError("\(path): \(error.message)") }
        return try QuantisedStudent.load(a, path: path)
    }

    /// `fashion-mnist` (or `fashion-mnist:DIR`): `count` training images after the
    /// first 200 of each class (those train the evaluation head; the test split is
    /// never used); with `augment` each input is a random resized crop and flip of
    /// one of them. A folder: its JPEG/PNG files, recursively; with `augment`,
    /// stretched to `count` inputs by random resized crops and flips.
    public static func images(_ spec: String, config: ViTConfig, count: Int, augment: Bool, seed: UInt64) throws
        -> (set: any ImageSet, description: String) {
        if spec == "fashion-mnist" || spec.hasPrefix("fashion-mnist:") {
            let dir = spec == "fashion-mnist" ? FashionMNIST.defaultDirectory : String(spec.dropFirst("fashion-mnist:".count))
            let ds: FashionMNIST
            do { ds = try FashionMNIST.load(split: .train, directory: dir) } catch { throw TrainingError("\(error)") }
            let idx = ds.calibrationIndices(count: count, skipPerClass: 200)
            guard idx.count == count else { throw TrainingError("\(dir): only \(idx.count) fine-tuning images available, \(count) asked") }
            if augment {
                // the same images, each input a random resized crop and flip of one
                return (AugmentedFashionMNIST(ds, indices: idx, count: count, augmentation: Augmentation(seed: seed)),
                        "Fashion-MNIST train, \(count) random resized crops and flips of the images after the first 200 of each class")
            }
            return (ImageSubset(ds, indices: idx), "Fashion-MNIST train, \(count) images after the first 200 of each class")
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: spec, isDirectory: &isDir), isDir.boolValue else {
            throw TrainingError("\(spec): no such folder (give a folder of JPEG/PNG images or 'fashion-mnist')")
        }
        let f: ImageFolder
        do {
            f = try ImageFolder.open(spec, config: config, augmentation: augment ? Augmentation(seed: seed) : nil,
                                     augmentedCount: augment ? count : nil)
        } catch { throw TrainingError("\(error)") }
        guard f.files.count > 0 else { throw TrainingError("\(spec): no decodable JPEG or PNG images") }
        let set: any ImageSet = augment ? f : ImageSubset(f, indices: Array(0..<min(count, f.count)))
        var what = "\(spec): \(f.files.count) images"
        if augment { what += ", stretched to \(f.count) by random resized crops and flips" }
        return (set, what)
    }
}
