import ArgumentParser
import Foundation
import FipsArtifact
import FipsArtifactWriter
import FipsCompress
import FipsData
import FipsHostModel
import FipsImport

struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compress a ViT's MLPs with FiPS (shared bases, sparse projections, block-wise reconstruction).",
        discussion: """
        Records every block's MLP input and output on the calibration images (the
        original model, teacher forcing), factorises each group of consecutive
        blocks (fc1ᵀ and fc2 concatenated, SVD, shared basis U, per-layer V), prunes
        V globally on a cubic schedule and trains U, V and the biases on the MSE of
        each MLP's output. `--method svd` is the per-layer truncated SVD baseline at
        the same parameter count, with the same reconstruction. Prints parameters
        per part before and after, the whole-model compression, per-block errors
        and the time of each stage. The artifact is written atomically.

        EXAMPLES:
          fips compress --model dinov2_s.fips --calib fashion-mnist --mlp-budget 0.5 -o fips33.fips
          fips compress --model dinov2_s.fips --calib photos/ --augment 256 --mlp-budget 0.5 --sparsity 0.5 -o m.fips
          fips compress --model vit.onnx --calib photos/ --method svd --mlp-budget 0.5 -o svd33.fips
          fips compress --model head.fips --calib fashion-mnist --mlp-budget 0.5 --refit-head fashion-mnist -o m.fips
          fips compress --model dinov2_s.fips --calib fashion-mnist --mlp-budget 0.5 --bits 8 -o fips33.q8.fips
        """)

    @Option(help: "The model: .fips, .onnx or .safetensors.") var model: String
    @Option(help: "Calibration images: a folder of JPEG/PNG, or 'fashion-mnist' (training images after the first 200 per class).")
    var calib: String
    @Option(help: "Calibration images to use.") var calibImages = 256
    @Option(help: "Stretch a small calibration folder to this many images with random resized crops and flips.")
    var augment: Int?
    @Option(help: "Tokens recorded per calibration image (CLS included).") var tokensPerImage = 64
    @Option(help: "Fraction of the MLP parameters kept (0.5 ≈ 33% whole-model compression on a ViT).")
    var mlpBudget = 0.5
    @Option(help: "Consecutive blocks per shared basis.") var groupSize = 4
    @Option(help: "Explicit groups, e.g. '0-3,4-7,8-11' (overrides --group-size).") var groups: String?
    @Option(help: "Rank per group, comma-separated (overrides --mlp-budget).") var ranks: String?
    @Option(help: "Final sparsity of the projections V (0..1).") var sparsity = 0.0
    @Option(help: "Sparsity pattern: unstructured, 2:4 (N:M), or block RxC (e.g. block4x4).") var pattern = "unstructured"
    @Option(help: "fips, or svd (per-layer truncated SVD baseline).") var method = "fips"
    @Flag(inversion: .prefixedNo, help: "Activation-aware initialisation (whiten by the Cholesky factor of the inputs' covariance before the SVD); the default, as the compression table found best.")
    var activationAware = true
    @Option(help: "Reconstruction steps per group.") var steps = 600
    @Option(help: "Peak learning rate (AdamW, cosine decay).") var lr: Float = 3e-4
    @Option(help: "Token rows per reconstruction step.") var batchRows = 1024
    @Option(help: "Seed for token sampling and minibatches.") var seed: UInt64 = 0
    @Option(help: "Threads.") var threads = 2
    @Option(help: "After compressing, retrain the linear head on the compressed features of this labelled set: 'fashion-mnist' (200 per class) or a folder with a subfolder per class.")
    var refitHead: String?
    @OptionGroup(title: "Quantisation for the integer runtime (after compression, on the same calibration images)")
    var quant: QuantizeOptions
    @Option(name: .shortAndLong, help: "Output artifact path.") var output: String

    func validate() throws {
        if !(0..<1).contains(sparsity) { throw ValidationError("--sparsity must be in [0, 1)") }
        if mlpBudget <= 0 || mlpBudget > 1 { throw ValidationError("--mlp-budget must be in (0, 1]") }
        if CompressionMethod(rawValue: method) == nil { throw ValidationError("--method must be fips or svd") }
        _ = try parsePattern()
    }

    func parsePattern() throws -> SparsityPattern {
        if pattern == "unstructured" { return .unstructured }
        let nm = pattern.split(separator: ":")
        if nm.count == 2, let n = Int(nm[0]), let m = Int(nm[1]), n >= 1, m > n { return .nm(n: n, m: m) }
        if pattern.hasPrefix("block"), case let rc = pattern.dropFirst(5).split(separator: "x"), rc.count == 2,
           let r = Int(rc[0]), let c = Int(rc[1]), r >= 1, c >= 1 { return .block(rows: r, cols: c) }
        throw ValidationError("--pattern must be unstructured, N:M (e.g. 2:4) or blockRxC (e.g. block4x4)")
    }

    func parseGroups() throws -> [[Int]]? {
        guard let g = groups else { return nil }
        return try g.split(separator: ",").map { part in
            let ends = part.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard let lo = ends.first ?? nil, let hi = ends.last ?? nil, ends.count <= 2, lo <= hi else {
                throw ValidationError("--groups: cannot read '\(part)' (use e.g. 0-3,4-7,8-11)")
            }
            return Array(lo...hi)
        }
    }

    func run() throws {
        let start = Date()
        var timings = [(String, Double)]()
        func lap(_ what: String, _ t0: Date) { timings.append((what, Date().timeIntervalSince(t0))) }

        var t0 = Date()
        let original: ViTModel
        do {
            original = try ModelImporter.loadArtifactOrImport(path: model)
        } catch { throw CommandFailure(description: "\(error)") }
        lap("load", t0)

        t0 = Date()
        let calibration: any ImageSet = try withValidation { try calibrationSet(original.config) }
        var recOptions = CalibrationRecorder.Options()
        recOptions.tokensPerImage = tokensPerImage
        recOptions.seed = seed
        recOptions.threads = threads
        let (recorded, rec) = try withValidation { try CalibrationRecorder.record(original, images: calibration, options: recOptions) }
        printError(String(format: "calibration: %d images, %d rows per block, %.0f MB, %.1f s",
                          rec.images, rec.rowsPerBlock, Double(rec.bytes) / 1e6, rec.seconds))
        lap("calibration", t0)

        var o = CompressionOptions()
        o.method = CompressionMethod(rawValue: method)!
        o.mlpBudget = mlpBudget
        o.groupSize = groupSize
        o.groups = try parseGroups()
        o.ranks = try ranks.map { try $0.split(separator: ",").map {
            guard let r = Int($0), r > 0 else { throw ValidationError("--ranks: '\($0)' is not a positive integer") }
            return r
        } }
        o.sparsity = sparsity
        o.pattern = try parsePattern()
        o.activationAware = activationAware
        o.steps = steps
        o.learningRate = lr
        o.batchRows = batchRows
        o.seed = seed
        o.threads = threads
        t0 = Date()
        let onTerminal = isatty(2) != 0
        var (compressed, report): (ViTModel, CompressionReport)
        do {
            (compressed, report) = try FipsCompressor.compress(
                original, calibration: recorded, options: o,
                progress: { line in
                    // One overwritten status line on a terminal; nothing when piped
                    // (the per-block report below says what a log needs).
                    if onTerminal { FileHandle.standardError.write(("\r\u{1b}[K" + line).data(using: .utf8)!) }
                })
            if onTerminal { printError("") }
        } catch { throw CommandFailure(description: "\(model): \(error)") }
        lap("compression", t0)

        if let source = refitHead {
            t0 = Date()
            let accuracy = try refit(&compressed, source: source)
            printError(String(format: "refit head: train top-1 %.2f%%", 100 * accuracy))
            lap("head refit", t0)
        }

        var quantized = [String: QuantizedTensor]()
        if quant.enabled {
            t0 = Date()
            quantized = try quant.quantize(&compressed, calibration: { calibration }, threads: threads)
            lap("quantisation", t0)
        }

        t0 = Date()
        do { try ArtifactWriter.write(compressed, precision: .f32, quantized: quantized, to: output) } catch { throw CommandFailure(description: "\(error)") }
        lap("write", t0)

        let before = ParameterCount(original), after = ParameterCount(compressed)
        print(report.description)
        print(parameterTable(before, after))
        let bytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        print(String(format: "whole-model compression %.1f%% (backbone parameters %d -> %d); wrote %@ (%d bytes)",
                     100 * ParameterCount.compression(before: before, after: after), before.backbone, after.backbone,
                     output, bytes))
        print("time: " + timings.map { String(format: "%@ %.1f s", $0.0, $0.1) }.joined(separator: ", ")
              + String(format: "; total %.1f s", Date().timeIntervalSince(start)))
    }

    func calibrationSet(_ c: ViTConfig) throws -> any ImageSet {
        try calibrationImages(calib, count: calibImages, config: c, augmentTo: augment, seed: seed)
    }

    /// Trains a new linear head on the compressed model's own features.
    func refit(_ vit: inout ViTModel, source: String) throws -> Double {
        let images: any ImageSet
        if source == "fashion-mnist" {
            let ds = try withValidation { try FashionMNIST.load(split: .train) }
            images = ImageSubset(ds, indices: ds.firstPerClass(200))
        } else {
            images = try withValidation { try ImageFolder.openLabelled(source, config: vit.config) }
        }
        guard let labels = images.labels else { throw CommandFailure(description: "\(source): the head set has no labels") }
        let pool = vit.config.hasHead ? vit.config.headPooling : .cls
        var backbone = vit
        backbone.config.numClasses = 0
        backbone.tensors[TensorNames.headWeight] = nil
        backbone.tensors[TensorNames.headBias] = nil
        backbone.labels = []
        let f = try withValidation {
            try FeatureExtractor.extract(backbone, images: images, threads: threads, patchMean: pool == .clsAndPatchMean)
        }
        let dim = pool == .cls ? f.dim : 2 * f.dim
        let (head, rep) = LogisticHead.train(features: f.headInput(pool), count: f.count, dim: dim, labels: labels,
                                             classes: images.classNames.count, options: LogisticHead.Options())
        head.install(into: &vit, labels: images.classNames, pooling: pool)
        return rep.trainAccuracy
    }
}

func parameterTable(_ b: ParameterCount, _ a: ParameterCount) -> String {
    func row(_ name: String, _ x: Int, _ y: Int) -> String {
        let pct = x == 0 ? 0 : 100 * (1 - Double(y) / Double(x))
        return name.padding(toLength: 22, withPad: " ", startingAt: 0)
            + String(format: "%12d %12d %8.1f%%", x, y, pct)
    }
    return ["part                         before        after  smaller",
            row("embeddings", b.embedding, a.embedding), row("attention", b.attention, a.attention),
            row("MLP", b.mlp, a.mlp), row("norms, LayerScale", b.other, a.other), row("head", b.head, a.head),
            row("backbone total", b.backbone, a.backbone)].joined(separator: "\n")
}
