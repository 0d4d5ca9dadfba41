import ArgumentParser
import Foundation
import FipsArtifact
import FipsArtifactWriter
import FipsData
import FipsHostModel
import FipsQuantize

/// Where labelled images come from, shared by `fips head` and `fips eval`.
struct LabelledSourceOptions: ParsableArguments {
    @Flag(help: "Use Fashion-MNIST (Debian dataset-fashion-mnist): the first --per-class images of each class (training split for head, test split for eval).")
    var fashionMnist = false

    @Option(help: "Images per class taken from Fashion-MNIST, in file order.")
    var perClass = 200

    @Option(help: "Fashion-MNIST images per class to skip before taking --per-class (a disjoint subset, e.g. to see how much a head depends on its training images).")
    var skipPerClass = 0

    @Option(help: "Directory of the Fashion-MNIST idx files (gzip).")
    var fashionMnistDir = FashionMNIST.defaultDirectory

    @Option(help: "A labelled folder: one subfolder of JPEG/PNG images per class (class names = subfolder names, sorted).")
    var folder: String?

    var chosen: Bool { fashionMnist || folder != nil }

    func validateChoice(allowNone: Bool) throws {
        if fashionMnist && folder != nil { throw ValidationError("give either --fashion-mnist or --folder, not both") }
        if !allowNone && !chosen { throw ValidationError("give --fashion-mnist or --folder DIR") }
        if perClass < 1 { throw ValidationError("--per-class must be at least 1") }
        if skipPerClass < 0 { throw ValidationError("--skip-per-class must not be negative") }
    }

    func load(split: FashionMNIST.Split, config: ViTConfig) throws -> (any ImageSet, String) {
        if fashionMnist {
            let ds = try FashionMNIST.load(split: split, directory: fashionMnistDir)
            let idx = ds.firstPerClass(perClass, skipping: skipPerClass)
            guard idx.count == perClass * FashionMNIST.names.count else {
                throw DataError("Fashion-MNIST \(split.rawValue) has fewer than \(skipPerClass + perClass) images in some class")
            }
            let which = skipPerClass > 0 ? "images \(skipPerClass)..<\(skipPerClass + perClass)" : "first \(perClass)"
            return (ImageSubset(ds, indices: idx), "Fashion-MNIST \(split.rawValue), \(which) per class")
        }
        let f = try ImageFolder.openLabelled(folder!, config: config)
        var what = "\(folder!): \(f.count) images, \(f.classNames.count) classes"
        if !f.skipped.isEmpty { what += ", \(f.skipped.count) undecodable skipped" }
        return (f, what)
    }
}

func loadModel(_ path: String) throws -> ViTModel {
    do { return try ArtifactReaderHost.load(path: path) } catch { throw CommandFailure(description: "\(error)") }
}

/// A run-time failure (bad file, bad folder): printed as one "fips: error:" line,
/// exit status 3 (CommandLineMain), without the usage text a ValidationError adds.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
}

