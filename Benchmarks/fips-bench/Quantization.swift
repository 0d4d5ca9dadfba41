// swift build -c release --product fips-bench && .build/release/fips-bench quantization [58]
import Foundation
import FipsArtifact
import FipsData
import FipsHostModel
import FipsArtifactWriter
import FipsQuantize

/// `fips-bench quantization`: RTN vs GPTQ output error per layer type on the real model.
/// Moved from QuantizeTests.testReportDINOv2Quantisation (FIPS_QUANT_REPORT=1).
enum QuantizationBench {
    /// Inputs of several sets back to back.
    struct JoinedImages: ImageSet {
        var parts: [any ImageSet]
        var count: Int { parts.reduce(0) { $0 + $1.count } }
        var labels: [Int]? { nil }
        var classNames: [String] { [] }
        func write(_ index: Int, config: ViTConfig, into dst: UnsafeMutablePointer<Float>) throws {
            var i = index
            for p in parts {
                if i < p.count { return try p.write(i, config: config, into: dst) }
                i -= p.count
            }
        }
    }

    /// Relative output error per layer type, RTN vs GPTQ at 8/4/3 bits, on
    /// the calibration inputs (in-sample) and on held-out Fashion-MNIST test
    /// images; GPTQ's time for the whole model; the activation clips.
    static func run(fashionMNIST fm: Int) throws {
        let path = BenchPaths.data.appendingPathComponent("dinov2_s.fips").path
        try BenchPaths.require(path)
        let model = try ArtifactReaderHost.load(path: path)
        let c = model.config
        let photos = try ImageFolder.open(BenchPaths.photos.path, config: c)
        let train = try FashionMNIST.load(split: .train)
        let test = try FashionMNIST.load(split: .test)
        let calib = JoinedImages(parts: [photos, ImageSubset(train, indices: train.calibrationIndices(count: fm, skipPerClass: 200))])
        let held = ImageSubset(test, indices: test.firstPerClass(3))
        var t0 = Date()
        let cal = try CalibrationPass.run(model, images: calib)
        print(String(format: "calibration pass: %d images (%d photos + %d Fashion-MNIST train), %.1f s",
                     calib.count, photos.count, fm, Date().timeIntervalSince(t0)))
        t0 = Date()
        var ho = CalibrationPass.Options()
        ho.histogramBins = 2
        let heldStats = try CalibrationPass.run(model, images: held, options: ho)
        print(String(format: "held-out pass: %d Fashion-MNIST test images, %.1f s", held.count, Date().timeIntervalSince(t0)))

        func kind(_ name: String) -> String { String(name.split(separator: ".").suffix(2).joined(separator: ".")) }
        let layers = CalibrationPass.expectedLayers(model)
        var kinds = [String]()
        for l in layers where !kinds.contains(kind(l.name)) { kinds.append(kind(l.name)) }
        // errors[bits][kind] = [(rtnIn, gptqIn, rtnOut, gptqOut)]
        var errors = [Int: [String: [(Double, Double, Double, Double)]]]()
        var gptqSeconds = [Int: Double](), rtnSeconds = [Int: Double]()
        let hessians = Dictionary(uniqueKeysWithValues: layers.map { ($0.name, cal[$0.name]!.hessian) })
        for bits in [8, 4, 3] {
            for (name, cols) in layers {
                let w = model[name + ".weight"]
                precondition(w.shape[1] == cols, "\(name): \(w.shape[1]) columns, expected \(cols)")
                let h = hessians[name]!, hh = heldStats[name]!.hessian
                var t = Date()
                let rtn = WeightQuantizer.quantize(w.data, rows: w.shape[0], cols: cols, bits: bits)
                rtnSeconds[bits, default: 0] += Date().timeIntervalSince(t)
                t = Date()
                let gptq = WeightQuantizer.quantize(w.data, rows: w.shape[0], cols: cols, bits: bits, rounding: .gptq, hessian: h)
                gptqSeconds[bits, default: 0] += Date().timeIntervalSince(t)
                let e = (WeightQuantizer.outputError(original: w.data, quantized: rtn, hessian: h),
                         WeightQuantizer.outputError(original: w.data, quantized: gptq, hessian: h),
                         WeightQuantizer.outputError(original: w.data, quantized: rtn, hessian: hh),
                         WeightQuantizer.outputError(original: w.data, quantized: gptq, hessian: hh))
                errors[bits, default: [:]][kind(name), default: []].append(e)
            }
        }
        print("relative output error tr(ΔW H ΔWᵀ)/tr(W H Wᵀ), mean over blocks (calibration H | held-out H)")
        print("bits  layer       RTN cal    GPTQ cal   RTN held   GPTQ held")
        for bits in [8, 4, 3] {
            for k in kinds {
                let v = errors[bits]![k]!
                func mean(_ f: ((Double, Double, Double, Double)) -> Double) -> Double { v.map(f).reduce(0, +) / Double(v.count) }
                print(String(format: "%-4d  %-10@  %.3e  %.3e  %.3e  %.3e", bits, k as NSString,
                             mean { $0.0 }, mean { $0.1 }, mean { $0.2 }, mean { $0.3 }))
            }
        }
        for bits in [8, 4, 3] {
            print(String(format: "%d bits: RTN %.2f s, GPTQ %.2f s for all %d layers", bits, rtnSeconds[bits]!,
                         gptqSeconds[bits]!, layers.count))
        }
        print("activation clips, mean over blocks: absmax | p99.99 | mse (mse's error / absmax's error)")
        for k in kinds {
            var a = 0.0, p = 0.0, m = 0.0, ratio = 0.0, n = 0.0
            for (name, _) in layers where kind(name) == k {
                let mx = ActivationCalibrator.range(cal[name]!, method: .absMax)
                let pc = ActivationCalibrator.range(cal[name]!, method: .percentile(99.99))
                let ms = ActivationCalibrator.range(cal[name]!, method: .mse)
                a += Double(mx.clip); p += Double(pc.clip); m += Double(ms.clip)
                ratio += ms.meanSquaredError / mx.meanSquaredError; n += 1
            }
            print(String(format: "%-10@  %8.2f  %8.2f  %8.2f  (%.3f)", k as NSString, a / n, p / n, m / n, ratio / n))
        }
    }
}
