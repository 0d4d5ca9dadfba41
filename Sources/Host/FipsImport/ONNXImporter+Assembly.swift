import FipsArtifact
import FipsHostModel

/// Assembly: the collected initializers, checked, into a `ViTModel`.
extension ONNXPatternMatcher {
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
        let position = try positionEmbedding(d: d, to: to, imageSize: c.imageSize, prefix: c.prefixTokenCount, into: &tensors)
        let (depth, mlp, hasLS) = try blocks(d: d, into: &tensors)
        try finalNorm(d: d, into: &tensors)
        try configure(&c, depth: depth, mlp: mlp, hasLayerScale: hasLS)
        let labels = try headAndPreprocessing(&c, into: &tensors)

        let model = ViTModel(config: c, tensors: tensors, labels: labels)
        if let problem = model.validate() { throw fail("imported model is inconsistent: \(problem)") }
        return ONNXImportResult(model: model, positionEmbedding: position, backboneOutput: backboneOutput)
    }

    /// Patch embedding and CLS token; sets the config's family, patch size,
    /// channels, width and image size.
    func embeddings(config c: inout ViTConfig, into tensors: inout [String: HostTensor]) throws {
        guard let (convNode, pw, pb) = conv else {
            throw fail("no patch-embedding Conv found")
        }
        guard pw.dims.count == 4, pw.dims[2] == pw.dims[3] else {
            throw fail("node \(convNode.name): patch weight \(pw.name) has shape \(pw.dims), expected [dim, C, p, p]")
        }
        let d = pw.dims[0], channels = pw.dims[1], p = pw.dims[2]
        if convNode.ints("strides") != [p, p] || (convNode.ints("kernel_shape") ?? [p, p]) != [p, p]
            || (convNode.ints("pads") ?? [0, 0, 0, 0]).contains(where: { $0 != 0 }) || (convNode.int("group") ?? 1) != 1 {
            throw fail("node \(convNode.name): patch Conv is not a non-overlapping \(p)x\(p) patchify (strides \(convNode.ints("strides") ?? []))")
        }
        guard let cls = clsToken else { throw fail("no CLS token initializer") }

        c.family = options.family ?? (distToken != nil ? .deit : layers.first?["ls1"] != nil ? .dinov2 : .vit)
        c.patchSize = p
        c.channels = channels
        c.dim = d
        let shape = onnx.graph.inputs.first(where: { $0.name == g.input })?.shape ?? []
        let staticH = shape.count == 4 ? shape[2] : nil
        let metaSize = try ONNXMetadata(onnx.metadata, path: path).imageSize
        c.imageSize = options.imageSize ?? staticH ?? metaSize ?? 224
        guard c.imageSize % p == 0 else {
            throw fail("image size \(c.imageSize) is not a multiple of the patch size \(p)")
        }

        tensors[TensorNames.patchWeight] = HostTensor(shape: [d, channels * p * p], data: try floats(pw, [d, channels, p, p], convNode.name))
        tensors[TensorNames.patchBias] = HostTensor(shape: [d], data: try pb.map { try floats($0, [d], convNode.name) } ?? [Float](repeating: 0, count: d))
        tensors[TensorNames.clsToken] = HostTensor(shape: [d], data: try floats(cls.tensor, [1, 1, d], cls.node))
        if let dist = distToken {
            c.hasDistillationToken = true
            tensors[TensorNames.distToken] = HostTensor(shape: [d], data: try floats(dist.tensor, [1, 1, d], dist.node))
        }
    }

    /// Position embedding: the file's (CLS + grid), resized to the model's
    /// `to`x`to` grid the way the graph does it.
    func positionEmbedding(d: Int, to: Int, imageSize: Int, prefix: Int,
                           into tensors: inout [String: HostTensor]) throws -> ImportedPositionEmbedding {
        let original: HostTensor
        let grid: Int
        var mode = PositionEmbeddingResizeMode.pytorchBicubic
        if let rz = resize {
            guard let gridT = posGrid, gridT.dims.count == 3, gridT.dims[0] == 1, gridT.dims[2] == d else {
                throw fail("node \(rz.name): cannot find the position-embedding grid initializer ([1, S*S, \(d)]) it resizes")
            }
            guard prefix == 1 else { throw fail("node \(rz.name): a position embedding resized in the graph with a distillation token is not supported") }
            guard let cp = clsPos else { throw fail("node \(rz.name): no CLS position initializer ([1, 1, \(d)]) concatenated after the resize") }
            let s = Int(Double(gridT.dims[1]).squareRoot().rounded())
            guard s * s == gridT.dims[1] else { throw fail("initializer \(gridT.name): \(gridT.dims[1]) positions are not a square grid") }
            grid = s
            original = HostTensor(shape: [1 + s * s, d],
                                  data: try floats(cp, [1, 1, d], rz.name) + (try floats(gridT, [1, s * s, d], rz.name)))
            mode = try resizeMode(rz, from: s, to: to)
        } else {
            guard let pfp = posFull, pfp.tensor.dims.count == 3, pfp.tensor.dims[0] == 1, pfp.tensor.dims[2] == d else {
                throw fail("no position-embedding initializer [1, tokens, \(d)] found")
            }
            let pf = pfp.tensor
            let s = Int(Double(pf.dims[1] - prefix).squareRoot().rounded())
            guard s * s + prefix == pf.dims[1] else {
                throw fail("initializer \(pf.name): \(pf.dims[1]) positions are not \(prefix == 1 ? "CLS" : "CLS, distillation token") + a square grid")
            }
            guard s == to else { throw fail("initializer \(pf.name): position embedding for a \(s)x\(s) grid, the graph has no Resize, image size \(imageSize) needs \(to)x\(to)") }
            grid = s
            original = HostTensor(shape: [prefix + s * s, d], data: try floats(pf, [1, prefix + s * s, d], pfp.node))
        }
        if case .bicubicScale(_, let sc) = mode, Int((Float(grid) * sc).rounded(.down)) != to {
            throw fail("node \(resize!.name): scale \(sc) turns the \(grid)x\(grid) grid into \(Int((Float(grid) * sc).rounded(.down))), not \(to) for image size \(imageSize)")
        }
        tensors[TensorNames.posEmbed] = resizePositionEmbedding(original, from: grid, to: to, mode: mode, prefix: prefix)
        return ImportedPositionEmbedding(original: original, grid: grid, mode: mode)
    }

    /// Blocks: every layer's initializers by role, as [out, in] linears.
    func blocks(d: Int, into tensors: inout [String: HostTensor]) throws -> (depth: Int, mlp: Int, hasLayerScale: Bool) {
        let depth = layers.count
        guard depth > 0 else { throw fail("no transformer blocks found after the embeddings") }
        guard let fc1 = layers[0]["fc1.w"] else { throw fail("layer 0: no MLP fc1 weight") }
        let mlp = fc1.outIn ? fc1.tensor.dims[0] : fc1.tensor.dims[1]
        let hasLS = layers[0]["ls1"] != nil && layers[0]["ls2"] != nil
        for i in 0..<depth {
            let slots = layers[i]
            /// A linear weight as [out, in].
            func weight(_ role: String, out: Int, in inDim: Int) throws -> [Float] {
                guard let p = slots[role + ".w"] else { throw fail("layer \(i): no \(role) weight") }
                if p.outIn { return try floats(p.tensor, [out, inDim], p.node) }
                return transposed(try floats(p.tensor, [inDim, out], p.node), rows: inDim, cols: out)
            }
            /// A bias, or zeros for a Linear without one.
            func bias(_ role: String, _ n: Int) throws -> [Float] {
                guard let p = slots[role + ".b"] else { return [Float](repeating: 0, count: n) }
                guard p.tensor.elementCount == n else { throw fail("node \(p.node): bias \(p.tensor.name) has shape \(p.tensor.dims), expected [\(n)]") }
                return try onnx.floats(p.tensor)
            }
            func vector(_ role: String) throws -> [Float] {
                if role.hasSuffix(".b") && slots[role] == nil { return [Float](repeating: 0, count: d) }   // a LayerNorm without bias
                guard let p = slots[role] else { throw fail("layer \(i): no \(role)") }
                guard p.tensor.elementCount == d else { throw fail("node \(p.node): \(p.tensor.name) has shape \(p.tensor.dims), expected [\(d)]") }
                return try onnx.floats(p.tensor)
            }
            func put(_ leaf: String, _ shape: [Int], _ data: [Float]) { tensors[TensorNames.block(i, leaf)] = HostTensor(shape: shape, data: data) }
            put("norm1.weight", [d], try vector("norm1.w"))
            put("norm1.bias", [d], try vector("norm1.b"))
            if slots["qkv.w"] != nil {
                put("attn.qkv.weight", [3 * d, d], try weight("qkv", out: 3 * d, in: d))
                put("attn.qkv.bias", [3 * d], try bias("qkv", 3 * d))
            } else {
                put("attn.qkv.weight", [3 * d, d], try weight("query", out: d, in: d) + weight("key", out: d, in: d) + weight("value", out: d, in: d))
                put("attn.qkv.bias", [3 * d], try bias("query", d) + bias("key", d) + bias("value", d))
            }
            put("attn.proj.weight", [d, d], try weight("proj", out: d, in: d))
            put("attn.proj.bias", [d], try bias("proj", d))
            put("norm2.weight", [d], try vector("norm2.w"))
            put("norm2.bias", [d], try vector("norm2.b"))
            put("mlp.fc1.weight", [mlp, d], try weight("fc1", out: mlp, in: d))
            put("mlp.fc1.bias", [mlp], try bias("fc1", mlp))
            put("mlp.fc2.weight", [d, mlp], try weight("fc2", out: d, in: mlp))
            put("mlp.fc2.bias", [d], try bias("fc2", d))
            if hasLS {
                put("ls1", [d], try vector("ls1"))
                put("ls2", [d], try vector("ls2"))
            } else if let p = slots["ls1"] ?? slots["ls2"] {
                throw fail("node \(p.node): LayerScale in layer \(i) but not in both branches of layer 0")
            }
        }
        return (depth, mlp, hasLS)
    }

    /// The final LayerNorm's weight and bias.
    func finalNorm(d: Int, into tensors: inout [String: HostTensor]) throws {
        guard let w = final["norm.w"] else { throw fail("no final LayerNorm") }
        tensors[TensorNames.normWeight] = HostTensor(shape: [d], data: try floats(w.tensor, [d], w.node))
        tensors[TensorNames.normBias] = HostTensor(shape: [d], data: try final["norm.b"].map { try floats($0.tensor, [d], $0.node) } ?? [Float](repeating: 0, count: d))
    }

    /// Configuration: epsilon, GELU variant and heads, the same in every layer.
    func configure(_ c: inout ViTConfig, depth: Int, mlp: Int, hasLayerScale hasLS: Bool) throws {
        guard let eps = epsilons.first else { throw fail("cannot find the LayerNorm epsilon") }
        if let other = epsilons.first(where: { $0.0 != eps.0 }) {
            throw fail("node \(other.1): LayerNorm epsilon \(other.0) differs from \(eps.0) of node \(eps.1)")
        }
        let tanh = gelu[0]!
        if let (layer, _) = gelu.first(where: { $0.value != tanh }) {
            throw fail("layer \(layer): GELU variant differs from layer 0")
        }
        c.depth = depth
        guard let h = heads?.0 ?? options.heads else {
            throw fail("cannot find the head count (a Reshape to [..., heads, head dim] in layer 0's attention); pass it as an option")
        }
        c.heads = h
        c.mlpDim = mlp
        c.numClasses = 0
        c.layerNormEps = eps.0
        c.hasLayerScale = hasLS
        c.geluTanh = tanh
        c.headPooling = .cls
    }

    /// The CLS-pooled head when the graph has one; mean/std/size and labels
    /// from the metadata, else ImageNet statistics and a 256/224 resize.
    func headAndPreprocessing(_ c: inout ViTConfig, into tensors: inout [String: HostTensor]) throws -> [String] {
        let meta = try ONNXMetadata(onnx.metadata, path: path)
        c.setPreprocessing(for: .dinov2)   // ImageNet statistics, shorter side 256/224 of the crop
        if let m = meta.mean { c.mean = m }
        if let s = meta.std { c.std = s }
        if let r = meta.resizeShorter { c.resizeShorter = r }
        guard let h = head else {
            if !meta.labels.isEmpty { throw fail("metadata_props: id2label names \(meta.labels.count) classes, but the graph has no classifier head") }
            return []
        }
        let d = c.dim, n = h.outDim
        guard h.inDim == d else { throw fail("node \(h.weight.node): head input \(h.inDim), expected the width \(d)") }
        func weight(_ l: LinearLayer) throws -> [Float] {
            let w = l.weight
            return w.outIn ? try floats(w.tensor, [n, d], w.node) : transposed(try floats(w.tensor, [d, n], w.node), rows: d, cols: n)
        }
        func bias(_ l: LinearLayer) throws -> [Float] {
            try l.bias.map { try onnx.floats($0.tensor) } ?? [Float](repeating: 0, count: n)
        }
        if let hd = distillationHead {
            // (W·cls + b + W_d·dist + b_d) / 2 as one Linear on concat(cls, dist).
            let w0 = try weight(h), w1 = try weight(hd), b0 = try bias(h), b1 = try bias(hd)
            var w = [Float](repeating: 0, count: n * 2 * d)
            for r in 0..<n {
                for k in 0..<d { w[r * 2 * d + k] = 0.5 * w0[r * d + k]; w[r * 2 * d + d + k] = 0.5 * w1[r * d + k] }
            }
            tensors[TensorNames.headWeight] = HostTensor(shape: [n, 2 * d], data: w)
            tensors[TensorNames.headBias] = HostTensor(shape: [n], data: (0..<n).map { 0.5 * (b0[$0] + b1[$0]) })
            c.headPooling = .clsAndDistillation
        } else {
            tensors[TensorNames.headWeight] = HostTensor(shape: [n, d], data: try weight(h))
            tensors[TensorNames.headBias] = HostTensor(shape: [n], data: try bias(h))
        }
        c.numClasses = n
        if !meta.labels.isEmpty && meta.labels.count != n {
            throw fail("metadata_props: id2label names \(meta.labels.count) classes, the head has \(n)")
        }
        return meta.labels
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
            if let t = g.constant(sizesName) {
                let v = try onnx.ints(t)
                guard v.count == 4, v[2] == to, v[3] == to else {
                    throw fail("node \(n.name): Resize to fixed sizes \(v), but image size needs a \(to)x\(to) grid")
                }
            }
            return .bicubic(a: a)
        }
        if !scalesName.isEmpty {
            guard let t = g.constant(scalesName) else {
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
