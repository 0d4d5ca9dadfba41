import ArgumentParser
import Foundation
import FipsArtifact
import FipsArtifactWriter
import FipsData
import FipsKernels
import FipsViT

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Top-1/top-5 of an artifact's head on a labelled set, and CLS/patch-token cosine against a reference model.",
        discussion: """
        --fashion-mnist evaluates on the first --per-class test images of each class;
        --folder DIR on a labelled folder (a subfolder per class); --images DIR on any
        folder of JPEG/PNG (cosines only). With --reference the same images also run
        through the reference model and the mean cosine of the CLS token and of the
        patch tokens (final LayerNorm output) is reported.

        EXAMPLES:
          fips eval --model dinov2_s_fmnist.fips --fashion-mnist
          fips eval --model fmnist.q8.fips --fashion-mnist --reference fmnist.fips --integer-nonlinear all
          fips eval --model compressed.fips --fashion-mnist --reference dinov2_s_fmnist.fips --json
          fips eval --model compressed.fips --images data/photos --reference dinov2_s.fips
        """)

    @Option(help: "The artifact to evaluate.") var model: String
    @OptionGroup var source: LabelledSourceOptions
    @Option(help: "An unlabelled folder of JPEG/PNG (searched recursively); needs --reference.") var images: String?
    @Option(help: "Reference artifact (the original model) for the cosine figures.") var reference: String?
    @Option(help: "Cache of the reference's outputs on this image set: reused when it matches (same reference file, size and date, same images), else computed and written. Saves running the reference again when many models are compared.")
    var referenceCache: String?
    @Option(help: "Patch tokens per image kept in --reference-cache (seeded sample; 0 = all 256).")
    var referencePatches = 32
    @Flag(help: "Print one JSON line on stdout (the table goes to stderr).") var json = false
    @Option(help: "Also score the head of this artifact (CLS-pooled) on the same features; repeatable. Used to compare a refitted head with the original one in one pass.")
    var alsoHead: [String] = []
    @Option(help: "Images per forward pass.") var batch = 8
    @Option(help: "Threads.") var threads = 2
    @Option(help: "Run the model on the device runtime with I-ViT integer non-linearities: softmax, gelu, layernorm (comma-separated) or all.")
    var integerNonlinear: String?

    @Flag(help: "With packed weights, run Q·Kᵀ and P·V in float instead of int8.") var floatAttention = false

    var runtimeOptions: ExecutorOptions {
        var o = ExecutorOptions()
        if floatAttention { o.integerAttention = false }
        _ = o.selectIntegerNonlinearities(integerNonlinear ?? "")   // checked in validate()
        return o
    }

    func validate() throws {
        try source.validateChoice(allowNone: true)
        if images != nil && source.chosen { throw ValidationError("give one image set: --fashion-mnist, --folder or --images") }
        if images == nil && !source.chosen { throw ValidationError("give an image set: --fashion-mnist, --folder DIR or --images DIR") }
        if images != nil && reference == nil { throw ValidationError("--images (unlabelled) only gives cosines: add --reference") }
        if referenceCache != nil && reference == nil { throw ValidationError("--reference-cache needs --reference") }
        var probe = ExecutorOptions()
        if let bad = probe.selectIntegerNonlinearities(integerNonlinear ?? "") {
            throw ValidationError("--integer-nonlinear: '\(bad)' is not softmax, gelu, layernorm or all")
        }
    }

    func run() throws {
        let artifact: Artifact
        do { artifact = try Artifact(path: model) } catch { throw CommandFailure(description: error.message) }
        let vit = ArtifactReaderHost.load(artifact)
        // Packed integer weights are evaluated as the device runs them, not
        // dequantised; so are float models asked to use integer non-linearities.
        let packed = artifact.tensors.contains { $0.dtype.weightBits != nil }
        let extras = try alsoHead.map(loadModel)
        let ref = try reference.map(loadModel)
        let set: any ImageSet
        let what: String
        if let dir = images {
            let f = try withValidation { try ImageFolder.open(dir, config: vit.config) }
            set = f
            what = "\(dir): \(f.count) images" + (f.skipped.isEmpty ? "" : ", \(f.skipped.count) undecodable skipped")
        } else {
            (set, what) = try withValidation { try source.load(split: .test, config: vit.config) }
        }
        if set.labels != nil && !vit.config.hasHead && ref == nil {
            throw CommandFailure(description: "\(model) has no head (train one with fips head) and no --reference was given: nothing to measure")
        }
        if set.labels != nil && vit.config.hasHead && set.classNames.count != vit.config.numClasses {
            throw CommandFailure(description: "the image set has \(set.classNames.count) classes, the model's head \(vit.config.numClasses)")
        }
        if set.labels != nil, vit.config.hasHead, !vit.labels.isEmpty, vit.labels != set.classNames {
            printError("warning: the model's labels (\(vit.labels.prefix(3).joined(separator: ", ")), ...) differ from the set's class names (\(set.classNames.prefix(3).joined(separator: ", ")), ...); comparing by index")
        }
        var cached: ReferenceOutputs?
        if let cachePath = referenceCache, let r = reference, let refModel = ref {
            let attrs = try? FileManager.default.attributesOfItem(atPath: r)
            let size = (attrs?[.size] as? Int) ?? 0
            let mtime = (attrs?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            let key = "\(URL(fileURLWithPath: r).standardizedFileURL.path) \(size) \(Int(mtime)) | \(what) | \(set.count) images | \(referencePatches) patches"
            if let c = ReferenceOutputs.load(from: cachePath, key: key) {
                cached = c
                printError("reference outputs from \(cachePath)")
            } else {
                let c = try withValidation {
                    try Evaluation.referenceOutputs(refModel, images: set, patchesPerImage: referencePatches, batch: batch, threads: threads)
                }
                try withValidation { try c.save(to: cachePath, key: key) }
                printError("reference outputs written to \(cachePath)")
                cached = c
            }
        }
        let rep = try withValidation {
            try Evaluation.run(model: vit, images: set, reference: cached == nil ? ref : nil, referenceOutputs: cached,
                               batch: batch, threads: threads, extraHeads: extras,
                               runtimeArtifact: packed || runtimeOptions.usesIntegerNonlinearities ? artifact : nil,
                               runtimeOptions: runtimeOptions)
        }
        var lines = ["model      \(model)", "images     \(what)"]
        func pct(_ v: Double?) -> String { v.map { String(format: "%.2f%%", 100 * $0) } ?? "-" }
        func cos(_ v: Double?) -> String { v.map { String(format: "%.6f", $0) } ?? "-" }
        if rep.top1 != nil { lines += ["top-1      \(pct(rep.top1))", "top-5      \(pct(rep.top5))"] }
        for (path, t) in zip(alsoHead, rep.extraTop1) { lines.append("top-1      \(pct(t)) with the head of \(path)") }
        if let r = reference {
            lines += ["reference  \(r)", "CLS cosine \(cos(rep.meanClsCosine)) mean, \(cos(rep.minClsCosine)) min",
                      "patch cos  \(cos(rep.meanPatchCosine)) mean" + (cached.map { " (\($0.patchesPerImage) sampled tokens per image)" } ?? "")]
        }
        lines.append(String(format: "time       %.1f s, %.1f ms/image (batch %d, %d threads%@)", rep.seconds,
                            1000 * rep.secondsPerImage, batch, threads, ref == nil || cached != nil ? "" : ", model + reference"))
        if json {
            lines.forEach(printError)
            print(rep.json(extra: [("model", "\"\(jsonEscape(model))\"")]))
        } else {
            lines.forEach { print($0) }
        }
    }
}

func jsonEscape(_ s: String) -> String {
    s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
}
