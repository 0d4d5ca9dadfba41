import XCTest
import Foundation
import FipsArtifact
import FipsHostModel
import FipsImport
import FipsTestSupport

final class ImportONNXTests: XCTestCase {
    func testRealModelConfigAndShapes() throws {
        let r = try ImportFixtures.realONNX()
        let c = r.model.config
        XCTAssertEqual(c.family, .dinov2)
        XCTAssertEqual(c.imageSize, 224)
        XCTAssertEqual(c.patchSize, 14)
        XCTAssertEqual(c.channels, 3)
        XCTAssertEqual(c.dim, 384)
        XCTAssertEqual(c.depth, 12)
        XCTAssertEqual(c.heads, 6)
        XCTAssertEqual(c.mlpDim, 1536)
        XCTAssertEqual(c.numClasses, 0)
        XCTAssertEqual(c.layerNormEps, Float(1e-6))
        XCTAssertTrue(c.hasLayerScale)
        XCTAssertFalse(c.geluTanh)
        XCTAssertEqual(c.headPooling, .cls)
        XCTAssertEqual(c.resizeShorter, 256)
        XCTAssertEqual(c.cropSize, 224)
        XCTAssertEqual(c.mean.0, 0.485); XCTAssertEqual(c.std.2, 0.225)
        XCTAssertNil(r.model.validate())
        XCTAssertEqual(r.model.tensors.count, ViTModel.expectedShapes(c).count)
        XCTAssertEqual(r.model[TensorNames.posEmbed].shape, [257, 384])
        XCTAssertEqual(r.model[TensorNames.patchWeight].shape, [384, 588])
        XCTAssertEqual(r.model[TensorNames.block(11, "attn.qkv.weight")].shape, [1152, 384])
        XCTAssertEqual(r.positionEmbedding.grid, 37)
        XCTAssertEqual(r.positionEmbedding.original.shape, [1370, 384])
        XCTAssertEqual(r.positionEmbedding.mode, .bicubic(a: -0.75))
        XCTAssertEqual(r.backboneOutput, "/backbone/layernorm/Add_1_output_0")
        // The CLS position is copied unchanged.
        XCTAssertEqual(Array(r.model[TensorNames.posEmbed].data[0..<384]), Array(r.positionEmbedding.original.data[0..<384]))
        // ModelImporter dispatches .onnx to the same result.
        let viaDispatch = try ModelImporter.load(path: ImportFixtures.onnxPath)
        XCTAssertNil(ImportFixtures.firstDifference(viaDispatch, r.model))
    }

