import XCTest
import Foundation
import FipsArtifact
import FipsHostCore
import FipsImport
import FipsTestSupport

/// Shared paths and the (slow) real-model import, done once per test run.
enum ImportFixtures {
    static let repoRoot = TestPaths.packageRoot
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let onnxPath = repoRoot.appendingPathComponent("data/vit_s_focus.onnx").path

    nonisolated(unsafe) static var cached: ONNXImportResult?

    /// The imported real DINOv2 ViT-S/14, or XCTSkip when data/ lacks it.
    static func realONNX() throws -> ONNXImportResult {
        if let r = cached { return r }
        guard FileManager.default.fileExists(atPath: onnxPath) else {
            throw XCTSkip("data/vit_s_focus.onnx is absent (run scripts/setup.sh)")
        }
        let r = try ONNXImporter.loadRaw(path: onnxPath)
        cached = r
        return r
    }

    static func tempDir(_ name: String) throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("fips-import-\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: u)
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    /// Minimal .npy reader: little-endian float32, C order.
    static func readNpy(_ url: URL) throws -> HostTensor {
        let d = try Data(contentsOf: url)
        let b = [UInt8](d)
        guard b.count > 10, b[0] == 0x93, String(decoding: b[1..<6], as: UTF8.self) == "NUMPY" else {
            throw ImportError(path: url.path, "not a .npy file")
        }
        let headerLen: Int, start: Int
        if b[6] == 1 { headerLen = Int(b[8]) | Int(b[9]) << 8; start = 10 }
        else { headerLen = Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24; start = 12 }
        let header = String(decoding: b[start..<(start + headerLen)], as: UTF8.self)
        guard header.contains("'descr': '<f4'"), header.contains("'fortran_order': False"),
              let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
            throw ImportError(path: url.path, "unsupported .npy header \(header)")
        }
        let shape = header[open.upperBound..<close].split(separator: ",")
            .compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let n = shape.reduce(1, *)
        let dataStart = start + headerLen
        var values = [Float](repeating: 0, count: n)
        d.withUnsafeBytes { raw in
            for i in 0..<n {
                values[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: dataStart + 4 * i, as: UInt32.self)))
            }
        }
        return HostTensor(shape: shape, data: values)
    }
}

extension ImportFixtures {
    static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        var m: Float = 0
        for i in 0..<a.count { m = max(m, abs(a[i] - b[i])) }
        return m
    }

    /// Compares configs and every tensor bit for bit; returns the first difference.
    static func firstDifference(_ a: ViTModel, _ b: ViTModel) -> String? {
        if a.config != b.config { return "configs differ: \(a.config.encode()) vs \(b.config.encode())" }
        if Set(a.tensors.keys) != Set(b.tensors.keys) {
            return "tensor names differ: \(Set(a.tensors.keys).symmetricDifference(b.tensors.keys).sorted())"
        }
        for name in a.tensors.keys.sorted() {
            let x = a.tensors[name]!, y = b.tensors[name]!
            if x.shape != y.shape { return "\(name): shape \(x.shape) vs \(y.shape)" }
            for i in 0..<x.data.count where x.data[i].bitPattern != y.data[i].bitPattern {
                return "\(name)[\(i)]: \(x.data[i]) vs \(y.data[i])"
            }
        }
        return nil
    }
}

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

