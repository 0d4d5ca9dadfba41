import ArgumentParser
import Foundation
import FipsArtifact
import FipsArtifactWriter
import FipsData
import FipsHostModel
import FipsKernels
import FipsQuantize
import FipsViT

/// The weight and activation quantisation flags shared by `fips import`,
/// `fips compress` and `fips quantize`. Without `--bits` nothing is quantised.
struct QuantizeOptions: ParsableArguments {
    @Option(help: "Weight bits of every linear map: 8, 4, 3 or 2 (4, 3 and 2 with a scale per 32 weights). Writes a version-2 artifact (version 3 with 2-bit weights) for the integer runtime.")
    var bits: Int?
    @Option(help: "Bits per block, overriding --bits: one per block ('8,8,4,...') or ranges ('0-3:8,4-11:4', a plan's groups).")
    var blockBits: String?
    @Option(help: "Bits of the classification head.") var headBits = 8
    @Option(help: "Weight rounding: gptq (error feedback through the calibration inputs' covariance) or nearest (baseline).")
    var rounding = "gptq"
    // Dynamic by default: on DINOv2-S, per-tensor static scales cost 1.5
    // Fashion-MNIST points (GELU's output, fc2's input, is the worst: its
    // heavy tail defeats one scale), per-token scales 0 (README, Benchmarks/quant_accuracy.py).
    @Option(help: "int8 activation scales: dynamic (per token at run time, the default), or static per tensor from the calibration set: mse (clip minimising the expected error), percentile:P (e.g. percentile:99.99), absmax.")
    var actCalibration = "dynamic"
    @Option(help: "Layers whose inputs stay dynamic (per-token scales) under static calibration, comma-separated name suffixes (e.g. mlp.fc2,head).")
    var dynamicInputs: String?
    @Option(help: "SmoothQuant strength α for static activation scales: moves activation outliers into the weights (folded into the LayerNorms and value rows, exact in float); 0 turns it off.")
    var smooth: Float = 0.5

    var enabled: Bool { bits != nil || blockBits != nil }

    func validate() throws { _ = try options(depth: nil) }

    /// `depth` nil only checks the syntax; per-block lists are checked
    /// against the model once it is loaded.
    func options(depth: Int?) throws -> ModelQuantizationOptions {
        var o = ModelQuantizationOptions()
        if let b = bits {
            guard QuantFormat.denseBits.contains(b) else { throw ValidationError("--bits must be \(QuantFormat.denseBitsText), not \(b)") }
            o.bits = b
        }
        guard (0...1).contains(smooth) else { throw ValidationError("--smooth must be in [0, 1], not \(smooth)") }
        guard QuantFormat.denseBits.contains(headBits) else { throw ValidationError("--head-bits must be \(QuantFormat.denseBitsText), not \(headBits)") }
        o.headBits = headBits
        switch rounding {
        case "gptq": o.rounding = .gptq
        case "nearest": o.rounding = .nearest
        default: throw ValidationError("--rounding must be gptq or nearest, not '\(rounding)'")
        }
        o.activations = try parseActivationCalibration(actCalibration)
        o.dynamicInputs = (dynamicInputs ?? "").split(separator: ",").map { String($0) }
        if let spec = blockBits { o.blockBits = try parseBlockBits(spec, depth: depth) }
        if let d = depth, let bb = o.blockBits, bb.count != d {
            throw ValidationError("--block-bits gives \(bb.count) blocks; the model has \(d)")
        }
        return o
    }

    func parseActivationCalibration(_ s: String) throws -> ActivationCalibration? {
        switch s {
        case "mse": return .mse
        case "absmax": return .absMax
        case "dynamic": return nil
        default:
            if s.hasPrefix("percentile:"), let p = Double(s.dropFirst("percentile:".count)), p > 50, p <= 100 {
                return .percentile(p)
            }
            throw ValidationError("--act-calibration must be mse, percentile:P (50 < P ≤ 100), absmax or dynamic, not '\(s)'")
        }
    }

