import Foundation
import FipsArtifact
import FipsHostModel

/// Imports ViT checkpoints in `.safetensors` with Hugging Face names
/// (google/vit-*, facebook/deit-*, facebook/dinov2-*, optionally with their
/// classification heads) or timm names (vit_*, deit_*, *_dinov2). A
/// `config.json` beside the file supplies heads, epsilon, activation,
/// labels and model type; without it they come from shapes and defaults.
public enum SafetensorsImporter {
    public enum Layout: String { case huggingFace = "Hugging Face", timm }

    public struct Result {
        public var model: ViTModel
        public var positionEmbedding: ImportedPositionEmbedding
        public var layout: Layout
    }

    public static func load(path: String, options: ImportOptions = .init()) throws -> ViTModel {
        try loadRaw(path: path, options: options).model
    }

    public static func loadRaw(path: String, options: ImportOptions = .init()) throws -> Result {
        let file = try SafetensorsFile(path: path)
        let configURL = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("config.json")
        var json: [String: Any] = [:]
        if let d = try? Data(contentsOf: configURL) {
            guard let j = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] else {
                throw ImportError(path: configURL.path, "config.json is not a JSON object")
            }
            json = j
        }
        var m = Mapper(file: file, json: json, options: options)
        return try m.run()
    }
}

private struct Mapper {
    let file: SafetensorsFile
    let json: [String: Any]
    let options: ImportOptions
    var used: Set<String> = []
    var tensors: [String: HostTensor] = [:]

    init(file: SafetensorsFile, json: [String: Any], options: ImportOptions) {
        self.file = file
        self.json = json
        self.options = options
    }

    var path: String { file.path }
    func fail(_ s: String) -> ImportError { ImportError(path: path, s) }

    func has(_ name: String) -> Bool { file.entries[name] != nil }

    /// Reads a source tensor, checking its element count (and its shape when given).
    mutating func take(_ name: String, count: Int? = nil, shape: [Int]? = nil) throws -> [Float] {
        guard let e = file.entries[name] else { throw fail("lacks tensor \(name)") }
        if let s = shape, e.shape != s { throw fail("tensor \(name) has shape \(e.shape), expected \(s)") }
        if let c = count, e.elementCount != c { throw fail("tensor \(name) has shape \(e.shape), expected \(c) values") }
        used.insert(name)
        return try file.floats(name)
    }

    func jsonInt(_ k: String) -> Int? { (json[k] as? NSNumber)?.intValue }
    func jsonFloat(_ k: String) -> Float? { (json[k] as? NSNumber).map { Float($0.doubleValue) } }

    mutating func run() throws -> SafetensorsImporter.Result {
        let keys = file.entries.keys.sorted()
        guard !keys.isEmpty else { throw fail("holds no tensors") }
        try refuseUnsupported(keys)
        let (layout, prefix) = try namingScheme(keys)
        let family = try self.family(layout, prefix: prefix)
        var c = ViTConfig()
        c.family = family
        let original = try embeddings(layout, prefix: prefix, config: &c)
        let b = try blocks(keys, layout, prefix: prefix, family: family, d: c.dim)
        let h = try head(layout, d: c.dim, dino: b.dino)
        try refuseUnplaced(keys, layout, prefix: prefix, family: family)
        try configure(&c, layout: layout, blocks: b, head: h)
        let labels = try self.labels(numClasses: h.numClasses)

        let model = ViTModel(config: c, tensors: tensors, labels: labels)
        if let problem = model.validate() { throw fail("imported model is inconsistent: \(problem)") }
        return SafetensorsImporter.Result(model: model,
                                          positionEmbedding: ImportedPositionEmbedding(original: original.tensor, grid: original.grid,
                                                                                       mode: .pytorchBicubic),
                                          layout: layout)
    }

    /// Refusals with a clear reason.
    func refuseUnsupported(_ keys: [String]) throws {
        for k in keys {
            if k.hasSuffix("reg_token") || k.hasSuffix("register_tokens") {
                throw fail("tensor \(k): ViTs with register tokens are not supported")
            }
        }
    }