final class ImportSafetensorsTests: XCTestCase {
    /// The ONNX weights written in the HF DINOv2 and timm layouts (with the
    /// original 37x37 position embedding) import to bit-identical models.
    func testHFAndTimmLayoutsMatchONNXImport() throws {
        let r = try ImportFixtures.realONNX()
        let m = r.model, c = m.config, d = c.dim
        let dir = try ImportFixtures.tempDir("layouts")
        defer { try? FileManager.default.removeItem(at: dir) }

        func rows(_ t: HostTensor, _ from: Int, _ count: Int) -> HostTensor {
            let w = t.count / t.shape[0]
            let shape = t.shape.count == 1 ? [count] : [count] + Array(t.shape.dropFirst())
            return HostTensor(shape: shape, data: Array(t.data[(from * w)..<((from + count) * w)]))
        }
        func reshaped(_ t: HostTensor, _ s: [Int]) -> HostTensor { HostTensor(shape: s, data: t.data) }

        // Hugging Face facebook/dinov2-small layout.
        var hf: [String: HostTensor] = [
            "embeddings.cls_token": reshaped(m[TensorNames.clsToken], [1, 1, d]),
            "embeddings.mask_token": HostTensor(zeros: [1, d]),
            "embeddings.position_embeddings": reshaped(r.positionEmbedding.original, [1, 1370, d]),
            "embeddings.patch_embeddings.projection.weight": reshaped(m[TensorNames.patchWeight], [d, 3, 14, 14]),
            "embeddings.patch_embeddings.projection.bias": m[TensorNames.patchBias],
            "layernorm.weight": m[TensorNames.normWeight],
            "layernorm.bias": m[TensorNames.normBias],
        ]
        for i in 0..<c.depth {
            let p = "encoder.layer.\(i)."
            func b(_ leaf: String) -> HostTensor { m[TensorNames.block(i, leaf)] }
            hf[p + "norm1.weight"] = b("norm1.weight"); hf[p + "norm1.bias"] = b("norm1.bias")
            for (j, n) in ["query", "key", "value"].enumerated() {
                hf[p + "attention.attention.\(n).weight"] = rows(b("attn.qkv.weight"), j * d, d)
                hf[p + "attention.attention.\(n).bias"] = rows(b("attn.qkv.bias"), j * d, d)
            }
            hf[p + "attention.output.dense.weight"] = b("attn.proj.weight")
            hf[p + "attention.output.dense.bias"] = b("attn.proj.bias")
            hf[p + "layer_scale1.lambda1"] = b("ls1"); hf[p + "layer_scale2.lambda1"] = b("ls2")
            hf[p + "norm2.weight"] = b("norm2.weight"); hf[p + "norm2.bias"] = b("norm2.bias")
            hf[p + "mlp.fc1.weight"] = b("mlp.fc1.weight"); hf[p + "mlp.fc1.bias"] = b("mlp.fc1.bias")
            hf[p + "mlp.fc2.weight"] = b("mlp.fc2.weight"); hf[p + "mlp.fc2.bias"] = b("mlp.fc2.bias")
        }
        let hfDir = dir.appendingPathComponent("dinov2-small")
        try FileManager.default.createDirectory(at: hfDir, withIntermediateDirectories: true)
        try SafetensorsWriter.write(hf, to: hfDir.appendingPathComponent("model.safetensors").path)
        let config = """
        {"architectures": ["Dinov2Model"], "model_type": "dinov2", "hidden_size": 384, "num_hidden_layers": 12,
         "num_attention_heads": 6, "mlp_ratio": 4, "hidden_act": "gelu", "layer_norm_eps": 1e-06,
         "image_size": 518, "patch_size": 14, "num_channels": 3, "layerscale_value": 1.0, "use_swiglu_ffn": false}
        """
        try config.write(to: hfDir.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)

        // timm vit_small_patch14_dinov2 layout, no config.json.
        var timm: [String: HostTensor] = [
            "cls_token": reshaped(m[TensorNames.clsToken], [1, 1, d]),
            "pos_embed": reshaped(r.positionEmbedding.original, [1, 1370, d]),
            "patch_embed.proj.weight": reshaped(m[TensorNames.patchWeight], [d, 3, 14, 14]),
            "patch_embed.proj.bias": m[TensorNames.patchBias],
            "norm.weight": m[TensorNames.normWeight],
            "norm.bias": m[TensorNames.normBias],
        ]
        for i in 0..<c.depth {
            let p = "blocks.\(i)."
            func b(_ leaf: String) -> HostTensor { m[TensorNames.block(i, leaf)] }
            for leaf in ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
                         "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"] {
                timm[p + leaf] = b(leaf)
            }
            timm[p + "ls1.gamma"] = b("ls1"); timm[p + "ls2.gamma"] = b("ls2")
        }
        let timmPath = dir.appendingPathComponent("vit_small_patch14_dinov2.safetensors").path
        try SafetensorsWriter.write(timm, to: timmPath)

