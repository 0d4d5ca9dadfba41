import FipsArtifact

/// A dense float32 tensor on the host, row-major.
public struct HostTensor: Equatable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not hold \(data.count) values")
        self.shape = shape
        self.data = data
    }
    public init(zeros shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)))
    }
    public var count: Int { data.count }
}

/// A ViT in memory on the host, keyed by the canonical names of
/// `FipsArtifact.TensorNames` (linear weights [out, in]).
public struct ViTModel {
    public var config: ViTConfig
    public var tensors: [String: HostTensor]
    public var labels: [String]

    public init(config: ViTConfig, tensors: [String: HostTensor], labels: [String] = []) {
        self.config = config
        self.tensors = tensors
        self.labels = labels
    }

    public subscript(_ name: String) -> HostTensor {
        guard let t = tensors[name] else { fatalError("model lacks tensor \(name)") }
        return t
    }

    /// Every name and shape the executor needs; used by importers to refuse
    /// an incomplete model before writing anything.
    public static func expectedShapes(_ c: ViTConfig) -> [(String, [Int])] {
        let d = c.dim
        var out: [(String, [Int])] = [
            (TensorNames.patchWeight, [d, c.channels * c.patchSize * c.patchSize]),
            (TensorNames.patchBias, [d]),
            (TensorNames.clsToken, [d]),
            (TensorNames.posEmbed, [c.tokenCount, d]),
        ]
        if c.hasDistillationToken { out.append((TensorNames.distToken, [d])) }
        for i in 0..<c.depth {
            func b(_ leaf: String, _ s: [Int]) { out.append((TensorNames.block(i, leaf), s)) }
            b("norm1.weight", [d]); b("norm1.bias", [d])
            b("attn.qkv.weight", [3 * d, d]); b("attn.qkv.bias", [3 * d])
            b("attn.proj.weight", [d, d]); b("attn.proj.bias", [d])
            if c.hasLayerScale { b("ls1", [d]) }
            b("norm2.weight", [d]); b("norm2.bias", [d])
            b("mlp.fc1.weight", [c.mlpDim, d]); b("mlp.fc1.bias", [c.mlpDim])
            b("mlp.fc2.weight", [d, c.mlpDim]); b("mlp.fc2.bias", [d])
            if c.hasLayerScale { b("ls2", [d]) }
        }
        out.append((TensorNames.normWeight, [d]))
        out.append((TensorNames.normBias, [d]))
        if c.hasHead {
            out.append((TensorNames.headWeight, [c.numClasses, c.headInputDim]))
            out.append((TensorNames.headBias, [c.numClasses]))
        }
        return out
    }

    /// True when block i's MLP is stored as FiPS/SVD factors
    /// (`mlp.fc1.U`, `mlp.fc1.V`, `mlp.fc2.U`, `mlp.fc2.V`) instead of dense weights.
    public func isFactorised(block i: Int) -> Bool { tensors[TensorNames.block(i, "mlp.fc1.U")] != nil }

    /// The tensors this model actually needs: `expectedShapes`, with the dense
    /// MLP weights of factorised blocks replaced by their factors (rank from U).
    public func requiredShapes() -> [(String, [Int])] {
        ViTModel.requiredShapes(config) { i, fc in
            isFactorised(block: i) ? (tensors[TensorNames.block(i, "mlp.\(fc).U")]?.shape.last ?? 0) : nil
        }
    }

    /// The same for a model not built yet: `rank(block, "fc1"|"fc2")` is the
    /// rank of that factorised layer, nil for a dense one. fips-plan sizes a
    /// planned artifact from this list, in the order the writer stores it.
    public static func requiredShapes(_ config: ViTConfig, rank: (Int, String) -> Int?) -> [(String, [Int])] {
        var out = [(String, [Int])]()
        for (name, shape) in ViTModel.expectedShapes(config) {
            let parts = name.split(separator: ".")
            if parts.count == 5, parts[0] == "blocks", let i = Int(parts[1]), parts[2] == "mlp", parts[4] == "weight",
               let r1 = rank(i, String(parts[3])) {
                let fc = String(parts[3])
                out.append((TensorNames.block(i, "mlp.\(fc).U"), [config.dim, r1]))
                out.append((TensorNames.block(i, "mlp.\(fc).V"), [r1, config.mlpDim]))
            } else {
                out.append((name, shape))
            }
        }
        return out
    }

    /// nil when every required tensor is present with its shape, else the first problem.
    public func validate() -> String? {
        if let r = config.validate() { return r }
        for (name, shape) in requiredShapes() {
            guard let t = tensors[name] else { return "missing tensor \(name)" }
            if t.shape != shape { return "tensor \(name) has shape \(t.shape), expected \(shape)" }
        }
        if !labels.isEmpty && labels.count != config.numClasses {
            return "\(labels.count) labels for \(config.numClasses) classes"
        }
        return nil
    }
}