struct Head: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a linear (multinomial logistic-regression) head on a model's features and store it in the artifact.",
        discussion: """
        Extracts the final-LayerNorm CLS feature (optionally with the patch-token mean)
        of every training image on the host (OpenBLAS, batched), fits softmax regression
        with L2 by L-BFGS (deterministic), folds the feature standardisation into the
        weights and writes head.weight [classes, dim], head.bias and the class names
        into a copy of the artifact. Prints the training accuracy. With --prototypes
        nothing is trained: each class is the mean direction of its examples' centred
        features, and an image goes to the nearest by cosine (a linear head too, so the
        board runs it as is).

        A float artifact is written back as fp32. A packed integer artifact (the
        output of fips quantize, fips compress --bits or fips-plan) keeps its packed
        tensors byte for byte: the features come from the integer runtime, as on the
        board, and the new head is stored at the old head's bit-width, so the file
        stays the size it was planned to be.

        EXAMPLES:
          fips head --model dinov2_s.fips --fashion-mnist --per-class 200 -o dinov2_s_fmnist.fips
          fips head --model dinov2_s.fips --folder photos_by_class/ --l2 auto -o mine.fips
          fips head --model dinov2_s.fips --folder five_of_each/ --prototypes -o fewshot.fips
        """)

    @Option(help: "The backbone artifact (.fips).") var model: String
    @OptionGroup var source: LabelledSourceOptions
    @Option(name: .shortAndLong, help: "Output artifact path.") var output: String
    @Option(help: "L2 strength λ (on standardised features, mean loss + λ/2‖W‖²), or 'auto' for 3-fold cross-validation over 1e-4…1e-1.")
    var l2 = "1e-2"
    @Option(help: "Head input: cls, cls-patch-mean (CLS ‖ mean of patch tokens, as HF Dinov2ForImageClassification), or cls-distillation (CLS ‖ distillation token, distilled DeiT).")
    var pooling = "cls"
    @Flag(help: "No training (few-shot: a handful of images per class in --folder): each class is the mean direction of its examples' features centred on the mean of all of them, and an image goes to the nearest by cosine; stored as the linear head it exactly is.")
    var prototypes = false
    @Option(help: "Images per forward pass.") var batch = 8
    @Option(help: "Threads.") var threads = 2

    func validate() throws {
        try source.validateChoice(allowNone: false)
        if !["cls", "cls-patch-mean", "cls-distillation"].contains(pooling) {
            throw ValidationError("--pooling must be cls, cls-patch-mean or cls-distillation")
        }
        if l2 != "auto" && (Double(l2) == nil || Double(l2)! < 0) { throw ValidationError("--l2 must be a non-negative number or 'auto'") }
        if prototypes && l2 != "1e-2" { throw ValidationError("--l2 is for a trained head; --prototypes trains nothing") }
    }

    func run() throws {
        // Opened (and checksummed) once: the host model for a float artifact,
        // the mapping itself for the integer runtime and the verbatim copy.
        let artifact: Artifact
        do { artifact = try Artifact(path: model) } catch { throw CommandFailure(description: error.message) }
        var vit = ArtifactReaderHost.load(artifact)
        let packed = artifact.tensors.contains { $0.dtype.weightBits != nil }
        let (images, what) = try withValidation { try source.load(split: .train, config: vit.config) }
        guard let labels = images.labels else { throw CommandFailure(description: "the training set has no labels") }
        let pool: ViTConfig.HeadPooling = pooling == "cls" ? .cls : pooling == "cls-patch-mean" ? .clsAndPatchMean : .clsAndDistillation
        if (pool == .clsAndDistillation) != (pool != .cls && vit.config.hasDistillationToken) {
            throw CommandFailure(description: vit.config.hasDistillationToken
                ? "\(model): --pooling \(pooling) is not for a distilled DeiT (its tokens: class, distillation, patches); use cls or cls-distillation"
                : "\(model): --pooling cls-distillation needs a distillation token, which this model has not")
        }
        // Extract backbone features only: a head already in the artifact is replaced.
        var backbone = vit
        backbone.config.numClasses = 0
        backbone.tensors[TensorNames.headWeight] = nil
        backbone.tensors[TensorNames.headBias] = nil
        printError("training set: \(what)" + (packed ? " (features from the integer runtime)" : ""))
        let f = try withValidation {
            try FeatureExtractor.extract(backbone, images: images, batch: batch, threads: threads, patchMean: pool == .clsAndPatchMean,
                                         runtimeArtifact: packed ? artifact : nil)
        }
        let x = f.headInput(pool)
        let dim = pool == .cls ? f.dim : 2 * f.dim
        let C = images.classNames.count
        let head: LogisticHead, trainAccuracy: Double, summary: String
        if prototypes {
            head = PrototypeHead.fit(features: x, count: f.count, dim: dim, labels: labels, classes: C)
            trainAccuracy = Metrics.topK(head.logits(x, count: f.count), classes: C, labels: labels, k: 1)
            summary = "head: \(C) classes x \(dim), the nearest centred class direction of \(f.count) examples (no training)"
        } else {
            var options = LogisticHead.Options()
            if l2 == "auto" {
                let cv = LogisticHead.crossValidateL2(features: x, count: f.count, dim: dim, labels: labels, classes: C)
                options.l2 = cv.best
                print("l2 cross-validation: " + zip([1e-4, 1e-3, 1e-2, 1e-1], cv.accuracies)
                    .map { String(format: "λ=%g %.2f%%", $0.0, 100 * $0.1) }.joined(separator: ", ") + String(format: " → λ=%g", cv.best))
            } else {
                options.l2 = Double(l2)!
            }
            let rep: LogisticHead.Report
            (head, rep) = LogisticHead.train(features: x, count: f.count, dim: dim, labels: labels, classes: C, options: options)
            trainAccuracy = rep.trainAccuracy
            summary = String(format: "head: %d classes x %d, λ=%g, L-BFGS %d iterations (%@, max |grad| %.1e), loss %.4f, %.2f s",
                             C, dim, options.l2, rep.iterations, rep.converged ? "converged" : "not converged", rep.gradientNorm, rep.loss, rep.seconds)
        }
        var stored = ""
        if packed {
            let r = PackedHeadReplacement.serialize(artifact, weight: head.weight, bias: head.bias, labels: images.classNames, pooling: pool,
                                                    headInput: x, count: f.count)
            do { try ArtifactWriter.writeAtomically(r.bytes, to: output) } catch { throw CommandFailure(description: "\(error)") }
            stored = String(format: ", stored %@ (%d bytes); backbone copied packed, file %.2f MB",
                            r.headFormat, r.headBytes, Double(r.bytes.count) / 1e6)
        } else {
            head.install(into: &vit, labels: images.classNames, pooling: pool)
            do { try ArtifactWriter.write(vit, precision: .f32, to: output) } catch { throw CommandFailure(description: "\(error)") }
        }
        print(String(format: "features: %d images in %.1f s (%.1f ms/image, forward %.1f ms/image), batch %d, %d threads",
                     f.count, f.seconds, 1000 * f.seconds / Double(f.count), 1000 * f.forwardSeconds / Double(f.count), batch, threads))
        print(summary)
        print(String(format: "train top-1: %.2f%%", 100 * trainAccuracy) + stored)
        print("wrote \(output)")
    }
}

/// Turns data-layer errors into one clean `Error:` line, exit status 1.
func withValidation<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as DataError { throw CommandFailure(description: e.description) }
}
