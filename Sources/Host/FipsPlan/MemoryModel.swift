import FipsArtifact
import FipsArtifactWriter
import FipsCompress
import FipsDeviceSupport
import FipsHostModel
import FipsImage
import FipsKernels
import FipsViT

/// A block group's MLP: dense, or FiPS with a shared rank-r basis and V pruned to `sparsity`.
public enum MLPChoice: Hashable {
    case dense
    case fips(rank: Int, sparsity: Double)

    public var rank: Int { if case let .fips(r, _) = self { return r }; return 0 }
    public var sparsity: Double { if case let .fips(_, s) = self { return s }; return 0 }
}

/// What the planner picks for one block group.
public struct GroupChoice: Hashable {
    public var mlp: MLPChoice
    /// Weight bits of the MLP (dense weights or both FiPS factors): 8, 4, 3 or 2.
    public var mlpBits: Int
    /// Weight bits of qkv and proj: 8 or 4.
    public var attentionBits: Int
    public init(mlp: MLPChoice, mlpBits: Int, attentionBits: Int) {
        self.mlp = mlp; self.mlpBits = mlpBits; self.attentionBits = attentionBits
    }

    /// The stored format of the MLP's big weights, as the table prints it.
    public var mlpFormat: String {
        if mlp.sparsity > 0 { return "q8-sparse" }
        return PackedWeights.denseType(bits: mlpBits).name
    }
}

/// The exact memory of a planned model on the runtime: the artifact's bytes
/// (laid out by `ArtifactLayout`, the writer's own function), the executor's
/// activation arena (`ArenaLayout`, the executor's own function), the device
/// programs' per-image buffers (`ClassifierBuffers`), the worst case of the
/// inputs the plan accepts (`DecodeMemory`: one decode, fipsd's request bodies)
/// and fipsd's camera capture (`CameraMemory`: its mmap buffers and the frame
/// waiting to be classified; nothing for `--camera none`).
///
/// Exact except for one bound: a pruned projection (q8-sparse) stores its
/// nonzero bytes, which global pruning spreads over the group's V's unevenly
/// and quantisation can only lower, so each such tensor is counted as its
/// kept weights (the group's total, exact) plus 127 bytes of alignment slack.
public struct PlanMemory {
    public let config: ViTConfig
    public let labels: [String]
    public let groups: [[Int]]
    /// Tensors of the input model the writer keeps besides the known ones (stored f32).
    public let extraTensors: [(String, [Int])]
    public let headBits: Int
    /// fips-run's thread count on the board: the arena holds one kernel scratch per thread.
    public let threads: Int
    /// The largest input the plan accepts (its budget field is not used here).
    public let input: InputLimits

    public init(config: ViTConfig, labels: [String], groups: [[Int]], extraTensors: [(String, [Int])] = [], headBits: Int = 8,
                threads: Int, input: InputLimits) {
        self.config = config; self.labels = labels; self.groups = groups; self.extraTensors = extraTensors
        self.headBits = headBits; self.threads = max(1, threads); self.input = input
    }

    public struct Breakdown: Equatable {
        public var artifactBytes: Int
        public var arenaBytes: Int
        public var ioBytes: Int
        /// The inputs' worst case (`PlanMemory.inputBytes`).
        public var inputBytes: Int
        /// fipsd's camera capture (`PlanMemory.cameraBytes`); 0 for `--camera none`.
        public var cameraBytes: Int
        /// True when no q8-sparse tensor is involved: then `artifactBytes` is the file size to the byte.
        public var artifactExact: Bool
        /// Everything the process holds besides the artifact (`PlanMemory.runtimeBytes`).
        public var runtimeBytes: Int { arenaBytes + ioBytes + inputBytes + cameraBytes }
        public var totalBytes: Int { artifactBytes + runtimeBytes }
    }

    /// One table entry of the planned artifact: its stored bytes, or nil when
    /// it shares an earlier entry's bytes (a FiPS group's basis).
    struct Entry { var data: Int; var aux: Int; var shared: Bool; var group: Int? }