    func parseBlockBits(_ spec: String, depth: Int?) throws -> [Int] {
        let parts = spec.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        func bitsOf(_ s: Substring) throws -> Int {
            guard let b = Int(s), QuantFormat.denseBits.contains(b) else { throw ValidationError("--block-bits: '\(s)' is not \(QuantFormat.denseBitsText)") }
            return b
        }
        if !parts.contains(where: { $0.contains(":") }) { return try parts.map { try bitsOf(Substring($0)) } }
        var perBlock = [Int: Int]()
        for p in parts {
            let kv = p.split(separator: ":")
            let ends = kv.first?.split(separator: "-").compactMap { Int($0) } ?? []
            guard kv.count == 2, (1...2).contains(ends.count), ends.first! <= ends.last! else {
                throw ValidationError("--block-bits: cannot read '\(p)' (use e.g. 0-3:8,4-11:4)")
            }
            for i in ends.first!...ends.last! {
                if perBlock[i] != nil { throw ValidationError("--block-bits: block \(i) given twice") }
                perBlock[i] = try bitsOf(kv[1])
            }
        }
        let n = depth ?? (perBlock.keys.max()! + 1)
        return try (0..<n).map { i in
            guard let b = perBlock[i] else { throw ValidationError("--block-bits: no bits for block \(i)") }
            return b
        }
    }

    /// Calibrates (when the options need data), smooths `model` in place
    /// (static activation scales), quantises, and prints the per-layer
    /// report to standard error. Write `model` with the returned tensors.
    func quantize(_ model: inout ViTModel, calibration: (() throws -> any ImageSet)?, threads: Int) throws -> [String: QuantizedTensor] {
        let o = try options(depth: model.config.depth)
        var stats = [String: InputStatistics]()
        if o.rounding == .gptq || o.activations != nil {
            guard let images = calibration else {
                throw ValidationError("--rounding gptq and static activation scales need calibration images (--calib), or use --rounding nearest --act-calibration dynamic")
            }
            let set = try withValidation { try images() }
            var p = CalibrationPass.Options()
            p.threads = threads
            p.hessians = o.rounding == .gptq
            if smooth > 0 && o.activations != nil {
                var first = p
                first.hessians = false
                let t0 = Date()
                let maxima = try withValidation {
                    try CalibrationPass.run(model, images: set, options: first, progressLabel: "channel maxima")
                }
                let layers = ActivationSmoothing.apply(&model, statistics: maxima, alpha: smooth)
                printError(String(format: "quantisation: smoothed %d linear inputs (alpha %.2f) in %.1f s",
                                  layers.count, smooth, Date().timeIntervalSince(t0)))
            }
            let t0 = Date()
            stats = try withValidation { try CalibrationPass.run(model, images: set, options: p) }
            printError(String(format: "quantisation: statistics of %d linear inputs over %d images in %.1f s",
                              stats.count, set.count, Date().timeIntervalSince(t0)))
        }
        let t0 = Date()
        let (tensors, report) = try withValidation { try ModelQuantizer.quantize(model, statistics: stats, options: o) }
        printError(String(format: "quantisation: %d linear maps in %.1f s", report.count, Date().timeIntervalSince(t0)))
        printError("  layer                              bits format     bytes   out err   act scale")
        for r in report {
            let err = r.outputError.map { String(format: "%9.2e", $0) } ?? "        -"
            let act = r.actScale.map { String(format: "%10.3e", $0) } ?? "   dynamic"
            let name = r.name.padding(toLength: max(34, r.name.count), withPad: " ", startingAt: 0)
            let format = r.format.padding(toLength: max(9, r.format.count), withPad: " ", startingAt: 0)
            printError("  \(name) " + String(format: "%4d ", r.bits) + format + String(format: " %7d ", r.bytes) + err + " " + act)
        }
        return tensors
    }
}

/// Calibration images named by `--calib`: 'fashion-mnist' (training images
/// after the first 200 per class, which the head-training protocol uses) or
/// a folder of JPEG/PNG, optionally stretched to `augmentTo` images by random
/// resized crops and flips.
func calibrationImages(_ calib: String, count: Int, config: ViTConfig, augmentTo: Int? = nil,
                       seed: UInt64 = 0) throws -> any ImageSet {
    if calib == "fashion-mnist" {
        let ds = try FashionMNIST.load(split: .train)
        return ImageSubset(ds, indices: ds.calibrationIndices(count: count, skipPerClass: 200))
    }
    let augmentation = augmentTo.map { _ in Augmentation(seed: seed) }
    let folder = try ImageFolder.open(calib, config: config, augmentation: augmentation, augmentedCount: augmentTo)
    if !folder.skipped.isEmpty { printError("calibration: skipped \(folder.skipped.count) undecodable file(s)") }
    return ImageSubset(folder, indices: Array(0..<min(folder.count, augmentTo ?? count)))
}
