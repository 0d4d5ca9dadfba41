import COpenBLAS
import Foundation
import FipsArtifact
import FipsHostModel

public enum CompressionMethod: String, CaseIterable {
    /// Shared basis per group of blocks, sparse per-layer projections.
    case fips
    /// Per-layer truncated SVD at the same parameter count (the baseline).
    case svd
}

/// Which entries of V may be pruned together.
public enum SparsityPattern: Equatable {
    case unstructured
    /// N of every M consecutive entries along the product's reduction axis are kept
    /// (fc1: along r in a column of V1; fc2: along m in a row of V2). Sparsity is 1 − N/M.
    case nm(n: Int, m: Int)
    /// rows×cols tiles of V [r, m], ranked by their L2 norm.
    case block(rows: Int, cols: Int)

    var isStructured: Bool { if case .unstructured = self { return false }; return true }
}

public enum CompressionError: Error, CustomStringConvertible, Equatable {
    case widthMismatch(group: [Int], detail: String)
    case budgetTooSmall(budget: Double, minimum: Double, detail: String)
    case invalidGroups(String)
    case invalidOption(String)
    case calibration(String)
    case numerical(String)

    public var description: String {
        switch self {
        case let .widthMismatch(g, detail):
            return "blocks \(g) cannot share a basis: \(detail)"
        case let .budgetTooSmall(p, minP, detail):
            return String(format: "MLP budget %.4g is below the minimum %.4g for this model (%@)", p, minP, detail)
        case let .invalidGroups(s): return "invalid block groups: \(s)"
        case let .invalidOption(s): return "invalid compression option: \(s)"
        case let .calibration(s): return "calibration data: \(s)"
        case let .numerical(s): return s
        }
    }
}

public struct CompressionOptions {
    public var method: CompressionMethod = .fips
    /// Fraction of the MLP weight parameters kept, in (0, 1].
    public var mlpBudget: Double = 0.5
    /// Explicit partition (each group: block indices sharing one basis); nil = consecutive
    /// groups of `groupSize` (the last one shorter when the depth does not divide).
    /// Blocks in no group stay dense.
    public var groups: [[Int]]? = nil
    public var groupSize: Int = 4
    /// Per-group rank, overriding the budget (for `.svd`: the per-layer rank).
    public var ranks: [Int]? = nil
    /// Final sparsity of the V's. With `.nm(n, m)` it must be 0 (dense) or 1 − n/m.
    public var sparsity: Double = 0
    /// Per-group final sparsity of the V's (a plan's choice), overriding
    /// `sparsity`; unstructured pattern only. Pruning stays global within a
    /// group (across its V's), as FiPS does.
    public var groupSparsity: [Double]? = nil
    public var pattern: SparsityPattern = .unstructured
    /// Whiten by calibration covariances before the SVD (Basis Sharing / SVD-LLM).
    public var activationAware: Bool = false
    /// With `activationAware` and FiPS: refine the shared basis by alternating least squares
    /// on the activation-weighted errors of all its layers (see `FipsFactorization`).
    public var alternatingRefinement: Bool = true
    /// Unit-norm basis columns (V rows rescaled to match) before pruning and training; see
    /// `normaliseBases`. Measured on DINOv2-S it helps activation-aware FiPS and costs the
    /// activation-aware SVD baseline a little, so it is an option.
    public var normaliseBases: Bool = true
    public var steps: Int = 600
    public var learningRate: Float = 1e-3
    public var minLearningRate: Float = 0
    public var weightDecay: Float = 0.05
    public var batchRows: Int = 1024
    public var seed: UInt64 = 0
    /// Ranks are rounded down to a multiple of this; 0 = automatic (1 for dense or
    /// unstructured, 64 for N:M and block patterns).
    public var rankMultiple: Int = 0
    public var pruneEndFraction: Double = 0.5
    public var pruneUpdates: Int = 10
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    public init() {}

