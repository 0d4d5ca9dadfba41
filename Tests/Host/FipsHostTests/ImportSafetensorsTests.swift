import XCTest
import Foundation
import FipsArtifact
import FipsHostModel
import FipsImport
import FipsTestSupport

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
        let ck = TinyHFCheckpoint()
        let d = ck.d
        func rnd(_ s: [Int]) -> HostTensor { ck.rnd(s) }
        func vit(_ prefix: String, dino: Bool) -> [String: HostTensor] { ck.vit(prefix, dino: dino) }
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

        // A distillation head without the distillation token is refused by name
        // (distilled DeiTs import: ImportONNXMatrixTests.testDistilledDeiTSafetensors).
        var deit = vit("deit.", dino: false)
        deit["distillation_classifier.weight"] = rnd([4, d]); deit["distillation_classifier.bias"] = rnd([4])
        let deitPath = dir.appendingPathComponent("deit.safetensors").path
        try SafetensorsWriter.write(deit, to: deitPath)
        XCTAssertThrowsError(try ModelImporter.load(path: deitPath)) { e in
            XCTAssertTrue("\(e)".contains("distillation_classifier.weight: a distillation head without a distillation token"), "\(e)")
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

/// A tiny random Hugging Face ViT checkpoint (google/vit, DeiT or DINOv2
/// tensor names): d 8, patch 4, MLP 16, a 3x3 grid, two blocks. One seeded
/// generator for every tensor, so a test's checkpoints are reproducible.
final class TinyHFCheckpoint {
    let d = 8, p = 4, mlp = 16, grid = 3
    private var seed: UInt32 = 1

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
}
