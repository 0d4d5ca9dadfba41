import FipsArtifact
import FipsArtifactWriter
import FipsHostModel
import FipsKernels

/// What `fips import --bits` and `fips compress --bits` ask for.
public struct ModelQuantizationOptions {
    /// Bits of every linear map (8, 4, 3 or 2) unless `blockBits` says otherwise.
    public var bits = 8
    /// Bits per transformer block (a plan's choice per block group, spelled
    /// out per block); nil: `bits` everywhere.
    public var blockBits: [Int]? = nil
    /// Bits of the attention maps (qkv, proj) per block, overriding
    /// `blockBits`/`bits` for them (a plan prices attention and MLP apart).
    public var blockAttentionBits: [Int]? = nil
    /// At 8 bits, store any weight with zeros as q8-sparse whenever that is
    /// smaller than q8 (by default only above 1/4 zeros). fips-plan sets it:
    /// then the stored bytes of a pruned projection never exceed the
    /// q8-sparse size of its kept weights, the bound the plan is sized by.
    public var sparseWhenSmaller = false
    /// The head is tiny and feeds the logits directly: 8 bits unless set.
    public var headBits = 8
    public var rounding: WeightRounding = .gptq
    /// Static per-tensor input scales from the calibration statistics; nil
    /// leaves the runtime to quantise each token on the fly (what `fips`
    /// asks for by default: more accurate, README).
    public var activations: ActivationCalibration? = .mse
    /// Layers (by name suffix, e.g. "mlp.fc2") whose inputs stay dynamic
    /// (per token) even when `activations` sets static scales.
    public var dynamicInputs: [String] = []
    public init() {}
}

/// One quantised linear map, for the report.
public struct QuantizedLayerReport {
    public var name: String
    public var bits: Int
    public var format: String
    public var bytes: Int
    /// Relative output error on the calibration inputs, tr(ΔW H ΔWᵀ) / tr(W H Wᵀ).
    public var outputError: Double?
    public var actScale: Float?
}

/// Turns a float model's linear maps into packed artifact tensors: weights by
/// `WeightQuantizer` (GPTQ from the calibration Hessians, or nearest),
/// activation scales by `ActivationCalibrator`.
public enum ModelQuantizer {
    public struct QuantizationError: Error, CustomStringConvertible { public var description: String }

    public static func quantize(_ model: ViTModel, statistics: [String: InputStatistics],
                                options o: ModelQuantizationOptions) throws -> (tensors: [String: QuantizedTensor], report: [QuantizedLayerReport]) {
        let c = model.config
        try checkBitWidths(o, depth: c.depth)
        var out = [String: QuantizedTensor]()
        var report = [QuantizedLayerReport]()

        func stats(_ layer: String) throws -> InputStatistics? {
            if o.rounding == .nearest && o.activations == nil { return statistics[layer] }
            guard let s = statistics[layer] else {
                throw QuantizationError(description: "no calibration statistics for \(layer)")
            }
            return s
        }
        /// Quantises W [rows, cols] (already in [out, in] orientation), packs it.
        func add(floatName: String, storedName: String, w: [Float], rows: Int, cols: Int, bits: Int,
                 hessian: [Double]?, inputStats: InputStatistics?) {
            let (t, r) = quantizeLayer(floatName: floatName, storedName: storedName, w: w, rows: rows, cols: cols, bits: bits,
                                       hessian: hessian, inputStats: inputStats, options: o)
            out[floatName] = t
            report.append(r)
        }
        func transpose(_ t: HostTensor) -> [Float] {
            let r = t.shape[0], k = t.shape[1]
            var o = [Float](repeating: 0, count: r * k)
            for i in 0..<r { for j in 0..<k { o[j * r + i] = t.data[i * k + j] } }
            return o
        }
        func summedHessian(_ layers: [String]) throws -> [Double]? {
            guard o.rounding == .gptq else { return nil }
            var h: [Double]? = nil
            for l in layers {
                guard let s = try stats(l) else { return nil }
                let x = s.hessian
                if h == nil { h = x } else { for i in 0..<x.count { h![i] += x[i] } }
            }
            return h
        }

        // Blocks whose MLPs share a basis (a FiPS group) quantise the shared
        // factor once, from the group's pooled Hessian, so the writer can
        // still store it once.
        let sharedWith = sharedBasisGroups(model)

        for i in 0..<c.depth {
            let bits = o.blockBits?[i] ?? o.bits
            func n(_ leaf: String) -> String { TensorNames.block(i, leaf) }
            for layer in ["attn.qkv", "attn.proj"] + (model.isFactorised(block: i) ? [] : ["mlp.fc1", "mlp.fc2"]) {
                let t = model[n(layer + ".weight")]
                let s = try stats(n(layer))
                let layerBits = layer.hasPrefix("attn.") ? (o.blockAttentionBits?[i] ?? bits) : bits
                add(floatName: n(layer + ".weight"), storedName: n(layer + ".weight"), w: t.data, rows: t.shape[0],
                    cols: t.shape[1], bits: layerBits, hessian: o.rounding == .gptq ? s?.hessian : nil, inputStats: s)
            }
            guard model.isFactorised(block: i) else { continue }
            let group = sharedWith.first { $0.value.contains(i) }?.value ?? [i]
            // fc1: Ut [r, d] sees x; Vt [m, r] sees x·U.
            let u1 = model[n("mlp.fc1.U")], v1 = model[n("mlp.fc1.V")]
            add(floatName: n("mlp.fc1.U"), storedName: n("mlp.fc1.Ut"), w: transpose(u1), rows: u1.shape[1], cols: u1.shape[0],
                bits: bits, hessian: try summedHessian(group.map { TensorNames.block($0, "mlp.fc1.U") }),
                inputStats: try stats(n("mlp.fc1.U")))
            let sv1 = try stats(n("mlp.fc1.V"))
            add(floatName: n("mlp.fc1.V"), storedName: n("mlp.fc1.Vt"), w: transpose(v1), rows: v1.shape[1], cols: v1.shape[0],
                bits: bits, hessian: o.rounding == .gptq ? sv1?.hessian : nil, inputStats: sv1)
            // fc2: V [r, m] sees GELU(fc1); U [d, r] sees h·Vᵀ.
            let v2 = model[n("mlp.fc2.V")], u2 = model[n("mlp.fc2.U")]
            let sv2 = try stats(n("mlp.fc2.V"))
            add(floatName: n("mlp.fc2.V"), storedName: n("mlp.fc2.V"), w: v2.data, rows: v2.shape[0], cols: v2.shape[1],
                bits: bits, hessian: o.rounding == .gptq ? sv2?.hessian : nil, inputStats: sv2)
            add(floatName: n("mlp.fc2.U"), storedName: n("mlp.fc2.U"), w: u2.data, rows: u2.shape[0], cols: u2.shape[1],
                bits: bits, hessian: try summedHessian(group.map { TensorNames.block($0, "mlp.fc2.U") }),
                inputStats: try stats(n("mlp.fc2.U")))
        }
        if c.hasHead {
            let t = model[TensorNames.headWeight]
            let s = try stats("head")
            add(floatName: TensorNames.headWeight, storedName: TensorNames.headWeight, w: t.data, rows: t.shape[0],
                cols: t.shape[1], bits: o.headBits, hessian: o.rounding == .gptq ? s?.hessian : nil, inputStats: s)
        }
        return (out, report)
    }