    var effectiveRankMultiple: Int {
        if rankMultiple > 0 { return rankMultiple }
        return sparsity > 0 && pattern.isStructured ? 64 : 1
    }
}

public struct CompressionReport: CustomStringConvertible {
    public struct Group {
        public var blocks: [Int]
        public var rank: Int
        public var sparsity: Double
        /// MLP weights of the group before (dense) and after (bases once, V nonzeros).
        public var weightsBefore: Int
        public var weightsAfter: Int
        public var svdSeconds: Double
        public var reconstructionSeconds: Double
    }
    public struct Block {
        public var index: Int
        /// MSE right after the SVD initialisation (dense V), over all calibration rows.
        public var mseBefore: Double
        /// MSE after reconstruction (pruned V).
        public var mseAfter: Double
        /// Mean square of the original MLP output, to read the MSEs relative to.
        public var outputPower: Double
    }
    public var method: CompressionMethod
    public var activationAware: Bool
    public var groups: [Group] = []
    public var blocks: [Block] = []
    /// MLP weights (without biases) of the compressed blocks, before and after.
    public var mlpWeightsBefore: Int = 0
    public var mlpWeightsAfter: Int = 0
    /// MLP biases of the compressed blocks (kept as they are by every method).
    public var mlpBiases: Int = 0
    /// Covariances and Cholesky factors (activation-aware only).
    public var statisticsSeconds: Double = 0
    public var svdSeconds: Double = 0
    public var reconstructionSeconds: Double = 0

    public var description: String {
        var s = "\(method.rawValue)\(activationAware ? " (activation-aware)" : "") — MLP weights \(mlpWeightsBefore) → \(mlpWeightsAfter)"
        s += String(format: " (%.1f%%)\n", 100 * Double(mlpWeightsAfter) / Double(max(1, mlpWeightsBefore)))
        for g in groups {
            s += String(format: "  group %@: rank %d, sparsity %.3f, weights %d → %d, svd %.1fs, reconstruction %.1fs\n",
                        g.blocks.map(String.init).joined(separator: ","), g.rank, g.sparsity, g.weightsBefore, g.weightsAfter,
                        g.svdSeconds, g.reconstructionSeconds)
        }
        for b in blocks {
            s += String(format: "  block %2d: MSE %.4g → %.4g  (relative %.4f → %.4f)\n", b.index, b.mseBefore, b.mseAfter,
                        b.mseBefore / max(b.outputPower, 1e-30), b.mseAfter / max(b.outputPower, 1e-30))
        }
        s += String(format: "  time: statistics %.1fs, svd %.1fs, reconstruction %.1fs", statisticsSeconds, svdSeconds,
                    reconstructionSeconds)
        return s
    }
}