        let fromHF = try ModelImporter.load(path: hfDir.path)
        let fromTimm = try ModelImporter.load(path: timmPath)
        XCTAssertNil(ImportFixtures.firstDifference(fromHF, m))
        XCTAssertNil(ImportFixtures.firstDifference(fromTimm, m))
        XCTAssertEqual(try SafetensorsImporter.loadRaw(path: timmPath).layout, .timm)
    }

    /// A tiny google/vit-style checkpoint with a head, labels and a grid
    /// that must be resized; plus the HF DINOv2 classifier (CLS + mean).
    func testHFViTWithHeadAndDinov2Classifier() throws {
        let dir = try ImportFixtures.tempDir("tinyvit")
        defer { try? FileManager.default.removeItem(at: dir) }
        let d = 8, p = 4, mlp = 16, grid = 3
        var seed: UInt32 = 1
        func rnd(_ s: [Int]) -> HostTensor {
            HostTensor(shape: s, data: (0..<s.reduce(1, *)).map { _ in
                seed = seed &* 1_664_525 &+ 1_013_904_223
                return Float(Int(seed >> 9) % 2001 - 1000) / 1000
            })
        }
        func vit(_ prefix: String, dino: Bool) -> [String: HostTensor] {
            var t: [String: HostTensor] = [
                prefix + "embeddings.cls_token": rnd([1, 1, d]),
                prefix + "embeddings.position_embeddings": rnd([1, 1 + grid * grid, d]),
                prefix + "embeddings.patch_embeddings.projection.weight": rnd([d, 3, p, p]),
                prefix + "embeddings.patch_embeddings.projection.bias": rnd([d]),
                prefix + "layernorm.weight": rnd([d]), prefix + "layernorm.bias": rnd([d]),
            ]
            for i in 0..<2 {
                let l = prefix + "encoder.layer.\(i)."
                for n in ["query", "key", "value"] {
                    t[l + "attention.attention.\(n).weight"] = rnd([d, d]); t[l + "attention.attention.\(n).bias"] = rnd([d])
                }
                t[l + "attention.output.dense.weight"] = rnd([d, d]); t[l + "attention.output.dense.bias"] = rnd([d])
                let (n1, n2, f1, f2) = dino ? ("norm1", "norm2", "mlp.fc1", "mlp.fc2")
                    : ("layernorm_before", "layernorm_after", "intermediate.dense", "output.dense")
                t[l + n1 + ".weight"] = rnd([d]); t[l + n1 + ".bias"] = rnd([d])
                t[l + n2 + ".weight"] = rnd([d]); t[l + n2 + ".bias"] = rnd([d])
                t[l + f1 + ".weight"] = rnd([mlp, d]); t[l + f1 + ".bias"] = rnd([mlp])
                t[l + f2 + ".weight"] = rnd([d, mlp]); t[l + f2 + ".bias"] = rnd([d])
                if dino { t[l + "layer_scale1.lambda1"] = rnd([d]); t[l + "layer_scale2.lambda1"] = rnd([d]) }
            }
            return t
        }
        // google/vit: classifier [3, d], labels, 12x12 input at import (grid 3 -> 3).
        var g = vit("vit.", dino: false)
        g["classifier.weight"] = rnd([3, d]); g["classifier.bias"] = rnd([3])
        let gdir = dir.appendingPathComponent("vit")
        try FileManager.default.createDirectory(at: gdir, withIntermediateDirectories: true)
        try SafetensorsWriter.write(g, to: gdir.appendingPathComponent("model.safetensors").path)
        try """
        {"model_type": "vit", "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16,
         "image_size": 12, "patch_size": 4, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
         "id2label": {"0": "cat", "1": "dog", "2": "bird"}}
        """.write(to: gdir.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        let mv = try ModelImporter.load(path: gdir.path)
        XCTAssertEqual(mv.config.family, .vit)
        XCTAssertEqual(mv.config.heads, 2)
        XCTAssertEqual(mv.config.layerNormEps, Float(1e-12))
        XCTAssertEqual(mv.config.numClasses, 3)
        XCTAssertEqual(mv.labels, ["cat", "dog", "bird"])
        XCTAssertEqual(mv.config.mean.0, 0.5)
        XCTAssertEqual(mv.config.resizeShorter, 12)
        XCTAssertFalse(mv.config.hasLayerScale)
        XCTAssertEqual(mv[TensorNames.posEmbed].data, g["vit.embeddings.position_embeddings"]!.data)
        let q = g["vit.encoder.layer.1.attention.attention.key.weight"]!.data
        XCTAssertEqual(Array(mv[TensorNames.block(1, "attn.qkv.weight")].data[(d * d)..<(2 * d * d)]), q)
        // At a larger input the grid is resized bicubically.
        let big = try ModelImporter.load(path: gdir.path, options: ImportOptions(imageSize: 20))
        XCTAssertEqual(big[TensorNames.posEmbed].shape, [26, d])
        XCTAssertEqual(big[TensorNames.posEmbed], resizePositionEmbedding(HostTensor(shape: [10, d], data: g["vit.embeddings.position_embeddings"]!.data), from: 3, to: 5))

        // Dinov2ForImageClassification: classifier over concat(CLS, mean of patches).
        var dn = vit("dinov2.", dino: true)
        dn["dinov2.embeddings.mask_token"] = rnd([1, d])
        dn["classifier.weight"] = rnd([4, 2 * d]); dn["classifier.bias"] = rnd([4])
        let dpath = dir.appendingPathComponent("dino.safetensors").path
        try SafetensorsWriter.write(dn, to: dpath)
        let md = try ModelImporter.load(path: dpath, options: ImportOptions(imageSize: 12, heads: 2))
        XCTAssertEqual(md.config.family, .dinov2)
        XCTAssertEqual(md.config.headPooling, .clsAndPatchMean)
        XCTAssertEqual(md.config.headInputDim, 16)
        XCTAssertEqual(md.config.heads, 2)
        XCTAssertEqual(md.config.layerNormEps, Float(1e-6))
        XCTAssertTrue(md.config.hasLayerScale)
        XCTAssertEqual(md.config.resizeShorter, 13)

        // Distilled DeiT is refused by name.
        var deit = vit("deit.", dino: false)
        deit["deit.embeddings.distillation_token"] = rnd([1, 1, d])
        let deitPath = dir.appendingPathComponent("deit.safetensors").path
        try SafetensorsWriter.write(deit, to: deitPath)
        XCTAssertThrowsError(try ModelImporter.load(path: deitPath)) { e in
            XCTAssertTrue("\(e)".contains("distilled DeiT"), "\(e)")
        }
        // An unknown tensor is named.
        var odd = vit("deit.", dino: false)
        odd["deit.encoder.layer.0.attention.attention.rel_pos"] = rnd([3])
        let oddPath = dir.appendingPathComponent("odd.safetensors").path
        try SafetensorsWriter.write(odd, to: oddPath)
        XCTAssertThrowsError(try ModelImporter.load(path: oddPath)) { e in
            XCTAssertTrue("\(e)".contains("cannot place tensor deit.encoder.layer.0.attention.attention.rel_pos"), "\(e)")
        }
        let plainDeit = try ModelImporter.load(path: { () -> String in
            let pth = dir.appendingPathComponent("deit-ok.safetensors").path
            try! SafetensorsWriter.write(vit("deit.", dino: false), to: pth)
            return pth
        }())
        XCTAssertEqual(plainDeit.config.family, .deit)
        XCTAssertEqual(plainDeit.config.layerNormEps, Float(1e-12))
        XCTAssertEqual(plainDeit.config.resizeShorter, 13)
        XCTAssertEqual(plainDeit.config.mean.0, 0.485)
    }

    func testHalfPrecisionSafetensors() throws {
        let dir = try ImportFixtures.tempDir("half")
        defer { try? FileManager.default.removeItem(at: dir) }
        // F16: 1.0, -2.0, 0.5, 65504; BF16: 1.0, -3.0.
        let header = #"{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]}}"#
        var h = Array(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        var bytes = [UInt8]()
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { bytes += $0 }
        bytes += h
        for v: UInt16 in [0x3C00, 0xC000, 0x3800, 0x7BFF, 0x3F80, 0xC040] { bytes += [UInt8(v & 0xFF), UInt8(v >> 8)] }
        let p = dir.appendingPathComponent("half.safetensors").path
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        let f = try SafetensorsFile(path: p)
        XCTAssertEqual(try f.floats("a"), [1, -2, 0.5, 65504])
        XCTAssertEqual(try f.floats("b"), [1, -3])
        // Not a ViT: the importer names a tensor it cannot place.
        XCTAssertThrowsError(try ModelImporter.load(path: p)) { e in
            XCTAssertTrue("\(e)".contains("cannot place tensor a"), "\(e)")
        }
        // Truncated data.
        let t = dir.appendingPathComponent("cut.safetensors").path
        try Data(bytes.dropLast(3)).write(to: URL(fileURLWithPath: t))
        XCTAssertThrowsError(try SafetensorsFile(path: t)) { e in
            XCTAssertTrue("\(e)".contains("truncated"), "\(e)")
        }
    }
}