    func groupOf(block: Int) -> Int? { groups.firstIndex { $0.contains(block) } }

    /// Every table entry in the writer's order, and the q8-sparse slack.
    func entries(_ plan: [GroupChoice]) -> (entries: [Entry], slack: [Int]) {
        precondition(plan.count == groups.count)
        var slack = [Int](repeating: 0, count: groups.count)
        let shapes = ViTModel.requiredShapes(config) { i, _ in
            guard let g = groupOf(block: i), case let .fips(r, _) = plan[g].mlp else { return nil }
            return r
        } + extraTensors
        var out = [Entry]()
        var firstOfGroup = [String: Int]()   // "g.fc1" → stored once per group
        let d = config.dim, m = config.mlpDim
        func packed(_ rows: Int, _ cols: Int, _ t: TensorDType) -> (Int, Int) {
            let p = PackedShape(rows: rows, cols: cols)
            return (p.denseBytes(t), 4 * p.scaleCount(t))
        }
        for (name, shape) in shapes {
            let parts = name.split(separator: ".")
            let block = parts.count >= 2 && parts[0] == "blocks" ? Int(parts[1]) : nil
            let g = block.flatMap { groupOf(block: $0) }
            let choice = g.map { plan[$0] }
            let leaf = block == nil ? name : parts.dropFirst(2).joined(separator: ".")
            var e = Entry(data: 4 * shape.reduce(1, *), aux: 0, shared: false, group: g)
            if name == TensorNames.headWeight {
                (e.data, e.aux) = packed(shape[0], shape[1], PackedWeights.denseType(bits: headBits))
            } else if let c = choice, leaf == "attn.qkv.weight" || leaf == "attn.proj.weight" {
                (e.data, e.aux) = packed(shape[0], shape[1], PackedWeights.denseType(bits: c.attentionBits))
            } else if let c = choice, leaf == "mlp.fc1.weight" || leaf == "mlp.fc2.weight" {
                (e.data, e.aux) = packed(shape[0], shape[1], PackedWeights.denseType(bits: c.mlpBits))
            } else if let c = choice, let gi = g, case let .fips(r, s) = c.mlp {
                let t = PackedWeights.denseType(bits: c.mlpBits)
                switch leaf {
                case "mlp.fc1.U", "mlp.fc2.U":
                    // fc1.Ut [r, d], fc2.U [d, r]: one stored copy per group.
                    (e.data, e.aux) = leaf == "mlp.fc1.U" ? packed(r, d, t) : packed(d, r, t)
                    let key = "\(gi).\(leaf)"
                    if firstOfGroup[key] != nil { e.shared = true } else { firstOfGroup[key] = out.count }
                case "mlp.fc1.V", "mlp.fc2.V":
                    // fc1.Vt [m, r], fc2.V [r, m]
                    let (rows, cols) = leaf == "mlp.fc1.V" ? (m, r) : (r, m)
                    if s > 0 {
                        e.data = 0
                        e.aux = PackedShape(rows: rows, cols: cols).sparseAuxBytes
                        slack[gi] += 127
                    } else {
                        (e.data, e.aux) = packed(rows, cols, t)
                    }
                default: break
                }
            }
            out.append(e)
        }
        for (gi, c) in plan.enumerated() {
            if case let .fips(r, s) = c.mlp, s > 0 {
                let total = r * m * 2 * groups[gi].count
                slack[gi] += total - FipsBudget.prunedCount(total, sparsity: s)
            }
        }
        return (out, slack)
    }

    /// The artifact's bytes: exact layout, plus the q8-sparse bound.
    public func artifactBytes(_ plan: [GroupChoice]) -> Int {
        let (es, slack) = entries(plan)
        let layout = ArtifactLayout(metaBytes: ArtifactLayout.metaBytes(config: config, labels: labels), tensorCount: es.count,
                                    stored: es.filter { !$0.shared }.map { ($0.data, $0.aux) })
        return layout.fileBytes + slack.reduce(0, +)
    }

