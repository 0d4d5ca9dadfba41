import XCTest
import Foundation
import FipsArtifact
import FipsBLASBackend
import FipsHostModel
import FipsImport
import FipsTestSupport
import FipsViT

/// The export matrix (README "ONNX export matrix"): tiny random ViT, DeiT and
/// DINOv2-shaped models exported by both PyTorch exporters at two opsets each
/// (scripts/fixtures/make_onnx_matrix.py, run by scripts/test.sh into
/// data/onnx_matrix/), imported by structure and run by the float runtime
/// against onnxruntime's output on the same input.
final class ImportONNXMatrixTests: XCTestCase {
    static let dir = TestPaths.packageRoot.appendingPathComponent("data/onnx_matrix")

    struct Cell {
        let file: String, family: String, exporter: String, opset: Int
        let dynamic: Bool
        let output: String
        let refused: String?
    }

    func cells() throws -> [Cell] {
        // Made by scripts/test.sh (python3 scripts/fixtures/make_onnx_matrix.py); a skip
        // locally without it, a failure under FIPS_REQUIRE_DATA=1.
        let manifest = Self.dir.appendingPathComponent("manifest.json")
        try TestPaths.require(manifest.path)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: manifest)) as? [String: Any])
        let raw = try XCTUnwrap(json["cells"] as? [[String: Any]])
        return raw.map {
            Cell(file: $0["file"] as! String, family: $0["family"] as! String, exporter: $0["exporter"] as! String,
                 opset: ($0["opset"] as! NSNumber).intValue, dynamic: ($0["dynamic_batch"] as? Bool) ?? false, output: $0["output"] as! String, refused: $0["refused"] as? String)
        }
    }

    /// The runtime's output for the cell's model: logits, or all tokens after the final norm.
    func run(_ model: ViTModel, output: String) throws -> [Float] {
        let input = try ImportFixtures.readNpy(Self.dir.appendingPathComponent("input.npy"))
        let c = model.config
        XCTAssertEqual(input.shape, [1, c.channels, c.imageSize, c.imageSize])
        let ex = try ViTExecutor<BLASBackend>.host(model, maxBatch: 1, threads: 1)
        var features = [Float](repeating: 0, count: c.tokenCount * c.dim)
        var logits = [Float](repeating: 0, count: max(1, c.numClasses))
        ex.forward(batch: 1, images: input.data, features: &features, logits: &logits)
        return output == "logits" ? logits : features
    }

    static func topK(_ v: [Float], _ k: Int) -> [Int] {
        Array(v.indices.sorted { v[$0] > v[$1] }.prefix(k))
    }

    func testEachCellMatchesOnnxruntimeOrIsRefused() throws {
        let all = try cells()
        XCTAssertEqual(all.count, 30)
        for cell in all {
            let path = Self.dir.appendingPathComponent(cell.file).path
            let what = "\(cell.family) \(cell.exporter) opset \(cell.opset)\(cell.dynamic ? " dynamic batch" : "")"
            if let reason = cell.refused {
                XCTAssertThrowsError(try ONNXImporter.load(path: path), what) { e in
                    XCTAssertTrue("\(e)".contains(reason), "\(what): \(e)")
                    XCTAssertTrue("\(e)".contains("node "), "\(what): \(e)")
                    print("matrix \(what): refused: \(e)")
                }
                continue
            }
            let model = try ONNXImporter.load(path: path)
            let ref = try ImportFixtures.readNpy(Self.dir.appendingPathComponent(cell.file.replacingOccurrences(of: ".onnx", with: ".out.npy")))
            let ours = try run(model, output: cell.output)
            XCTAssertEqual(ours.count, ref.count, what)
            guard ours.count == ref.count else { continue }
            let scale = max(1, ref.data.map(abs).max() ?? 0)
            let err = ImportFixtures.maxAbsDiff(ours, ref.data)
            print("matrix \(what): max abs error \(err) (output scale \(scale))")
            XCTAssertLessThanOrEqual(err, 1e-4 * scale, what)
            if cell.output == "logits" {
                XCTAssertEqual(Self.topK(ours, 3), Self.topK(ref.data, 3), what)
            } else {
                // Per token: the feature the largest in the runtime is the largest in onnxruntime.
                let d = model.config.dim
                for t in 0..<(ours.count / d) {
                    XCTAssertEqual(Self.topK(Array(ours[t * d..<(t + 1) * d]), 1), Self.topK(Array(ref.data[t * d..<(t + 1) * d]), 1), "\(what) token \(t)")
                }
            }
        }
    }

    /// Distilled DeiT as safetensors (timm and Hugging Face names), the same
    /// models as the deit and hf_deit cells: the same logits as onnxruntime on
    /// their ONNX export, and the labels of the HF config's id2label.
    func testDistilledDeiTSafetensors() throws {
        _ = try cells()   // a skip without the matrix, like the other cases
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.dir.appendingPathComponent("manifest.json"))) as! [String: Any]
        let entries = try XCTUnwrap(manifest["safetensors"] as? [[String: String]], "manifest without safetensors: rerun make_onnx_matrix.py")
        XCTAssertEqual(entries.count, 2)
        for e in entries {
            let model = try ModelImporter.load(path: Self.dir.appendingPathComponent(e["file"]!).path, options: ImportOptions(heads: 2))
            let c = model.config
            XCTAssertTrue(c.hasDistillationToken, e["file"]!)
            XCTAssertEqual(c.headPooling, .clsAndDistillation, e["file"]!)
            XCTAssertEqual(c.family, .deit, e["file"]!)
            let ref = try ImportFixtures.readNpy(Self.dir.appendingPathComponent(e["reference"]!))
            let ours = try run(model, output: "logits")
            let err = ImportFixtures.maxAbsDiff(ours, ref.data)
            print("safetensors \(e["file"]!): max abs error \(err)")
            XCTAssertLessThanOrEqual(err, 1e-4 * max(1, ref.data.map(abs).max() ?? 0), e["file"]!)
            XCTAssertEqual(Self.topK(ours, 3), Self.topK(ref.data, 3), e["file"]!)
            if e["family"] == "hf_deit" { XCTAssertEqual(model.labels, (0..<5).map { "LABEL_\($0)" }) }
        }
    }

    /// Structure and metadata_props of one cell per family.
    func testConfigHeadAndMetadata() throws {
        _ = try cells()
        let vit = try ONNXImporter.load(path: Self.dir.appendingPathComponent("vit_dynamo_op18.onnx").path)
        let c = vit.config
        XCTAssertEqual([c.imageSize, c.patchSize, c.dim, c.depth, c.heads, c.mlpDim, c.numClasses], [32, 8, 32, 2, 2, 64, 5])
        XCTAssertFalse(c.hasLayerScale)
        XCTAssertFalse(c.geluTanh)
        XCTAssertEqual(c.layerNormEps, 1e-5)
        XCTAssertEqual(vit.labels, ["class A", "class B", "class C", "class D", "class E"])
        XCTAssertEqual([c.mean.0, c.mean.1, c.mean.2, c.std.0, c.std.1, c.std.2], [0.5, 0.4, 0.3, 0.2, 0.25, 0.3])
        let dino = try ONNXImporter.loadRaw(path: Self.dir.appendingPathComponent("dinov2_dynamo_op18.onnx").path)
        let e = dino.model.config
        XCTAssertTrue(e.hasLayerScale)
        XCTAssertTrue(e.geluTanh)
        XCTAssertEqual(e.layerNormEps, 1e-6)
        XCTAssertEqual(e.numClasses, 0)
        XCTAssertEqual(e.family, .dinov2)
        // No metadata: ImageNet statistics.
        XCTAssertEqual([e.mean.0, e.std.2], [0.485, 0.225])
        XCTAssertTrue(dino.model.labels.isEmpty)
        // Distilled DeiT: class and distillation tokens before the 16 patches; the
        // two heads become one Linear on concat(cls, dist) with half of each.
        for file in ["deit_torchscript_op14.onnx", "hf_deit_dynamo_op20.onnx"] {
            let deit = try ONNXImporter.load(path: Self.dir.appendingPathComponent(file).path)
            let f = deit.config
            XCTAssertTrue(f.hasDistillationToken, file)
            XCTAssertEqual(f.family, .deit, file)
            XCTAssertEqual(f.tokenCount, 18, file)
            XCTAssertEqual(f.headPooling, .clsAndDistillation, file)
            XCTAssertEqual(deit[TensorNames.headWeight].shape, [5, 64], file)
            XCTAssertEqual(deit[TensorNames.posEmbed].shape, [18, 32], file)
            XCTAssertEqual(deit[TensorNames.distToken].shape, [32], file)
        }
    }

    /// External data read relative to the model, and a missing data file refused by name.
    func testExternalDataFileIsRequired() throws {
        _ = try cells()
        let dir = try ImportFixtures.tempDir("extdata")
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = Self.dir.appendingPathComponent("dinov2_dynamo_op18.onnx")
        let dst = dir.appendingPathComponent("dinov2_dynamo_op18.onnx")
        try FileManager.default.copyItem(at: src, to: dst)
        XCTAssertThrowsError(try ONNXImporter.load(path: dst.path)) { e in
            XCTAssertTrue("\(e)".contains("external data file"), "\(e)")
            XCTAssertTrue("\(e)".contains("dinov2_dynamo_op18.onnx.data"), "\(e)")
        }
    }

    /// The manifest's negatives (mean pooling, a wrong attention scale): each refused naming a node.
    func testNegativesAreRefusedNamingTheNode() throws {
        _ = try cells()
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: Self.dir.appendingPathComponent("manifest.json"))) as? [String: Any])
        let negatives = try XCTUnwrap(json["negatives"] as? [[String: String]])
        XCTAssertEqual(negatives.count, 2)
        for n in negatives {
            let p = Self.dir.appendingPathComponent(n["file"]!).path
            XCTAssertThrowsError(try ONNXImporter.load(path: p), n["file"]!) { e in
                let msg = "\(e)"
                print("negative \(n["file"]!): \(msg)")
                XCTAssertTrue(msg.contains(n["refused"]!), msg)
                XCTAssertTrue(msg.contains(": node /"), msg)
            }
        }
    }

    /// A matrix model with its MLP's Erf renamed to Elu (same byte length).
    func testUnsupportedOpInBlockIsRefusedNamingTheNode() throws {
        _ = try cells()
        var bytes = try Data(contentsOf: Self.dir.appendingPathComponent("vit_torchscript_op14.onnx"))
        let at = try XCTUnwrap(bytes.range(of: Data([0x22, 0x03] + Array("Erf".utf8))))
        bytes.replaceSubrange(at, with: Data([0x22, 0x03] + Array("Elu".utf8)))
        let dir = try ImportFixtures.tempDir("matrix-elu")
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = dir.appendingPathComponent("elu.onnx").path
        try bytes.write(to: URL(fileURLWithPath: p))
        XCTAssertThrowsError(try ONNXImporter.load(path: p)) { e in
            let msg = "\(e)"
            XCTAssertTrue(msg.contains("has op Elu, expected the MLP"), msg)
            XCTAssertTrue(msg.contains("layer 0"), msg)
        }
    }
}
