import ArgumentParser
import Foundation
import FipsArtifact
import FipsArtifactWriter
import enum FipsDeviceSupport.BuildInfo
import FipsCommandLine
import FipsExport
import FipsHostModel

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write an artifact back out as an ONNX model with float weights.",
        discussion: """
        fp32, FiPS-compressed and quantised artifacts alike: integer weights are dequantised to float \
        (what `fips forward` runs), a FiPS MLP stays two MatMuls per layer (the shared basis, then \
        the layer's projection stored dense), the basis one initializer for its whole group. \
        Input `pixel_values` [1, C, S, S]; outputs `last_hidden_state` [1, T, d], `embedding` [1, d] \
        (the CLS row) and, with a head, `logits`. Opset 17, standard operators only; preprocessing \
        and labels are in metadata_props (docs/ARTIFACT.md, "ONNX export").

        EXAMPLES:
          fips export data/dinov2_s.fips --onnx dinov2_s.onnx
          fips export fips33.q4.fips --onnx fips33.dequantised.onnx
          python3 Tests/Integration/check_export.py fips33.fips
        """)

    @OptionGroup var modelArgument: ModelArgument
    var model: String { modelArgument.path }

    @Option(help: "The ONNX file to write.")
    var onnx: String

    func run() throws {
        let a: Artifact
        do { a = try Artifact(path: model) } catch { throw CommandFailure(description: error.message) }
        let vit = ArtifactReaderHost.load(a)
        if let problem = vit.validate() { throw CommandFailure(description: "\(model): \(problem)") }
        let (bytes, s) = ONNXExporter.serialize(vit, producerVersion: BuildInfo.versionLine("fips"), metadata: [
            ("fips.source", model), ("fips.source_checksum", String(format: "0x%08x", a.checksum)),
            ("fips.source_dtypes", Set(a.tensors.map(\.dtype.name)).sorted().joined(separator: ",")),
        ])
        do { try Data(bytes).write(to: URL(fileURLWithPath: onnx), options: .atomic) } catch {
            throw CommandFailure(description: "\(onnx): \(error.localizedDescription)")
        }
        print("wrote \(onnx): \(s.nodes) nodes, \(s.initializers) initializers (\(s.sharedInitializerUses) uses of an earlier one), "
              + "\(s.bytes) bytes, opset \(ONNXExporter.opset)")
    }
}