    static func checkBitWidths(_ o: ModelQuantizationOptions, depth: Int) throws {
        if let bb = o.blockBits, bb.count != depth {
            throw QuantizationError(description: "\(bb.count) per-block bit widths for a model of depth \(depth)")
        }
        if let bb = o.blockAttentionBits, bb.count != depth {
            throw QuantizationError(description: "\(bb.count) per-block attention bit widths for a model of depth \(depth)")
        }
        for b in (o.blockBits ?? []) + (o.blockAttentionBits ?? []) + [o.bits, o.headBits] where !QuantFormat.denseBits.contains(b) {
            throw QuantizationError(description: "bit width \(b) is not one of \(QuantFormat.denseBitsText)")
        }
    }

    /// Quantises W [rows, cols] (already in [out, in] orientation) and packs it:
    /// the artifact tensor (with its activation scale) and its report line.
    static func quantizeLayer(floatName: String, storedName: String, w: [Float], rows: Int, cols: Int, bits: Int,
                              hessian: [Double]?, inputStats: InputStatistics?,
                              options o: ModelQuantizationOptions) -> (QuantizedTensor, QuantizedLayerReport) {
        let zeros = bits == 8 && w.contains(0) ? w.reduce(0) { $0 + ($1 == 0 ? 1 : 0) } : 0
        let sparse = zeros > (o.sparseWhenSmaller ? 0 : w.count / 4)
        // GPTQ would spread rounding error into pruned weights; pruned
        // projections keep their mask with round-to-nearest.
        let rounding: WeightRounding = (hessian == nil || sparse) ? .nearest : o.rounding
        let q = WeightQuantizer.quantize(w, rows: rows, cols: cols, bits: bits, rounding: rounding,
                                         hessian: rounding == .gptq ? hessian : nil)
        let logical = PackedWeights.Logical(bits: bits, rows: rows, cols: cols, values: q.values, scales: q.scales)
        var dtype = PackedWeights.denseType(bits: bits)
        var packed = PackedWeights.pack(logical, as: dtype)
        if sparse {
            let s = PackedWeights.pack(logical, as: .q8sparse)
            if s.data.count + s.aux.count < packed.data.count + packed.aux.count { packed = s; dtype = .q8sparse }
        }
        let layer = String(floatName.split(separator: ".").dropLast().joined(separator: "."))
        let dynamic = o.dynamicInputs.contains { layer.hasSuffix($0) || floatName.hasSuffix($0) }
        let act = dynamic ? nil : o.activations.flatMap { m in inputStats.map { ActivationCalibrator.range($0, method: m).scale } }
        let tensor = QuantizedTensor(storedName: storedName, shape: [rows, cols], packed: packed, actScale: act)
        let err = hessian.map { WeightQuantizer.outputError(original: w, quantized: q, hessian: $0) }
        return (tensor, QuantizedLayerReport(name: storedName, bits: bits, format: dtype.name,
                                             bytes: packed.data.count + packed.aux.count, outputError: err, actScale: act))
    }

    /// Per FiPS group, the blocks sharing a basis, keyed by the first of them
    /// (a block with its own basis is a group of one).
    static func sharedBasisGroups(_ model: ViTModel) -> [Int: [Int]] {
        var sharedWith = [Int: [Int]]()
        for i in 0..<model.config.depth where model.isFactorised(block: i) {
            let u = model[TensorNames.block(i, "mlp.fc1.U")]
            let owner = (0..<i).first { j in model.isFactorised(block: j) && model[TensorNames.block(j, "mlp.fc1.U")] == u } ?? i
            sharedWith[owner, default: []].append(i)
        }
        return sharedWith
    }
}