    /// Hugging Face or timm names, and the Hugging Face prefix ("", "vit.", "deit.", "dinov2.").
    func namingScheme(_ keys: [String]) throws -> (SafetensorsImporter.Layout, String) {
        if has("patch_embed.proj.weight") || keys.contains(where: { $0.hasPrefix("blocks.") }) {
            return (.timm, "")
        } else if let pk = keys.first(where: { $0.hasSuffix("embeddings.patch_embeddings.projection.weight") }) {
            let prefix = String(pk.dropLast("embeddings.patch_embeddings.projection.weight".count))
            guard ["", "vit.", "deit.", "dinov2."].contains(prefix) else {
                throw fail("tensor \(pk): unknown prefix \"\(prefix)\"")
            }
            return (.huggingFace, prefix)
        } else {
            throw fail("cannot place tensor \(keys[0]): neither Hugging Face (embeddings.patch_embeddings...) nor timm (patch_embed.proj...) ViT names")
        }
    }

    /// Family.
    func family(_ layout: SafetensorsImporter.Layout, prefix: String) throws -> ViTConfig.Family {
        let modelType = (json["model_type"] as? String)?.lowercased()
        let timmArch = ((json["architecture"] as? String) ?? URL(fileURLWithPath: path).lastPathComponent).lowercased()
        if let f = options.family {
            return f
        } else if layout == .huggingFace {
            switch modelType ?? "" {
            case "dinov2": return .dinov2
            case "deit": return .deit
            case "vit": return .vit
            default:
                if let t = modelType { throw fail("config.json model_type \(t) is not a ViT, DeiT or DINOv2") }
                return prefix == "dinov2." || has(prefix + "encoder.layer.0.norm1.weight") ? .dinov2 : (prefix == "deit." ? .deit : .vit)
            }
        } else {
            return timmArch.contains("dinov2") || has("blocks.0.ls1.gamma") ? .dinov2 : (timmArch.hasPrefix("deit") ? .deit : .vit)
        }
    }

    /// Embeddings: patch embedding, CLS token and position embedding (resized
    /// to the image size); sets the config's patch size, channels, width and
    /// image size. Returns the position embedding as the file holds it.
    mutating func embeddings(_ layout: SafetensorsImporter.Layout, prefix: String,
                             config c: inout ViTConfig) throws -> (tensor: HostTensor, grid: Int) {
        let family = c.family
        let pwName = layout == .timm ? "patch_embed.proj.weight" : prefix + "embeddings.patch_embeddings.projection.weight"
        guard let pwe = file.entries[pwName], pwe.shape.count == 4, pwe.shape[2] == pwe.shape[3] else {
            throw fail("tensor \(pwName) has shape \(file.entries[pwName]?.shape ?? []), expected [dim, C, p, p]")
        }
        let d = pwe.shape[0], channels = pwe.shape[1], p = pwe.shape[2]
        if let hs = jsonInt("hidden_size"), hs != d { throw fail("config.json hidden_size \(hs) but \(pwName) has width \(d)") }
        if let ps = jsonInt("patch_size"), ps != p { throw fail("config.json patch_size \(ps) but \(pwName) has \(p)x\(p) patches") }
        let pb = layout == .timm ? "patch_embed.proj.bias" : prefix + "embeddings.patch_embeddings.projection.bias"
        let clsName = layout == .timm ? "cls_token" : prefix + "embeddings.cls_token"
        let posName = layout == .timm ? "pos_embed" : prefix + "embeddings.position_embeddings"
        let distName = layout == .timm ? "dist_token" : prefix + "embeddings.distillation_token"
        tensors[TensorNames.patchWeight] = HostTensor(shape: [d, channels * p * p], data: try take(pwName))
        tensors[TensorNames.patchBias] = HostTensor(shape: [d], data: try take(pb, shape: [d]))
        tensors[TensorNames.clsToken] = HostTensor(shape: [d], data: try take(clsName, count: d))
        if has(distName) {   // distilled DeiT
            c.hasDistillationToken = true
            tensors[TensorNames.distToken] = HostTensor(shape: [d], data: try take(distName, count: d))
        }
        let first = c.prefixTokenCount
        if layout == .huggingFace { used.insert(prefix + "embeddings.mask_token") }   // DINOv2 pre-training only

        guard let pe = file.entries[posName], pe.shape.last == d, pe.elementCount % d == 0 else {
            throw fail("lacks tensor \(posName) ([1, tokens, \(d)])")
        }
        let tokens = pe.elementCount / d
        let grid = Int(Double(tokens - first).squareRoot().rounded())
        guard tokens > first, grid * grid + first == tokens else {
            throw fail("tensor \(posName) has \(tokens) positions, not \(first == 1 ? "CLS" : "CLS, distillation token") + a square grid (position embeddings without a CLS slot are not supported)")
        }
        let original = HostTensor(shape: [tokens, d], data: try take(posName))

        c.patchSize = p
        c.channels = channels
        c.dim = d
        var imageSize = options.imageSize
        if imageSize == nil && family != .dinov2 {
            if let s = jsonInt("image_size") { imageSize = s }
            else if let input = (json["pretrained_cfg"] as? [String: Any])?["input_size"] as? [NSNumber], input.count == 3 { imageSize = input[2].intValue }
        }
        c.imageSize = imageSize ?? (family == .dinov2 ? 224 : grid * p)
        guard c.imageSize % p == 0 else { throw fail("image size \(c.imageSize) is not a multiple of the patch size \(p)") }
        let to = c.imageSize / p
        tensors[TensorNames.posEmbed] = resizePositionEmbedding(original, from: grid, to: to, mode: .pytorchBicubic, prefix: first)
        return (original, grid)
    }

