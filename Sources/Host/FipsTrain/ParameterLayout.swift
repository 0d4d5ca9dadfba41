import FipsArtifact
import FipsHostModel

/// One stored tensor in the flat parameter vector.
public struct ParameterSlot {
    public var name: String
    public var offset: Int
    public var shape: [Int]
    /// AdamW's weight decay applies (matrices); off for norms, biases, LayerScale, tokens.
    public var decays: Bool
    /// Updated by training (the patch embedding and the head stay as they are).
    public var trains: Bool
    public var count: Int { shape.reduce(1, *) }
}

/// A block's MLP in the parameter vector: offsets of its tensors.
enum MLPSlots {
    /// a = h·W1ᵀ + b1 (W1 [m, d]); y = GELU(a)·W2ᵀ + b2 (W2 [d, m]).
    case dense(w1: Int, b1: Int, w2: Int, b2: Int)
    /// z = h·U1 (U1 [d, r1]); a = z·V1 + b1 (V1 [r1, m]); q = g·V2ᵀ (V2 [r2, m]); y = q·U2ᵀ + b2 (U2 [d, r2]).
    /// A FiPS group's blocks share one U: their u1/u2 are the same offset, so
    /// the basis's gradient is summed over the group and it is stored once.
    case factorised(u1: Int, r1: Int, v1: Int, b1: Int, u2: Int, r2: Int, v2: Int, b2: Int)

    var rank: Int {
        if case .factorised(_, let r1, _, _, _, let r2, _, _) = self { return max(r1, r2) }
        return 0
    }
}

/// Offsets of one transformer block's parameters.
struct BlockSlots {
    var norm1W = 0, norm1B = 0, qkvW = 0, qkvB = 0, projW = 0, projB = 0
    var ls1: Int? = nil
    var norm2W = 0, norm2B = 0
    var mlp = MLPSlots.dense(w1: 0, b1: 0, w2: 0, b2: 0)
    var ls2: Int? = nil
}

/// The named layout of a ViT's parameters in one flat Float vector (llm.c's
/// arena of named fields): AdamW, the sparsity masks, checkpoints and the
/// per-thread gradient reduction are then single loops over one array.
/// Tensors that are identical in the model (a FiPS group's shared basis U,
/// stored once in the artifact too) get one slot.
public struct ParameterLayout {
    public let config: ViTConfig
    public private(set) var slots: [ParameterSlot] = []
    /// Tensor name → slot index (shared tensors map several names to one slot).
    public private(set) var slotOfName: [String: Int] = [:]
    public private(set) var count = 0
    var patchW = 0, patchB = 0, cls = 0, pos = 0, normW = 0, normB = 0
    /// Distilled DeiT's distillation token, trained like the class token.
    var dist: Int? = nil
    var head: (w: Int, b: Int)? = nil
    var blocks: [BlockSlots] = []