    /// Additive cost of one group's choice (its table entries and aligned
    /// stored pieces). The artifact is `fixedArtifactBytes + Σ groupBytes`
    /// exactly, because the last stored tensor is never a group's.
    public func groupBytes(_ group: Int, _ choice: GroupChoice, reference: [GroupChoice]) -> Int {
        var plan = reference
        plan[group] = choice
        let (es, slack) = entries(plan)
        func align(_ x: Int) -> Int { (x + 63) / 64 * 64 }
        var sum = 0
        for e in es where e.group == group {
            sum += ArtifactFormat.entryBytes
            if !e.shared { sum += align(e.data) + (e.aux > 0 ? align(e.aux) : 0) }
        }
        return sum + slack[group]
    }

    public func fixedArtifactBytes(reference: [GroupChoice]) -> Int {
        artifactBytes(reference) - groups.indices.reduce(0) { $0 + groupBytes($1, reference[$1], reference: reference) }
    }

    /// The executor's arena when the widest factorised rank is `maxRank`.
    public func arenaBytes(maxRank: Int) -> Int {
        var cols = max(config.dim, config.mlpDim, maxRank)
        if config.hasHead { cols = max(cols, config.headInputDim) }
        return ArenaLayout(config: config, maxBatch: 1, maxRank: maxRank,
                           kernelScratchBytes: ArenaLayout.kernelScratchBytes(cols: cols),
                           integerAttention: true, tasks: threads).totalBytes
    }

    /// The input, feature and logit buffers of fips-run's and fipsd's `Classifier`.
    public var ioBytes: Int { ClassifierBuffers(config: config).bytes }

    /// The worst case of the accepted inputs: one image's encoded bytes, its decode
    /// and resize, and fipsd's other request bodies (`DecodeMemory`, device code).
    public var inputBytes: Int {
        DecodeMemory.processWorstCaseBytes(maxPixels: input.maxPixels, maxInputBytes: input.maxInputBytes,
                                           maxConnections: input.maxConnections, cropSize: config.cropSize)
    }

    /// fipsd's camera capture at the planned size (`CameraMemory`); 0 for none.
    /// Not recorded counts as none: only fips-plan makes an `InputLimits`, and
    /// it always says.
    public var cameraBytes: Int {
        guard case let .size(w, h)? = input.camera else { return 0 }
        return CameraMemory.bytes(width: w, height: h)
    }

    /// Everything the process holds besides the artifact, for a plan whose
    /// largest FiPS rank is `maxRank`: arena, run buffers, inputs and camera.
    /// The planner prices each rank cap with it; `Breakdown.runtimeBytes` is the
    /// same sum over a chosen plan's stored parts.
    public func runtimeBytes(maxRank: Int) -> Int { arenaBytes(maxRank: maxRank) + ioBytes + inputBytes + cameraBytes }

    /// The limits to write into the artifact: the plan's, with the room the
    /// chosen plan leaves under the budget given to the encoded-input size (each
    /// of fipsd's connections may hold one), capped at 64 MiB.
    /// `usedBytes`: the plan's memory with the inputs at `input` (the written artifact's).
    public static func stampedLimits(_ input: InputLimits, usedBytes: Int, budgetBytes: Int) -> InputLimits {
        var l = input
        let room = max(0, budgetBytes - usedBytes)
        l.maxInputBytes = min(64 << 20, l.maxInputBytes + room / max(1, l.maxConnections))
        l.budgetBytes = budgetBytes
        return l
    }

    public func breakdown(_ plan: [GroupChoice]) -> Breakdown {
        let maxRank = plan.reduce(0) { max($0, $1.mlp.rank) }
        return Breakdown(artifactBytes: artifactBytes(plan), arenaBytes: arenaBytes(maxRank: maxRank), ioBytes: ioBytes,
                         inputBytes: inputBytes, cameraBytes: cameraBytes, artifactExact: !plan.contains { $0.mlp.sparsity > 0 })
    }
}