    struct Blocks {
        var depth: Int
        var mlp: Int
        var hasLayerScale: Bool
        /// Hugging Face DINOv2 names.
        var dino: Bool
    }

    /// Blocks, and the final LayerNorm.
    mutating func blocks(_ keys: [String], _ layout: SafetensorsImporter.Layout, prefix: String,
                         family: ViTConfig.Family, d: Int) throws -> Blocks {
        let layerPrefix = layout == .timm ? "blocks." : prefix + "encoder.layer."
        var depth = 0
        for k in keys where k.hasPrefix(layerPrefix) {
            let rest = k.dropFirst(layerPrefix.count)
            if let dot = rest.firstIndex(of: "."), let i = Int(rest[..<dot]) { depth = max(depth, i + 1) }
        }
        guard depth > 0 else { throw fail("no transformer blocks (\(layerPrefix)N...) found") }
        if let n = jsonInt("num_hidden_layers"), n != depth { throw fail("config.json num_hidden_layers \(n) but the file has \(depth) blocks") }

        let dino = layout == .huggingFace && family == .dinov2
        let fc1Name: String, fc2Name: String, ln1: String, ln2: String, ls1: String?, ls2: String?
        if layout == .timm {
            (ln1, ln2, fc1Name, fc2Name) = ("norm1", "norm2", "mlp.fc1", "mlp.fc2")
            (ls1, ls2) = ("ls1.gamma", "ls2.gamma")
        } else if dino {
            (ln1, ln2, fc1Name, fc2Name) = ("norm1", "norm2", "mlp.fc1", "mlp.fc2")
            (ls1, ls2) = ("layer_scale1.lambda1", "layer_scale2.lambda1")
        } else {
            (ln1, ln2, fc1Name, fc2Name) = ("layernorm_before", "layernorm_after", "intermediate.dense", "output.dense")
            (ls1, ls2) = (nil, nil)
        }
        let fc1w = layerPrefix + "0." + fc1Name + ".weight"
        guard let fc1e = file.entries[fc1w], fc1e.shape.count == 2, fc1e.shape[1] == d else {
            throw fail("lacks tensor \(fc1w) ([mlp, \(d)])")
        }
        let mlp = fc1e.shape[0]
        let hasLS = ls1.map { has(layerPrefix + "0." + $0) } ?? false
        for i in 0..<depth {
            let lp = layerPrefix + "\(i)."
            func put(_ leaf: String, _ shape: [Int], _ data: [Float]) { tensors[TensorNames.block(i, leaf)] = HostTensor(shape: shape, data: data) }
            put("norm1.weight", [d], try take(lp + ln1 + ".weight", shape: [d]))
            put("norm1.bias", [d], try take(lp + ln1 + ".bias", shape: [d]))
            if layout == .timm {
                put("attn.qkv.weight", [3 * d, d], try take(lp + "attn.qkv.weight", shape: [3 * d, d]))
                put("attn.qkv.bias", [3 * d], try take(lp + "attn.qkv.bias", shape: [3 * d]))
                put("attn.proj.weight", [d, d], try take(lp + "attn.proj.weight", shape: [d, d]))
                put("attn.proj.bias", [d], try take(lp + "attn.proj.bias", shape: [d]))
            } else {
                let a = lp + "attention.attention."
                put("attn.qkv.weight", [3 * d, d], try take(a + "query.weight", shape: [d, d]) + take(a + "key.weight", shape: [d, d]) + take(a + "value.weight", shape: [d, d]))
                put("attn.qkv.bias", [3 * d], try take(a + "query.bias", shape: [d]) + take(a + "key.bias", shape: [d]) + take(a + "value.bias", shape: [d]))
                put("attn.proj.weight", [d, d], try take(lp + "attention.output.dense.weight", shape: [d, d]))
                put("attn.proj.bias", [d], try take(lp + "attention.output.dense.bias", shape: [d]))
            }
            put("norm2.weight", [d], try take(lp + ln2 + ".weight", shape: [d]))
            put("norm2.bias", [d], try take(lp + ln2 + ".bias", shape: [d]))
            put("mlp.fc1.weight", [mlp, d], try take(lp + fc1Name + ".weight", shape: [mlp, d]))
            put("mlp.fc1.bias", [mlp], try take(lp + fc1Name + ".bias", shape: [mlp]))
            put("mlp.fc2.weight", [d, mlp], try take(lp + fc2Name + ".weight", shape: [d, mlp]))
            put("mlp.fc2.bias", [d], try take(lp + fc2Name + ".bias", shape: [d]))
            if hasLS, let l1 = ls1, let l2 = ls2 {
                put("ls1", [d], try take(lp + l1, count: d))
                put("ls2", [d], try take(lp + l2, count: d))
            }
        }
        let normPrefix = layout == .timm ? "norm" : prefix + "layernorm"
        tensors[TensorNames.normWeight] = HostTensor(shape: [d], data: try take(normPrefix + ".weight", shape: [d]))
        tensors[TensorNames.normBias] = HostTensor(shape: [d], data: try take(normPrefix + ".bias", shape: [d]))
        return Blocks(depth: depth, mlp: mlp, hasLayerScale: hasLS, dino: dino)
    }

