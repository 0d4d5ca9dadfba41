import ArgumentParser
import Foundation
import FipsArtifactWriter
import FipsHostModel
import FipsImport

/// Quantises an existing float artifact (imported or FiPS-compressed), so
/// one compression can be tried at several bit widths.
struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantise a float model's linear maps for the integer runtime (artifact version 2).",
        discussion: """
        Runs the float model over the calibration images, collecting each linear
        map's input covariance (for GPTQ rounding) and |x| histogram (for the
        static int8 activation scale), then packs every linear map: attention,
        MLP (or a FiPS MLP's shared basis and projections), head. 8-bit weights
        have one scale per output channel; 4- and 3-bit weights one per 32
        inputs. Pruned 8-bit projections are stored sparse when that is smaller.
        Prints each map's bits, format, bytes, relative output error on the
        calibration inputs and activation scale.

        EXAMPLES:
          fips quantize --model dinov2_s.fips --calib fashion-mnist --bits 8 -o dinov2_s.q8.fips
          fips quantize --model fips33.fips --calib photos/ --bits 4 -o fips33.q4.fips
          fips quantize --model m.fips --calib photos/ --block-bits 0-3:8,4-11:4 --rounding nearest -o m.mixed.fips
          fips quantize --model m.fips --bits 8 --rounding nearest --act-calibration dynamic -o m.q8.fips
        """)

    @Option(help: "The float model: .fips, .onnx or .safetensors.") var model: String
    @Option(help: "Calibration images: a folder of JPEG/PNG, or 'fashion-mnist'.") var calib: String?
    @Option(help: "Calibration images to use.") var calibImages = 128
    @Option(help: "Threads for calibration.") var threads = 2
    @OptionGroup(title: "Quantisation") var quant: QuantizeOptions
    @Option(name: .shortAndLong, help: "Output artifact path.") var output: String

    func validate() throws {
        if !quant.enabled { throw ValidationError("say how many bits: --bits 8|4|3|2 or --block-bits") }
    }

    func run() throws {
        let start = Date()
        var vit: ViTModel
        do {
            vit = try ModelImporter.loadArtifactOrImport(path: model)
        } catch { throw CommandFailure(description: "\(error)") }
        let config = vit.config
        let quantized = try quant.quantize(&vit, calibration: calib.map { c in
            { try calibrationImages(c, count: calibImages, config: config) } }, threads: threads)
        do { try ArtifactWriter.write(vit, precision: .f32, quantized: quantized, to: output) } catch {
            throw CommandFailure(description: "\(error)")
        }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        print("wrote \(output): \(bytes) bytes in " + String(format: "%.1f s", Date().timeIntervalSince(start)))
    }
}
