import FipsArtifact
import FipsKernels

/// Per-block weights, resolved once at load time.
struct BlockWeights {
    var norm1W, norm1B, norm2W, norm2B: UnsafePointer<Float>
    var qkv, proj: LinearWeights
    var mlp: MLPWeights
    var ls1, ls2: UnsafePointer<Float>?
}

/// Every weight a `ViTExecutor` runs, looked up by name and checked against
/// the configuration once, at load time. The MLP of a block takes one of
/// three forms, by which tensors are present: `mlp.fc1.Ut` (low-rank packed
/// factors), `mlp.fc1.U` (float FiPS factors), else dense fc1 / fc2.
struct ExecutorWeights {
    var patch: LinearWeights
    var clsToken, posEmbed, normW, normB: UnsafePointer<Float>
    /// Distilled DeiT's second prefix token; nil for every other model.
    var distToken: UnsafePointer<Float>?
    var head: LinearWeights?
    var blocks: [BlockWeights]

    /// Every linear map (for sizing the integer GEMM's scratch).
    var linears: [LinearWeights] {
        var all = [patch]
        if let hd = head { all.append(hd) }
        for b in blocks { all += [b.qkv, b.proj] + b.mlp.linears }
        return all
    }

    init(config c: ViTConfig, lookup: (String) -> TensorView?) throws(ArtifactError) {
        typealias r = WeightResolver
        let d = c.dim
        let pw = try r.need(lookup, TensorNames.patchWeight, [d, c.channels * c.patchSize * c.patchSize])
        guard pw.dtype == .f32, let patch = LinearWeights(pw, bias: try r.need(lookup, TensorNames.patchBias, [d])) else {
            throw .wrongShape(path: r.path, name: TensorNames.patchWeight, reason: "must be f32")
        }
        self.patch = patch
        clsToken = try r.f32(lookup, TensorNames.clsToken, [d])
        distToken = c.hasDistillationToken ? try r.f32(lookup, TensorNames.distToken, [d]) : nil
        posEmbed = try r.f32(lookup, TensorNames.posEmbed, [c.tokenCount, d])
        normW = try r.f32(lookup, TensorNames.normWeight, [d])
        normB = try r.f32(lookup, TensorNames.normBias, [d])
        head = c.hasHead ? try r.linear(lookup, "head", c.numClasses, c.headInputDim) : nil
        var bs = [BlockWeights]()
        for i in 0..<c.depth {
            func n(_ leaf: String) -> String { TensorNames.block(i, leaf) }
            let mlp = try r.mlp(lookup, block: i, config: c)   // resolved first, as it always was (the first error wins)
            bs.append(BlockWeights(
                norm1W: try r.f32(lookup, n("norm1.weight"), [d]), norm1B: try r.f32(lookup, n("norm1.bias"), [d]),
                norm2W: try r.f32(lookup, n("norm2.weight"), [d]), norm2B: try r.f32(lookup, n("norm2.bias"), [d]),
                qkv: try r.linear(lookup, n("attn.qkv"), 3 * d, d), proj: try r.linear(lookup, n("attn.proj"), d, d),
                mlp: mlp,
                ls1: c.hasLayerScale ? try r.f32(lookup, n("ls1"), [d]) : nil,
                ls2: c.hasLayerScale ? try r.f32(lookup, n("ls2"), [d]) : nil))
        }
        blocks = bs
    }
}

/// Name lookups with the shape and encoding checks, throwing the artifact's errors.
/// (Static functions: `lookup` is a non-escaping closure and cannot be stored.)
enum WeightResolver {
    typealias Lookup = (String) -> TensorView?
    static var path: String { "model" }

    static func need(_ lookup: Lookup, _ n: String, _ shape: [Int]) throws(ArtifactError) -> TensorView {
        guard let t = lookup(n) else { throw .missingTensor(path: path, name: n) }
        if t.elementCount != shape.reduce(1, *) || t.shape[0] != shape[0] {
            throw .wrongShape(path: path, name: n, reason: "has \(shapeText(t.shape)), expected \(shapeText(shape))")
        }
        return t
    }