    /// Head: classes and pooling; no head tensors, no classes.
    mutating func head(_ layout: SafetensorsImporter.Layout, d: Int,
                       dino: Bool) throws -> (numClasses: Int, pooling: ViTConfig.HeadPooling) {
        // Distilled DeiT: a head on each of the class and distillation tokens, averaged.
        let distHeads = layout == .timm ? ("head", "head_dist") : ("cls_classifier", "distillation_classifier")
        if has(distHeads.1 + ".weight") {
            return try distilledHeads(distHeads.0, distHeads.1, d: d)
        }
        let headName = layout == .timm ? "head" : "classifier"
        var numClasses = 0
        var pooling = ViTConfig.HeadPooling.cls
        if let he = file.entries[headName + ".weight"], he.shape.count == 2 {
            numClasses = he.shape[0]
            let inDim = he.shape[1]
            if inDim == 2 * d && dino { pooling = .clsAndPatchMean }
            else if inDim != d { throw fail("tensor \(headName).weight has shape \(he.shape), expected [classes, \(d)]\(dino ? " or [classes, \(2 * d)]" : "")") }
            tensors[TensorNames.headWeight] = HostTensor(shape: [numClasses, inDim], data: try take(headName + ".weight"))
            tensors[TensorNames.headBias] = HostTensor(shape: [numClasses], data: try take(headName + ".bias", shape: [numClasses]))
        }
        return (numClasses, pooling)
    }