    /// Weights picked from the initializers with numpy (scripts/fixtures/onnx_pos_embed.py).
    func testRealModelWeightsMatchNumpySpotValues() throws {
        let r = try ImportFixtures.realONNX()
        let data = try Data(contentsOf: ImportFixtures.fixtures.appendingPathComponent("onnx_spot_values.json"))
        let spots = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: [String: Any]])
        XCTAssertGreaterThan(spots.count, 20)
        for (name, s) in spots {
            let t = try XCTUnwrap(r.model.tensors[name], name)
            let shape = (s["shape"] as! [NSNumber]).map(\.intValue)
            XCTAssertEqual(t.data.count, shape.reduce(1, *), name)
            if shape.count == 2 { XCTAssertEqual(t.shape, shape, name) }
            let idx = (s["index"] as! [NSNumber]).map(\.intValue)
            let val = (s["value"] as! [NSNumber]).map { Float($0.doubleValue) }
            for (i, v) in zip(idx, val) { XCTAssertEqual(t.data[i], v, "\(name)[\(i)]") }
            let sum = t.data.reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(sum, (s["sum"] as! NSNumber).doubleValue, accuracy: 1e-6 * max(1, abs(sum)), name)
        }
    }

    /// onnxruntime's in-graph Resize (37x37 -> 16x16 bicubic) against ours.
    func testPositionEmbeddingResizeMatchesOnnxruntime() throws {
        let golden = try ImportFixtures.readNpy(ImportFixtures.fixtures.appendingPathComponent("onnx_pos_embed_224.npy"))
        XCTAssertEqual(golden.shape, [257, 384])
        let r = try ImportFixtures.realONNX()
        let err = ImportFixtures.maxAbsDiff(r.model[TensorNames.posEmbed].data, golden.data)
        print("pos-embed resize vs onnxruntime: max abs error \(err)")
        XCTAssertLessThanOrEqual(err, 1e-5, "max abs error \(err)")
        let direct = resizePositionEmbedding(r.positionEmbedding.original, from: 37, to: 16, mode: .bicubic(a: -0.75))
        XCTAssertEqual(direct, r.model[TensorNames.posEmbed])
    }

    func testResizeIdentityAndConstant() {
        // Same grid: unchanged. A constant grid stays constant (weights sum to 1).
        var pos = HostTensor(zeros: [1 + 9 * 9, 2])
        for i in 0..<pos.count { pos.data[i] = i < 2 ? -1 : 0.25 }
        XCTAssertEqual(resizePositionEmbedding(pos, from: 9, to: 9), pos)
        let up = resizePositionEmbedding(pos, from: 9, to: 13)
        XCTAssertEqual(up.shape, [1 + 169, 2])
        XCTAssertEqual(up.data[0], -1)
        for v in up.data[2...] { XCTAssertEqual(v, 0.25, accuracy: 1e-6) }
    }

    func testGarbageAndTruncatedONNXAreRefused() throws {
        let dir = try ImportFixtures.tempDir("garbage")
        defer { try? FileManager.default.removeItem(at: dir) }
        let garbage = dir.appendingPathComponent("garbage.onnx")
        var rng = SystemRandomNumberGenerator()
        try Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }).write(to: garbage)
        XCTAssertThrowsError(try ModelImporter.load(path: garbage.path)) { e in
            let msg = "\(e)"
            XCTAssertTrue(msg.hasPrefix(garbage.path + ": "), msg)
            XCTAssertTrue(msg.contains("ONNX"), msg)
        }
        // A file cut short inside its tensors.
        let source = FileManager.default.fileExists(atPath: ImportFixtures.onnxPath)
            ? URL(fileURLWithPath: ImportFixtures.onnxPath) : ImportFixtures.fixtures.appendingPathComponent("onnx_unknown_op.onnx")
        let h = try FileHandle(forReadingFrom: source)
        let head = try XCTUnwrap(h.read(upToCount: 3000))
        try h.close()
        let truncated = dir.appendingPathComponent("truncated.onnx")
        try head.write(to: truncated)
        XCTAssertThrowsError(try ModelImporter.load(path: truncated.path)) { e in
            let msg = "\(e)"
            XCTAssertTrue(msg.contains("truncated.onnx: not a valid ONNX model"), msg)
            XCTAssertTrue(msg.contains("runs past the end"), msg)
        }
        let empty = dir.appendingPathComponent("empty.onnx")
        try Data().write(to: empty)
        XCTAssertThrowsError(try ModelImporter.load(path: empty.path)) { e in
            XCTAssertTrue("\(e)".contains("empty"), "\(e)")
        }
        XCTAssertThrowsError(try ModelImporter.load(path: dir.appendingPathComponent("nope.onnx").path)) { e in
            XCTAssertTrue("\(e)".contains("no such file"), "\(e)")
        }
    }

    func testUnknownOpIsRefusedNamingTheNode() throws {
        let p = ImportFixtures.fixtures.appendingPathComponent("onnx_unknown_op.onnx").path
        XCTAssertThrowsError(try ONNXImporter.load(path: p)) { e in
            let msg = "\(e)"
            XCTAssertTrue(msg.contains("/backbone/encoder/layer.0/mlp/activation/FancyGelu"), msg)
            XCTAssertTrue(msg.contains("op FancyGelu"), msg)
        }
    }

    func testMissingInitializerIsRefused() throws {
        let p = ImportFixtures.fixtures.appendingPathComponent("onnx_missing_cls.onnx").path
        XCTAssertThrowsError(try ONNXImporter.load(path: p)) { e in
            XCTAssertTrue("\(e)".contains("no CLS token initializer"), "\(e)")
        }
    }

    /// The real graph with layer 0's Erf renamed to Elu (same byte length).
    func testUnknownOpInRealGraphIsRefused() throws {
        guard FileManager.default.fileExists(atPath: ImportFixtures.onnxPath) else {
            throw XCTSkip("data/vit_s_focus.onnx is absent")
        }
        var bytes = try Data(contentsOf: URL(fileURLWithPath: ImportFixtures.onnxPath))   // not mapped: mutated below
        let pattern = Data([0x22, 0x03] + Array("Erf".utf8))   // NodeProto.op_type = "Erf"
        let at = try XCTUnwrap(bytes.range(of: pattern))
        bytes.replaceSubrange(at, with: Data([0x22, 0x03] + Array("Elu".utf8)))
        let dir = try ImportFixtures.tempDir("elu")
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = dir.appendingPathComponent("elu.onnx").path
        try bytes.write(to: URL(fileURLWithPath: p))
        XCTAssertThrowsError(try ONNXImporter.load(path: p)) { e in
            let msg = "\(e)"
            XCTAssertTrue(msg.contains("node /backbone/encoder/layer.0/mlp/activation/Erf has op Elu"), msg)
        }
    }
}
