import ArgumentParser
import Foundation
import FipsArtifact
import FipsArtifactWriter
import FipsBLASBackend
import enum FipsDeviceSupport.BuildInfo
import FipsCommandLine
import FipsExport
import FipsHostModel
import FipsImage
import FipsImport
import FipsViT

@main
struct Fips: ParsableCommand {
    /// The kit's exit statuses (0, 1, 2 usage, 3 model or file) instead of ArgumentParser's.
    static func main() { CommandLineMain.run(Fips.self, program: "fips") }

    static let configuration = CommandConfiguration(
        commandName: "fips",
        abstract: "Import, inspect and benchmark Vision Transformers for the FiPS Edge Kit.",
        discussion: """
        EXAMPLES:
          fips import data/vit_s_focus.onnx -o dinov2_s.fips
          fips import data/vit_s_focus.onnx -o dinov2_s.int8.fips --int8
          fips import data/vit_s_focus.onnx --bits 8 --calib fashion-mnist -o dinov2_s.q8.fips
          fips import data/vit_s_focus.onnx --bits 4 --calib photos/ --act-calibration percentile:99.99 -o d.q4.fips
          fips import data/vit_s_focus.onnx --block-bits 0-5:8,6-11:4 --calib photos/ -o d.mixed.fips
          fips import vit-base/model.safetensors -o vit_b.fips
          fips head --model dinov2_s.fips --fashion-mnist -o dinov2_s_fmnist.fips
          fips compress --model dinov2_s_fmnist.fips --calib fashion-mnist --mlp-budget 0.5 -o fips33.fips
          fips finetune --model fips33.fips --teacher dinov2_s_fmnist.fips --data fashion-mnist -o fips33.ft.fips
          fips eval --model fips33.fips --fashion-mnist --reference dinov2_s.fips
          fips info dinov2_s.fips
          fips info --json fips33.fips
          fips export fips33.fips --onnx fips33.onnx
          fips bench --model dinov2_s.fips --threads 2
        """,
        version: BuildInfo.versionLine("fips"),
        subcommands: [Import.self, Compress.self, Finetune.self, Quantize.self, Head.self, Eval.self, Info.self, Export.self, Forward.self, Bench.self, Latency.self])
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert an ONNX or safetensors ViT into a .fips artifact.",
        discussion: """
        ONNX: the DINOv2 backbone export (HF Dinov2Model graph); the graph is walked
        up to /backbone/layernorm/Add_1_output_0 and the rest is ignored.
        safetensors: Hugging Face ViT/DeiT/DINOv2 names or timm vit_*/deit_* names,
        configuration from a config.json beside the file, else from tensor shapes.

        EXAMPLES:
          fips import data/vit_s_focus.onnx -o dinov2_s.fips
          fips import data/vit_s_focus.onnx -o dinov2_s.int8.fips --int8
          fips import data/vit_s_focus.onnx --bits 8 --calib fashion-mnist -o dinov2_s.q8.fips
          fips import data/vit_s_focus.onnx --bits 4 --calib photos/ --act-calibration percentile:99.99 -o d.q4.fips
          fips import data/vit_s_focus.onnx --block-bits 0-5:8,6-11:4 --calib photos/ -o d.mixed.fips
          fips import deit-small/model.safetensors --image-size 224 -o deit_s.fips
        """)

    @Argument(help: ArgumentHelp("The model: .onnx, .safetensors, or a directory holding model.safetensors; the same as --model.", valueName: "model"))
    var positional: String?

    @Option(name: .customLong("model"), help: "The model to import (.onnx, .safetensors, or a directory).")
    var modelOption: String?

    var model: String { modelOption ?? positional ?? "" }

    func validate() throws { try ModelArgument.check(positional, modelOption, missing: "missing the model to import: --model PATH") }

    @Option(name: .shortAndLong, help: "Output artifact path.")
    var output: String

    @Flag(help: """
        Store the linear layers as int8 with one scale per output row (artifact version 1); the runtime \
        quantises each input row to int8 on the fly and multiplies int8 x int8. --bits 8 is the packed \
        format of the integer runtime (version 2).
        """)
    var int8 = false

    @OptionGroup(title: "Quantisation for the integer runtime") var quant: QuantizeOptions

    @Option(help: "Calibration images for --bits: a folder of JPEG/PNG, or 'fashion-mnist'.")
    var calib: String?

    @Option(help: "Calibration images to use.") var calibImages = 128

    @Option(help: "Threads for calibration.") var threads = 2

    @Option(help: "Input resolution when the checkpoint does not say (default: from config.json, else 224).")
    var imageSize: Int?

    @Option(help: "Attention heads when the checkpoint does not say (default: from config.json, else width/64).")
    var heads: Int?

    func run() throws {
        var options = ImportOptions()
        if let s = imageSize { options.imageSize = s }
        if let h = heads { options.heads = h }
        let start = Date()
        var vit: ViTModel
        do { vit = try ModelImporter.load(path: model, options: options) } catch {
            throw CommandFailure(description: "\(error)")
        }
        if int8 && quant.enabled { throw ValidationError("--int8 and --bits/--block-bits are two different formats; pick one") }
        var quantized = [String: QuantizedTensor]()
        if quant.enabled {
            let config = vit.config
            quantized = try quant.quantize(&vit, calibration: calib.map { c in
                { try calibrationImages(c, count: calibImages, config: config) } }, threads: threads)
        }
        do { try ArtifactWriter.write(vit, precision: int8 ? .int8 : .f32, quantized: quantized, to: output) } catch {
            throw CommandFailure(description: "\(error)")
        }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        let c = vit.config
        print("wrote \(output): \(quant.enabled ? "packed integer weights" : int8 ? "int8" : "fp32"), \(c.depth) blocks, width \(c.dim), \(c.heads) heads, MLP \(c.mlpDim), "
              + "\(c.tokenCount) tokens, \(c.numClasses) classes, \(bytes) bytes in "
              + String(format: "%.1f s", Date().timeIntervalSince(start)))
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the host fp32 forward pass (OpenBLAS sgemm) of a model, batch 1.",
        discussion: """
        Prints one JSON line with the median and other percentiles in milliseconds.
        Benchmarks/forward_vs_onnxruntime.py runs this next to onnxruntime in one run.

        EXAMPLE:
          fips bench --model dinov2_s.fips --threads 2 --runs 30
        """)

    @Option(help: "A .fips artifact or anything `fips import` reads.")
    var model: String
    @Option(help: "OpenBLAS threads.") var threads = 2
    @Option(help: "Timed runs.") var runs = 30
    @Option(help: "Untimed warm-up runs.") var warmup = 3
    @Option(help: "Images per forward pass.") var batch = 1
    @Option(name: .customLong("backend"), help: "Which forward pass: blas (host, OpenBLAS) or portable (the device kernels). Not fips-run's --kernel, which picks one integer GEMM kernel.")
    var kernels = "blas"

    func run() throws {
        let vit = try ModelImporter.loadArtifactOrImport(path: model)
        let c = vit.config
        let n = c.channels * c.imageSize * c.imageSize
        var rng = SplitMix64(seed: 1)
        let input = (0..<(batch * n)).map { _ in Float(rng.nextUnit() * 2 - 1) }
        var features = [Float](repeating: 0, count: batch * c.tokenCount * c.dim)
        var times = [Double]()
        let forward: () -> Void
        if kernels == "portable" {
            let weights = HostWeights(vit)
            let ex = try ViTExecutor(config: c, backend: PortableBackend(), maxBatch: batch,
                                     owner: AnyObjectBox(release: { _ = weights }), lookup: { weights.views[$0] })
            forward = { ex.forward(batch: batch, images: input, features: &features) }
        } else {
            let ex = try ViTExecutor<BLASBackend>.host(vit, maxBatch: batch, threads: threads)
            forward = { ex.forward(batch: batch, images: input, features: &features) }
        }
        for i in 0..<(warmup + runs) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            forward()
            let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            if i >= warmup { times.append(ms) }
        }
        times.sort()
        func pct(_ p: Double) -> Double { times[min(times.count - 1, Int(p * Double(times.count - 1) + 0.5))] }
        print(String(format: "{\"kernels\": \"%@\", \"threads\": %d, \"batch\": %d, \"runs\": %d, \"median_ms\": %.3f, \"p10_ms\": %.3f, \"p90_ms\": %.3f, \"min_ms\": %.3f}",
                     kernels, threads, batch, runs, pct(0.5), pct(0.1), pct(0.9), times[0]))
    }
}