    /// (W·cls + b + W_d·dist + b_d) / 2 as one Linear on concat(cls, dist),
    /// which is how the runtime pools distilled DeiT (`clsAndDistillation`).
    mutating func distilledHeads(_ clsHead: String, _ distHead: String,
                                 d: Int) throws -> (numClasses: Int, pooling: ViTConfig.HeadPooling) {
        guard tensors[TensorNames.distToken] != nil else {
            throw fail("tensor \(distHead).weight: a distillation head without a distillation token")
        }
        guard let e0 = file.entries[clsHead + ".weight"], let e1 = file.entries[distHead + ".weight"],
              e0.shape.count == 2, e0.shape == e1.shape, e0.shape[1] == d else {
            throw fail("distilled DeiT needs \(clsHead).weight and \(distHead).weight, both [classes, \(d)]; found \(file.entries[clsHead + ".weight"]?.shape ?? []) and \(file.entries[distHead + ".weight"]?.shape ?? [])")
        }
        let n = e0.shape[0]
        let w0 = try take(clsHead + ".weight"), w1 = try take(distHead + ".weight")
        let b0 = try take(clsHead + ".bias", shape: [n]), b1 = try take(distHead + ".bias", shape: [n])
        var w = [Float](repeating: 0, count: n * 2 * d)
        for r in 0..<n {
            for k in 0..<d { w[r * 2 * d + k] = 0.5 * w0[r * d + k]; w[r * 2 * d + d + k] = 0.5 * w1[r * d + k] }
        }
        tensors[TensorNames.headWeight] = HostTensor(shape: [n, 2 * d], data: w)
        tensors[TensorNames.headBias] = HostTensor(shape: [n], data: (0..<n).map { 0.5 * (b0[$0] + b1[$0]) })
        return (n, .clsAndDistillation)
    }

    /// Every tensor of the file must have found its place (the Hugging Face pooler is left out on purpose).
    mutating func refuseUnplaced(_ keys: [String], _ layout: SafetensorsImporter.Layout, prefix: String,
                                 family: ViTConfig.Family) throws {
        if layout == .huggingFace {
            for k in keys where k.hasPrefix(prefix + "pooler.") { used.insert(k) }   // ViTModel pooler: unused by classification
        }
        if let stray = keys.first(where: { !used.contains($0) }) {
            throw fail("cannot place tensor \(stray) (shape \(file.entries[stray]!.shape)) in a \(layout.rawValue) \(family) ViT")
        }
    }

    /// Configuration: what the tensors do not say, from config.json or the family's defaults.
    func configure(_ c: inout ViTConfig, layout: SafetensorsImporter.Layout, blocks b: Blocks,
                   head h: (numClasses: Int, pooling: ViTConfig.HeadPooling)) throws {
        let family = c.family, d = c.dim
        c.depth = b.depth
        c.heads = options.heads ?? jsonInt("num_attention_heads") ?? max(1, d / 64)
        c.mlpDim = b.mlp
        c.numClasses = h.numClasses
        c.layerNormEps = jsonFloat("layer_norm_eps") ?? (layout == .timm || family == .dinov2 ? 1e-6 : 1e-12)
        c.hasLayerScale = b.hasLayerScale
        switch (json["hidden_act"] as? String) ?? "gelu" {
        case "gelu": c.geluTanh = false
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": c.geluTanh = true
        case let act: throw fail("config.json hidden_act \(act) is not supported (gelu or gelu_pytorch_tanh)")
        }
        c.headPooling = h.pooling
        c.setPreprocessing(for: family)
        if let cfg = json["pretrained_cfg"] as? [String: Any],
           let mean = cfg["mean"] as? [NSNumber], let std = cfg["std"] as? [NSNumber], mean.count == 3, std.count == 3 {
            c.mean = (mean[0].floatValue, mean[1].floatValue, mean[2].floatValue)
            c.std = (std[0].floatValue, std[1].floatValue, std[2].floatValue)
        }
    }

    /// Labels from config.json's id2label; generic LABEL_n names are dropped.
    func labels(numClasses: Int) throws -> [String] {
        var labels: [String] = []
        if numClasses > 0, let id2label = json["id2label"] as? [String: Any] {
            var byIndex: [Int: String] = [:]
            for (k, v) in id2label { if let i = Int(k) { byIndex[i] = "\(v)" } }
            if byIndex.count == numClasses && (0..<numClasses).allSatisfy({ byIndex[$0] != nil }) {
                labels = (0..<numClasses).map { byIndex[$0]! }
            } else if !byIndex.values.allSatisfy({ $0.hasPrefix("LABEL_") }) {
                throw fail("config.json id2label has \(byIndex.count) labels for \(numClasses) classes")
            }
        }
        return labels
    }
}