public enum FipsCompressor {
    /// Compresses the MLPs of `model`. Each compressed block i gets `blocks.i.mlp.fc1.U` [d, r],
    /// `…fc1.V` [r, m], `…fc2.U` [d, r], `…fc2.V` [r, m] (zeros where pruned) and keeps its
    /// biases; its dense `fc1.weight`/`fc2.weight` are removed. In a FiPS group every block's
    /// fc1.U and fc2.U hold the same values. fc1: y = (x·U)·V + b; fc2: y = (h·Vᵀ)·Uᵀ + b.
    public static func compress(_ model: ViTModel, calibration: MLPCalibration, options o: CompressionOptions,
                                progress: (String) -> Void = { _ in }) throws -> (ViTModel, CompressionReport) {
        openblas_set_num_threads(1)
        let depth = model.config.depth
        let groups = try resolveGroups(o, depth: depth)
        let (sparsity, multiple) = try resolveSparsity(o)
        if let r = o.ranks, r.count != groups.count {
            throw CompressionError.invalidOption("\(r.count) ranks given for \(groups.count) groups")
        }
        if let gs = o.groupSparsity {
            guard gs.count == groups.count else {
                throw CompressionError.invalidOption("\(gs.count) sparsities given for \(groups.count) groups")
            }
            guard o.pattern == .unstructured else {
                throw CompressionError.invalidOption("per-group sparsity needs the unstructured pattern")
            }
            for x in gs where !(x >= 0 && x < 1) { throw CompressionError.invalidOption("sparsity \(x) is not in [0, 1)") }
        }
        // shapes and ranks for every group, all checked before any work
        var plan = [(blocks: [Int], d: Int, m: Int, rank: Int)]()
        for (gi, g) in groups.enumerated() {
            let (d, m) = try groupWidths(model, g)
            let rank: Int
            let sparsity = o.groupSparsity?[gi] ?? sparsity
            if let r = o.ranks?[gi] {
                guard r > 0 else { throw CompressionError.invalidOption("rank \(r) for group \(g)") }
                rank = r
            } else if o.method == .fips {
                rank = try FipsBudget.fipsRank(budget: o.mlpBudget, sparsity: sparsity, d: d, m: m, blocks: g.count, multiple: multiple)
            } else {
                rank = try FipsBudget.svdRank(budget: o.mlpBudget, sparsity: sparsity, d: d, m: m, multiple: multiple)
            }
            if sparsity > 0, case let .nm(_, mm) = o.pattern, rank % mm != 0 || m % mm != 0 {
                throw CompressionError.invalidOption("rank \(rank) and MLP width \(m) must be multiples of \(mm) for the N:M pattern")
            }
            plan.append((g, d, m, rank))
        }
        try checkCalibration(calibration, plan.map { ($0.blocks, $0.d) })

        var out = model
        var report = CompressionReport(method: o.method, activationAware: o.activationAware)
        var ropt = ReconstructionOptions()
        ropt.steps = o.steps; ropt.learningRate = o.learningRate; ropt.minLearningRate = o.minLearningRate
        ropt.weightDecay = o.weightDecay; ropt.batchRows = o.batchRows; ropt.seed = o.seed; ropt.threads = max(1, o.threads)
        ropt.sparsity = sparsity; ropt.pattern = o.pattern
        ropt.pruneEndFraction = o.pruneEndFraction; ropt.pruneUpdates = o.pruneUpdates

        for (gi, p) in plan.enumerated() {
            let (blocks, d, m, r) = p
            ropt.sparsity = o.groupSparsity?[gi] ?? sparsity
            progress("group \(gi + 1)/\(plan.count): blocks \(blocks.map(String.init).joined(separator: ",")), \(o.method.rawValue) rank \(r)")
            let fc1 = blocks.map { model[TensorNames.block($0, "mlp.fc1.weight")] }
            let fc2 = blocks.map { model[TensorNames.block($0, "mlp.fc2.weight")] }
            let xs = blocks.map { calibration.inputs[$0] }, ys = blocks.map { calibration.outputs[$0] }

            // activation statistics
            var t0 = Date()
            var inputChol = [[Double]](), hiddenChol = [[Double]](), hiddenMoments = [[Double]](), inputMoments = [[Double]]()
            if o.activationAware {
                let n = xs[0].shape[0]
                var covs = [[Double]]()
                for (k, b) in blocks.enumerated() {
                    covs.append(FipsFactorization.secondMoment(rows: n, cols: d, threads: ropt.threads) { lo, hi, buf in
                        xs[k].data.withUnsafeBufferPointer { buf.update(from: $0.baseAddress! + lo * d, count: (hi - lo) * d) }
                    })
                    let b1 = model[TensorNames.block(b, "mlp.fc1.bias")].data
                    let hc = fc1[k].data.withUnsafeBufferPointer { w in
                        FipsFactorization.secondMoment(rows: n, cols: m, threads: ropt.threads) { lo, hi, buf in
                            // H = GELU(X·fc1ᵀ + b1) for these rows
                            for i in 0..<(hi - lo) { (buf + i * m).update(from: b1, count: m) }
                            xs[k].data.withUnsafeBufferPointer { x in
                                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(hi - lo), Int32(m), Int32(d), 1,
                                            x.baseAddress! + lo * d, Int32(d), w.baseAddress, Int32(d), 1, buf, Int32(m))
                            }
                            GELU.forward(buf, buf, (hi - lo) * m)
                        }
                    }
                    hiddenChol.append(try FipsFactorization.cholesky(hc, size: m))
                    hiddenMoments.append(hc)
                }
                inputMoments = covs
                if o.method == .fips {
                    // pooled over the group's blocks: U is shared, so one left transform for all
                    var pooled = [Double](repeating: 0, count: d * d)
                    for c in covs { for i in 0..<(d * d) { pooled[i] += c[i] / Double(covs.count) } }
                    inputChol = [try FipsFactorization.cholesky(pooled, size: d)]
                } else {
                    inputChol = try covs.map { try FipsFactorization.cholesky($0, size: d) }
                }
            }
            report.statisticsSeconds += Date().timeIntervalSince(t0)

            // factorisation
            t0 = Date()
            var group: MLPGroup
            let b1s = blocks.map { model[TensorNames.block($0, "mlp.fc1.bias")] }
            let b2s = blocks.map { model[TensorNames.block($0, "mlp.fc2.bias")] }
            switch o.method {
            case .fips:
                var w = o.activationAware ? Whitening(input: inputChol[0], hidden: hiddenChol) : nil
                if o.alternatingRefinement { w?.inputMoments = inputMoments; w?.hiddenMoments = hiddenMoments }
                let f = try FipsFactorization.fipsGroup(fc1: fc1, fc2: fc2, rank: r, whitening: w)
                group = MLPGroup(d: d, m: m, bases: [HostTensor(shape: [d, r], data: f.u)], blocks: blocks.indices.map { k in
                    MLPGroup.Block(v1: HostTensor(shape: [r, m], data: f.v1[k]), v2: HostTensor(shape: [r, m], data: f.v2[k]),
                                   b1: b1s[k], b2: b2s[k], inputBasis: 0, outputBasis: 0)
                })
            case .svd:
                var bases = [HostTensor](), gb = [MLPGroup.Block]()
                for k in blocks.indices {
                    // fc1: W1ᵀ [d, m] ≈ U·V ; fc2: W2 [d, m] ≈ U·V
                    let w1t = FipsFactorization.concatenate(fc1: [fc1[k]], fc2: [fc2[k]]).data
                    var w1 = [Float](repeating: 0, count: d * m)
                    for i in 0..<d { for j in 0..<m { w1[i * m + j] = w1t[i * 2 * m + j] } }
                    let l1 = try FipsFactorization.layer(w1, rows: d, cols: m, rank: r,
                                                         left: o.activationAware ? inputChol[k] : nil, right: nil)
                    let l2 = try FipsFactorization.layer(fc2[k].data, rows: d, cols: m, rank: r,
                                                         left: nil, right: o.activationAware ? hiddenChol[k] : nil)
                    bases.append(HostTensor(shape: [d, r], data: l1.u)); bases.append(HostTensor(shape: [d, r], data: l2.u))
                    gb.append(MLPGroup.Block(v1: HostTensor(shape: [r, m], data: l1.v), v2: HostTensor(shape: [r, m], data: l2.v),
                                             b1: b1s[k], b2: b2s[k], inputBasis: 2 * k, outputBasis: 2 * k + 1))
                }
                group = MLPGroup(d: d, m: m, bases: bases, blocks: gb)
            }
            if o.normaliseBases { normaliseBases(&group) }
            let svdTime = Date().timeIntervalSince(t0)
            report.svdSeconds += svdTime

            // reconstruction
            t0 = Date()
            let before = MLPReconstruction.meanSquaredErrors(group, inputs: xs, outputs: ys, threads: ropt.threads)
            let result = try MLPReconstruction.train(&group, inputs: xs, outputs: ys, options: ropt, progress: progress)
            let reconTime = Date().timeIntervalSince(t0)
            report.reconstructionSeconds += reconTime

            for (k, b) in blocks.enumerated() {
                var power = 0.0
                for v in ys[k].data { power += Double(v) * Double(v) }
                report.blocks.append(.init(index: b, mseBefore: before[k], mseAfter: result.mseAfter[k],
                                           outputPower: power / Double(max(1, ys[k].count))))
                progress(String(format: "  block %d: MSE %.4g → %.4g", b, before[k], result.mseAfter[k]))
            }
            let wBefore = FipsBudget.denseParameters(d: d, m: m, blocks: blocks.count)
            let wAfter = group.storedWeights
            report.groups.append(.init(blocks: blocks, rank: r, sparsity: result.achievedSparsity, weightsBefore: wBefore,
                                       weightsAfter: wAfter, svdSeconds: svdTime, reconstructionSeconds: reconTime))
            report.mlpWeightsBefore += wBefore
            report.mlpWeightsAfter += wAfter
            report.mlpBiases += blocks.count * (d + m)

            for (k, b) in blocks.enumerated() {
                let blk = group.blocks[k]
                out.tensors[TensorNames.block(b, "mlp.fc1.weight")] = nil
                out.tensors[TensorNames.block(b, "mlp.fc2.weight")] = nil
                out.tensors[TensorNames.block(b, "mlp.fc1.U")] = group.bases[blk.inputBasis]
                out.tensors[TensorNames.block(b, "mlp.fc2.U")] = group.bases[blk.outputBasis]
                out.tensors[TensorNames.block(b, "mlp.fc1.V")] = blk.v1
                out.tensors[TensorNames.block(b, "mlp.fc2.V")] = blk.v2
                out.tensors[TensorNames.block(b, "mlp.fc1.bias")] = blk.b1
                out.tensors[TensorNames.block(b, "mlp.fc2.bias")] = blk.b2
            }
        }
        return (out, report)
    }

    /// Rescales every basis column to unit L2 norm and the matching V rows inversely: the
    /// products are unchanged, but V's magnitudes become comparable across rows and layers,
    /// which global magnitude pruning relies on. A no-op for plain SVD (U orthonormal); after
    /// activation-aware initialisation (U = L⁻ᵀŨ) the columns' norms differ widely.
    static func normaliseBases(_ g: inout MLPGroup) {
        let d = g.d, m = g.m
        for bi in g.bases.indices {
            let r = g.bases[bi].shape[1]
            for k in 0..<r {
                var ss: Float = 0
                for i in 0..<d { let x = g.bases[bi].data[i * r + k]; ss += x * x }
                let nrm = ss.squareRoot()
                guard nrm > 0, nrm.isFinite else { continue }
                for i in 0..<d { g.bases[bi].data[i * r + k] /= nrm }
                for b in g.blocks.indices {
                    if g.blocks[b].inputBasis == bi { for j in 0..<m { g.blocks[b].v1.data[k * m + j] *= nrm } }
                    if g.blocks[b].outputBasis == bi { for j in 0..<m { g.blocks[b].v2.data[k * m + j] *= nrm } }
                }
            }
        }
    }

    // MARK: checks

    static func resolveGroups(_ o: CompressionOptions, depth: Int) throws -> [[Int]] {
        let groups: [[Int]]
        if let g = o.groups {
            groups = g
        } else {
            guard o.groupSize > 0 else { throw CompressionError.invalidGroups("group size \(o.groupSize)") }
            groups = stride(from: 0, to: depth, by: o.groupSize).map { Array($0..<min(depth, $0 + o.groupSize)) }
        }
        guard !groups.isEmpty else { throw CompressionError.invalidGroups("no groups") }
        var seen = Set<Int>()
        for g in groups {
            guard !g.isEmpty else { throw CompressionError.invalidGroups("an empty group in \(groups)") }
            for b in g {
                guard b >= 0, b < depth else {
                    throw CompressionError.invalidGroups("block \(b) does not exist (the model has blocks 0…\(depth - 1))")
                }
                guard seen.insert(b).inserted else { throw CompressionError.invalidGroups("block \(b) is in more than one group") }
            }
        }
        return groups
    }

    static func resolveSparsity(_ o: CompressionOptions) throws -> (Double, Int) {
        let s = o.sparsity
        guard s >= 0, s < 1 else { throw CompressionError.invalidOption("sparsity \(s) is not in [0, 1)") }
        switch o.pattern {
        case let .nm(n, m):
            guard n > 0, m > n else { throw CompressionError.invalidOption("N:M pattern \(n):\(m) needs 0 < N < M") }
            let fixed = 1 - Double(n) / Double(m)
            if s > 0 && abs(s - fixed) > 1e-9 {
                throw CompressionError.invalidOption("the \(n):\(m) pattern fixes the sparsity at \(fixed), not \(s)")
            }
        case let .block(r, c):
            guard r > 0, c > 0 else { throw CompressionError.invalidOption("block pattern \(r)×\(c)") }
        case .unstructured: break
        }
        return (s, o.effectiveRankMultiple)
    }

    static func groupWidths(_ model: ViTModel, _ g: [Int]) throws -> (Int, Int) {
        var widths = [(Int, Int, Int)]()
        for b in g {
            guard let f1 = model.tensors[TensorNames.block(b, "mlp.fc1.weight")],
                  let f2 = model.tensors[TensorNames.block(b, "mlp.fc2.weight")] else {
                throw CompressionError.invalidGroups("block \(b) has no dense MLP weights (already compressed?)")
            }
            guard f1.shape.count == 2, f2.shape == [f1.shape[1], f1.shape[0]] else {
                throw CompressionError.widthMismatch(group: g, detail: "block \(b) has fc1 \(f1.shape) and fc2 \(f2.shape)")
            }
            let b1 = model.tensors[TensorNames.block(b, "mlp.fc1.bias")], b2 = model.tensors[TensorNames.block(b, "mlp.fc2.bias")]
            guard b1?.shape == [f1.shape[0]], b2?.shape == [f1.shape[1]] else {
                throw CompressionError.widthMismatch(
                    group: g, detail: "block \(b)'s biases \(b1?.shape ?? []) / \(b2?.shape ?? []) do not fit fc1 \(f1.shape)")
            }
            widths.append((b, f1.shape[1], f1.shape[0]))
        }
        let (b0, d, m) = widths[0]
        for (b, db, mb) in widths where db != d || mb != m {
            throw CompressionError.widthMismatch(
                group: g, detail: "block \(b0) has width \(d) and MLP width \(m) but block \(b) has \(db) and \(mb)")
        }
        return (d, m)
    }

    static func checkCalibration(_ c: MLPCalibration, _ groups: [([Int], Int)]) throws {
        var rows: Int? = nil
        for (g, d) in groups {
            for b in g {
                guard b < c.inputs.count, b < c.outputs.count else {
                    throw CompressionError.calibration("no recorded MLP input/output for block \(b)")
                }
                let x = c.inputs[b], y = c.outputs[b]
                guard x.shape.count == 2, x.shape[1] == d, y.shape == x.shape else {
                    throw CompressionError.calibration("block \(b): inputs \(x.shape) and outputs \(y.shape), expected [N, \(d)]")
                }
                if let n = rows, n != x.shape[0] {
                    throw CompressionError.calibration("block \(b) has \(x.shape[0]) rows, other blocks \(n)")
                }
                rows = x.shape[0]
                guard x.shape[0] > 0 else { throw CompressionError.calibration("block \(b) has no rows") }
            }
        }
    }
}