    static func f32(_ lookup: Lookup, _ n: String, _ shape: [Int]) throws(ArtifactError) -> UnsafePointer<Float> {
        let t = try need(lookup, n, shape)
        if t.dtype != .f32 { throw .wrongShape(path: path, name: n, reason: "must be f32, is \(t.dtype.name)") }
        return t.floats
    }

    static func linear(_ lookup: Lookup, _ n: String, _ out: Int, _ inp: Int) throws(ArtifactError) -> LinearWeights {
        let w = try need(lookup, n + ".weight", [out, inp])
        let b = try need(lookup, n + ".bias", [out])
        guard let l = LinearWeights(w, bias: b, actScale: lookup(n + ".act_scale")) else {
            throw .wrongShape(path: path, name: n + ".weight", reason: "\(w.dtype.name) is not a linear-layer encoding")
        }
        return l
    }

    /// A float factor of a FiPS MLP (dense or CSR).
    static func factor(_ lookup: Lookup, _ name: String, _ shape0: Int?, _ shape1: Int?) throws(ArtifactError) -> FactorWeights {
        guard let t = lookup(name) else { throw .missingTensor(path: path, name: name) }
        guard let f = FactorWeights(t), shape0 == nil || f.rows == shape0!, shape1 == nil || f.cols == shape1! else {
            throw .wrongShape(path: path, name: name, reason: "has \(shapeText(t.shape)) \(t.dtype.name)")
        }
        return f
    }

    /// A factor of a quantised FiPS MLP, stored [out, in] with its
    /// calibrated input scale under "<name>.act_scale".
    static func packedFactor(_ lookup: Lookup, _ name: String, _ out: Int?, _ inp: Int?, bias: String?) throws(ArtifactError) -> LinearWeights {
        guard let t = lookup(name) else { throw .missingTensor(path: path, name: name) }
        guard t.shape.count == 2, out == nil || t.shape[0] == out!, inp == nil || t.shape[1] == inp!,
              let l = LinearWeights(t, bias: bias == nil ? nil : try need(lookup, bias!, [t.shape[0]]),
                                    actScale: lookup(name + ".act_scale")) else {
            throw .wrongShape(path: path, name: name, reason: "has \(shapeText(t.shape)) \(t.dtype.name)")
        }
        return l
    }

    /// The MLP of block `i` in whichever of the three forms the tensors hold.
    static func mlp(_ lookup: Lookup, block i: Int, config c: ViTConfig) throws(ArtifactError) -> MLPWeights {
        func n(_ leaf: String) -> String { TensorNames.block(i, leaf) }
        let d = c.dim
        if lookup(n("mlp.fc1.Ut")) != nil {
            let ut = try packedFactor(lookup, n("mlp.fc1.Ut"), nil, d, bias: nil)
            let vt = try packedFactor(lookup, n("mlp.fc1.Vt"), c.mlpDim, ut.outFeatures, bias: n("mlp.fc1.bias"))
            let v2 = try packedFactor(lookup, n("mlp.fc2.V"), nil, c.mlpDim, bias: nil)
            let u2 = try packedFactor(lookup, n("mlp.fc2.U"), d, v2.outFeatures, bias: n("mlp.fc2.bias"))
            return .lowRank(fc1Ut: ut, fc1Vt: vt, fc2V: v2, fc2U: u2)
        }
        if lookup(n("mlp.fc1.U")) != nil {
            let u1 = try factor(lookup, n("mlp.fc1.U"), d, nil)
            let v1 = try factor(lookup, n("mlp.fc1.V"), u1.cols, c.mlpDim)
            let u2 = try factor(lookup, n("mlp.fc2.U"), d, nil)
            let v2 = try factor(lookup, n("mlp.fc2.V"), u2.cols, c.mlpDim)
            return .factorised(fc1U: u1, fc1V: v1, fc1Bias: try f32(lookup, n("mlp.fc1.bias"), [c.mlpDim]),
                               fc2U: u2, fc2V: v2, fc2Bias: try f32(lookup, n("mlp.fc2.bias"), [d]))
        }
        return .dense(fc1: try linear(lookup, n("mlp.fc1"), c.mlpDim, d), fc2: try linear(lookup, n("mlp.fc2"), d, c.mlpDim))
    }
}
