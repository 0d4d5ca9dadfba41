import FipsArtifact
import FipsHostModel

/// Assembly: the collected initializers, checked, into a `ViTModel`.
extension ONNXBackboneWalker {
    func floats(_ t: ONNXTensor, _ shape: [Int], _ node: String) throws -> [Float] {
        guard t.dims == shape else {
            throw fail("node \(node): initializer \(t.name) has shape \(t.dims), expected \(shape)")
        }
        return try onnx.floats(t)
    }

    mutating func assemble() throws -> ONNXImportResult {
        var c = ViTConfig()
        var tensors: [String: HostTensor] = [:]
        try embeddings(config: &c, into: &tensors)
        let d = c.dim, to = c.imageSize / c.patchSize
        let position = try positionEmbedding(d: d, to: to, imageSize: c.imageSize, into: &tensors)
        let (depth, mlp, hasLS) = try blocks(d: d, into: &tensors)
        try finalNorm(d: d, into: &tensors)
        try configure(&c, depth: depth, mlp: mlp, hasLayerScale: hasLS)

        let model = ViTModel(config: c, tensors: tensors)
        if let problem = model.validate() { throw fail("imported model is inconsistent: \(problem)") }
        return ONNXImportResult(model: model, positionEmbedding: position, backboneOutput: ONNXImporter.backboneOutput)
    }

    /// Patch embedding and CLS token; sets the config's family, patch size,
    /// channels, width and image size.
    func embeddings(config c: inout ViTConfig, into tensors: inout [String: HostTensor]) throws {
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

        c.family = options.family ?? .dinov2
        c.patchSize = p
        c.channels = channels
        c.dim = d
        let staticH = onnx.graph.inputs.first?.shape.count == 4 ? onnx.graph.inputs.first!.shape[2] : nil
        c.imageSize = options.imageSize ?? staticH ?? 224
        guard c.imageSize % p == 0 else {
            throw fail("image size \(c.imageSize) is not a multiple of the patch size \(p)")
        }

        tensors[TensorNames.patchWeight] = HostTensor(shape: [d, channels * p * p], data: try floats(pw, [d, channels, p, p], convNode.name))
        tensors[TensorNames.patchBias] = HostTensor(shape: [d], data: try floats(pb, [d], convNode.name))
        tensors[TensorNames.clsToken] = HostTensor(shape: [d], data: try floats(cls, [1, 1, d], "/backbone/embeddings/Expand"))
    }

    /// Position embedding: the file's (CLS + grid), resized to the model's
    /// `to`x`to` grid the way the graph does it.
    func positionEmbedding(d: Int, to: Int, imageSize: Int,
                           into tensors: inout [String: HostTensor]) throws -> ImportedPositionEmbedding {
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
            guard s == to else { throw fail("initializer \(pf.name): position embedding for a \(s)x\(s) grid, the graph has no Resize, image size \(imageSize) needs \(to)x\(to)") }
            grid = s
            original = HostTensor(shape: [1 + s * s, d], data: try floats(pf, [1, 1 + s * s, d], "/backbone/embeddings/Add"))
        }
        if case .bicubicScale(_, let sc) = mode, Int((Float(grid) * sc).rounded(.down)) != to {
            throw fail("node \(resize!.name): scale \(sc) turns the \(grid)x\(grid) grid into \(Int((Float(grid) * sc).rounded(.down))), not \(to) for image size \(imageSize)")
        }
        tensors[TensorNames.posEmbed] = resizePositionEmbedding(original, from: grid, to: to, mode: mode)
        return ImportedPositionEmbedding(original: original, grid: grid, mode: mode)
    }

    /// Blocks: every layer's initializers by role, transposed to [out, in].
    func blocks(d: Int, into tensors: inout [String: HostTensor]) throws -> (depth: Int, mlp: Int, hasLayerScale: Bool) {
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
        return (depth, mlp, hasLS)
    }

    /// The final LayerNorm's weight and bias.
    func finalNorm(d: Int, into tensors: inout [String: HostTensor]) throws {
        for key in ["layernorm.w", "layernorm.b"] where final[key] == nil {
            throw fail("no initializer for the final LayerNorm \(key.hasSuffix("w") ? "weight (node /backbone/layernorm/Mul)" : "bias (node /backbone/layernorm/Add_1)")")
        }
        tensors[TensorNames.normWeight] = HostTensor(shape: [d], data: try floats(final["layernorm.w"]!.0, [d], final["layernorm.w"]!.1))
        tensors[TensorNames.normBias] = HostTensor(shape: [d], data: try floats(final["layernorm.b"]!.0, [d], final["layernorm.b"]!.1))
    }

    /// Configuration: epsilon, GELU variant and heads, the same in every layer.
    func configure(_ c: inout ViTConfig, depth: Int, mlp: Int, hasLayerScale hasLS: Bool) throws {
        let d = c.dim
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
