import ArgumentParser
import FipsArtifactWriter
import FipsBLASBackend
import FipsCommandLine
import FipsHostModel
import FipsViT

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the host float forward pass on one preprocessed input tensor; print the outputs as JSON.",
        discussion: """
        The reference that Tests/Integration/check_export.py compares an exported ONNX model with: \
        the artifact loaded as `fips export` loads it (integer weights dequantised), run on OpenBLAS. \
        Prints {"embedding": [d], "last_hidden_state_shape": [T, d], "last_hidden_state": [T·d], \
        "logits": [classes] (with a head)}.

        EXAMPLE:
          fips forward --model data/dinov2_s.fips --input data/golden/chelsea.input.npy
        """)

    @Option(help: "A .fips artifact.") var model: String
    @Option(help: "float32 .npy of shape [C, S, S] or [1, C, S, S], already preprocessed.") var input: String
    @Option(help: "OpenBLAS threads.") var threads = 1

    func run() throws {
        let vit: ViTModel
        let x: HostTensor
        do { vit = try ArtifactReaderHost.load(path: model); x = try NpyFile.readFloat32(input) } catch {
            throw CommandFailure(description: "\(error)")
        }
        let c = vit.config
        guard x.count == c.channels * c.imageSize * c.imageSize else {
            throw CommandFailure(description: "\(input) has shape \(x.shape); the model takes [\(c.channels), \(c.imageSize), \(c.imageSize)]")
        }
        let ex = try ViTExecutor<BLASBackend>.host(vit, maxBatch: 1, threads: threads)
        var features = [Float](repeating: 0, count: c.tokenCount * c.dim)
        var logits = [Float](repeating: 0, count: max(1, c.numClasses))
        if c.hasHead { ex.forward(batch: 1, images: x.data, features: &features, logits: &logits) }
        else { ex.forward(batch: 1, images: x.data, features: &features) }
        func list(_ v: ArraySlice<Float>) -> String { "[" + v.map { "\($0)" }.joined(separator: ", ") + "]" }
        var line = "{\"embedding\": \(list(features[0..<c.dim])), \"last_hidden_state_shape\": [\(c.tokenCount), \(c.dim)], "
            + "\"last_hidden_state\": \(list(features[...]))"
        if c.hasHead { line += ", \"logits\": \(list(logits[...]))" }
        print(line + "}")
    }
}
