import Foundation
import XCTest
import FipsExport
import FipsImport

/// `fips export`'s ONNX read back with the importer's wire reader (onnxruntime's
/// outputs against the kit's float path: Tests/Integration/check_export.py).
final class ExportTests: XCTestCase {
    /// The ONNX file parses with the importer's reader; the FiPS basis is one
    /// initializer that both blocks' first fc1 MatMul multiplies by.
    func testExportedFiPSModelKeepsOneSharedBasis() throws {
        let model = makeTinyFactorisedPair(rank: 12, prune: true).factorised
        let (bytes, summary) = ONNXExporter.serialize(model, producerVersion: "test")
        XCTAssertEqual(summary.bytes, bytes.count)
        let onnx = try ONNXModel(path: "tiny.onnx", data: Data(bytes))
        XCTAssertEqual(onnx.opsets.first?.version, ONNXExporter.opset)
        let g = onnx.graph
        XCTAssertEqual(g.inputs.map(\.name), ["pixel_values"])
        XCTAssertEqual(g.inputs.first?.shape, [1, 3, model.config.imageSize, model.config.imageSize])
        XCTAssertEqual(g.outputs.map(\.name), ["last_hidden_state", "embedding", "logits"])
        let names = g.initializers.map(\.name)
        XCTAssertTrue(names.contains("blocks.0.mlp.fc1.U"))
        XCTAssertFalse(names.contains("blocks.1.mlp.fc1.U"), "block 1 names block 0's basis")
        XCTAssertTrue(names.contains("blocks.1.mlp.fc1.V"), "each block has its own projection")
        let users = g.nodes.filter { $0.opType == "MatMul" && $0.inputs.contains("blocks.0.mlp.fc1.U") }
        XCTAssertEqual(users.map { $0.name.hasPrefix("blocks.0.") }, [true, false])
        // fc2 multiplies by the same basis (the tiny group shares one U for fc1 and fc2), transposed once.
        XCTAssertFalse(names.contains { $0.hasSuffix("mlp.fc2.U") }, "fc2's basis is fc1's initializer")
        XCTAssertEqual(g.nodes.filter { $0.opType == "Transpose" && $0.inputs == ["blocks.0.mlp.fc1.U"] }.count, 1)
        XCTAssertEqual(g.nodes.filter { $0.opType == "MatMul" && $0.inputs.contains("blocks.0.mlp.fc1.U_t") }.count, 2)
        XCTAssertEqual(Set(g.nodes.map(\.opType)).subtracting(["Conv", "Reshape", "Transpose", "Concat", "Add", "Mul", "MatMul",
            "LayerNormalization", "Softmax", "Erf", "Gather", "Identity"]), [])
    }
}