    /// The layout of `model` and its values. Fails on a model the executor could not run.
    public static func of(_ model: ViTModel) throws -> (ParameterLayout, [Float]) {
        if let problem = model.validate() { throw TrainingError("the model is incomplete: \(problem)") }
        var l = ParameterLayout(config: model.config)
        var values = [Float]()
        // Identical factor tensors share a slot: a FiPS group's bases.
        var sharedByValue: [[Float]: Int] = [:]
        func add(_ name: String, decays: Bool, trains: Bool = true, shareIdentical: Bool = false) -> Int {
            let t = model[name]
            if shareIdentical, let s = sharedByValue[t.data], l.slots[s].shape == t.shape {
                l.slotOfName[name] = s
                return l.slots[s].offset
            }
            let slot = ParameterSlot(name: name, offset: l.count, shape: t.shape, decays: decays, trains: trains)
            l.slotOfName[name] = l.slots.count
            if shareIdentical { sharedByValue[t.data] = l.slots.count }
            l.slots.append(slot)
            l.count += t.count
            values += t.data
            return slot.offset
        }
        let c = model.config
        l.patchW = add(TensorNames.patchWeight, decays: true, trains: false)
        l.patchB = add(TensorNames.patchBias, decays: false, trains: false)
        l.cls = add(TensorNames.clsToken, decays: false)
        l.pos = add(TensorNames.posEmbed, decays: false)
        if c.hasDistillationToken { l.dist = add(TensorNames.distToken, decays: false) }
        for i in 0..<c.depth {
            func b(_ leaf: String, decays: Bool, shared: Bool = false) -> Int {
                add(TensorNames.block(i, leaf), decays: decays, shareIdentical: shared)
            }
            var s = BlockSlots()
            s.norm1W = b("norm1.weight", decays: false); s.norm1B = b("norm1.bias", decays: false)
            s.qkvW = b("attn.qkv.weight", decays: true); s.qkvB = b("attn.qkv.bias", decays: false)
            s.projW = b("attn.proj.weight", decays: true); s.projB = b("attn.proj.bias", decays: false)
            if c.hasLayerScale { s.ls1 = b("ls1", decays: false) }
            s.norm2W = b("norm2.weight", decays: false); s.norm2B = b("norm2.bias", decays: false)
            if model.isFactorised(block: i) {
                let u1 = b("mlp.fc1.U", decays: true, shared: true), v1 = b("mlp.fc1.V", decays: true)
                let b1 = b("mlp.fc1.bias", decays: false)
                let u2 = b("mlp.fc2.U", decays: true, shared: true), v2 = b("mlp.fc2.V", decays: true)
                let b2 = b("mlp.fc2.bias", decays: false)
                s.mlp = .factorised(u1: u1, r1: model[TensorNames.block(i, "mlp.fc1.U")].shape[1], v1: v1, b1: b1,
                                    u2: u2, r2: model[TensorNames.block(i, "mlp.fc2.U")].shape[1], v2: v2, b2: b2)
            } else {
                let w1 = b("mlp.fc1.weight", decays: true), b1 = b("mlp.fc1.bias", decays: false)
                let w2 = b("mlp.fc2.weight", decays: true), b2 = b("mlp.fc2.bias", decays: false)
                s.mlp = .dense(w1: w1, b1: b1, w2: w2, b2: b2)
            }
            if c.hasLayerScale { s.ls2 = b("ls2", decays: false) }
            l.blocks.append(s)
        }
        l.normW = add(TensorNames.normWeight, decays: false)
        l.normB = add(TensorNames.normBias, decays: false)
        if c.hasHead {
            l.head = (add(TensorNames.headWeight, decays: true, trains: false),
                      add(TensorNames.headBias, decays: false, trains: false))
        }
        return (l, values)
    }

    /// Appends a slot that is no tensor of the model (a weight grid's scale
    /// multipliers): it trains and is checkpointed, but `model(_:base:)` skips it.
    mutating func appendExtra(name: String, count n: Int, trains: Bool) -> Int {
        let slot = ParameterSlot(name: name, offset: count, shape: [n], decays: false, trains: trains)
        slots.append(slot)
        count += n
        return slot.offset
    }

    /// The largest factor rank of any block (0 for a dense model): sizes the activations.
    var maxRank: Int { blocks.map { $0.mlp.rank }.max() ?? 0 }

    /// Number of parameters training updates (shared tensors once).
    public var trainableCount: Int { slots.filter { $0.trains }.reduce(0) { $0 + $1.count } }

    /// A description of names and shapes, equal for two models exactly when
    /// one's parameters can be loaded into the other's layout.
    public var signature: String {
        var s = "\(config.encode())"
        for slot in slots { s += ";\(slot.name)\(slot.shape)\(slot.trains ? "" : "*")" }
        for (name, i) in slotOfName.sorted(by: { $0.key < $1.key }) where slots[i].name != name { s += ";\(name)=\(slots[i].name)" }
        return s
    }

    /// `base` with every tensor of the layout replaced by its value in `values`.
    public func model(_ values: [Float], base: ViTModel) -> ViTModel {
        var m = base
        for (name, i) in slotOfName {
            let s = slots[i]
            m.tensors[name] = HostTensor(shape: s.shape, data: Array(values[s.offset..<(s.offset + s.count)]))
        }
        return m
    }

    /// 1 where a parameter may be non-zero, 0 where a sparse projection V was
    /// pruned: a V tensor with zeros keeps exactly its zeros through training.
    /// nil when no V has zeros.
    /// Slots at `except` (offsets) are left free: a V rounded onto a dense integer
    /// grid, whose zeros are grid values, not pruned weights.
    public func sparsityMask(_ values: [Float], except: Set<Int> = []) -> [Float]? {
        var mask: [Float]? = nil
        for s in slots where s.name.hasSuffix(".V") && !except.contains(s.offset) {
            let zeros = values[s.offset..<(s.offset + s.count)].contains(0)
            guard zeros else { continue }
            if mask == nil { mask = [Float](repeating: 1, count: count) }
            for k in s.offset..<(s.offset + s.count) where values[k] == 0 { mask![k] = 0 }
        }
        return mask
    }
}

/// A training problem in one line: a bad model pair, data, checkpoint or option.
public struct TrainingError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
