import FipsArtifact
import FipsArtifactWriter
import FipsHostModel

/// A packed (integer) artifact as a quantisation-aware student: its float
/// model with every packed weight at its grid value s·q (the GPTQ result the
/// training starts from), one `WeightGrid` per packed tensor, and where the
/// runtime rounds activations. Each training step rounds the shadow weights
/// onto their grids (`fakeQuantise`), the forward rounds activations as the
/// runtime does, and `backward` turns the gradient of the rounded weights into
/// that of the shadow weights and the scale multipliers. At the end `packed`
/// writes the weights back in their own formats, with their calibrated input
/// scales, so the artifact is the training forward, run by the integer kernels.
public struct QuantisedStudent {
    public let model: ViTModel
    /// Every packed tensor; tensors stored once for several names (a FiPS
    /// group's shared basis) appear once per name and share their slots.
    public private(set) var grids: [WeightGrid]
    let activations: ActivationGrids
    /// Indices into `grids` of the first grid of each weight slot: the ones trained.
    private var owners: [Int] = []

    /// Reads the packed student; refuses an artifact without packed weights
    /// and one in the version-1 int8 format, which no kernel trains through.
    public static func load(_ a: Artifact, path: String) throws -> QuantisedStudent {
        if let t = a.tensors.first(where: { $0.dtype == .i8RowScaled }) {
            throw TrainingError("\(path): tensor \(t.name) is in the version-1 int8 format; quantise the fp32 model with "
                                + "fips quantize (q8, q4g32, q3g32, q2g32) to train it quantisation-aware")
        }
        var grids = [WeightGrid]()
        for t in a.tensors where t.dtype.packedFormat != nil {
            guard let logical = PackedWeights.unpack(t) else { throw TrainingError("\(path): cannot unpack tensor \(t.name)") }
            let transposed = t.name.hasSuffix(".Ut") || t.name.hasSuffix(".Vt")
            let act = a.tensor(QuantizedTensor.actScaleName(for: t.name)).map { $0.floats[0] }
            grids.append(WeightGrid(storedName: t.name, floatName: transposed ? String(t.name.dropLast()) : t.name,
                                    dtype: t.dtype, rows: t.shape[0], cols: t.shape[1], transposed: transposed,
                                    initialScales: logical.scales, actScale: act))
        }
        if grids.isEmpty {
            throw TrainingError("\(path): no packed integer weights: --qat trains a quantised model (fips quantize --bits N); "
                                + "fine-tune a float model without --qat")
        }
        let c = a.config
        func input(_ stored: String) -> InputGrid? {
            guard let g = grids.first(where: { $0.storedName == stored }) else { return nil }
            return g.actScale.map { .fixed($0) } ?? .perToken
        }
        var blocks = [BlockInputGrids]()
        for i in 0..<c.depth {
            func n(_ leaf: String) -> String { TensorNames.block(i, leaf) }
            blocks.append(BlockInputGrids(h1: input(n("attn.qkv.weight")), attn: input(n("attn.proj.weight")),
                                          h2: input(n("mlp.fc1.weight")) ?? input(n("mlp.fc1.Ut")), z: input(n("mlp.fc1.Vt")),
                                          g: input(n("mlp.fc2.weight")) ?? input(n("mlp.fc2.V")), q: input(n("mlp.fc2.U"))))
        }
        let acts = ActivationGrids(blocks: blocks, pooled: input(TensorNames.headWeight), integerAttention: true)
        return QuantisedStudent(model: ArtifactReaderHost.load(a), grids: grids, activations: acts)
    }

    /// Places the grids in `layout`: each weight's slot, and a slot of scale
    /// multipliers (all 1) per distinct weight, appended to `values`.
    mutating func attach(to layout: inout ParameterLayout, values: inout [Float]) throws {
        var ownerOfOffset = [Int: Int]()
        for i in grids.indices {
            guard let slot = layout.slotOfName[grids[i].floatName] else {
                throw TrainingError("packed tensor \(grids[i].storedName) is no parameter of the model")
            }
            let s = layout.slots[slot]
            grids[i].weightOffset = s.offset
            grids[i].trainsScales = s.trains
            if let o = ownerOfOffset[s.offset] {
                let first = grids[o]
                guard first.dtype == grids[i].dtype, first.initialScales == grids[i].initialScales,
                      first.transposed == grids[i].transposed else {
                    throw TrainingError("\(grids[i].storedName) shares its values with \(first.storedName) but not its grid")
                }
                grids[i].scaleOffset = first.scaleOffset
                continue
            }
            ownerOfOffset[s.offset] = i
            owners.append(i)
            grids[i].scaleOffset = layout.appendExtra(name: grids[i].storedName + "#scale", count: grids[i].scaleCount,
                                                      trains: s.trains)
            values += [Float](repeating: 1, count: grids[i].scaleCount)
        }
    }

    /// Offsets of the weight slots stored in a dense packed format: their zeros
    /// are grid values, free to move (only q8-sparse and float CSR zeros are a pruning mask).
    var densePackedOffsets: Set<Int> { Set(grids.filter { !$0.format.isSparse }.map { $0.weightOffset }) }

    /// eff = p with every packed weight replaced by its rounded value.
    func fakeQuantise(_ p: UnsafePointer<Float>, into eff: UnsafeMutablePointer<Float>, count: Int) {
        eff.update(from: p, count: count)
        for i in owners { grids[i].fakeQuantise(p, into: eff) }
    }

    /// grad (of the rounded weights on entry) becomes that of the shadow weights and the multipliers.
    func backward(_ p: UnsafePointer<Float>, grad: UnsafeMutablePointer<Float>) {
        for i in owners { grids[i].backward(p, grad: grad) }
    }

    /// Keeps every scale positive (a multiplier may not fall below 1/100 of where it started).
    func clampScales(_ p: UnsafeMutablePointer<Float>) {
        for i in owners { for k in 0..<grids[i].scaleCount { p[grids[i].scaleOffset + k] = max(0.01, p[grids[i].scaleOffset + k]) } }
    }

    /// The scale-multiplier ranges of the parameter vector.
    var scaleRanges: [(Range<Int>, trains: Bool)] {
        owners.map { (grids[$0].scaleOffset..<(grids[$0].scaleOffset + grids[$0].scaleCount), grids[$0].trainsScales) }
    }

    /// The packed tensors by model name, for `ArtifactWriter.write(_:precision:quantized:)`.
    func packed(_ p: UnsafePointer<Float>) -> [String: QuantizedTensor] {
        var out = [String: QuantizedTensor]()
        for g in grids { out[g.floatName] = g.packed(p) }
        return out
    }
}
