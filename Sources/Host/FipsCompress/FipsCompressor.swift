import COpenBLAS
import Foundation
import FipsArtifact
import FipsHostModel

public enum FipsCompressor {
    /// One group's blocks, width d, MLP width m and rank.
    typealias GroupPlan = (blocks: [Int], d: Int, m: Int, rank: Int)

    /// Compresses the MLPs of `model`. Each compressed block i gets `blocks.i.mlp.fc1.U` [d, r],
    /// `…fc1.V` [r, m], `…fc2.U` [d, r], `…fc2.V` [r, m] (zeros where pruned) and keeps its
    /// biases; its dense `fc1.weight`/`fc2.weight` are removed. In a FiPS group every block's
    /// fc1.U and fc2.U hold the same values. fc1: y = (x·U)·V + b; fc2: y = (h·Vᵀ)·Uᵀ + b.
    public static func compress(_ model: ViTModel, calibration: MLPCalibration, options o: CompressionOptions,
                                progress: (String) -> Void = { _ in }) throws -> (ViTModel, CompressionReport) {
        openblas_set_num_threads(1)
        let (plan, sparsity) = try planGroups(model, calibration: calibration, options: o)

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

            var t0 = Date()
            var stats = ActivationStatistics()
            if o.activationAware {
                stats = try activationStatistics(model, p, fc1: fc1, inputs: xs, method: o.method, threads: ropt.threads)
            }
            report.statisticsSeconds += Date().timeIntervalSince(t0)

            t0 = Date()
            var group = try factorise(model, p, fc1: fc1, fc2: fc2, statistics: stats, options: o)
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

            replaceMLPs(&out, blocks: blocks, with: group)
        }
        return (out, report)
    }

    /// What activation-aware factorisation whitens by; empty without it.
    struct ActivationStatistics {
        /// FiPS: one Cholesky factor of the group's pooled input second moment; SVD: one per block.
        var inputChol = [[Double]]()
        /// Per block, the Cholesky factor of the hidden (post-GELU) second moment.
        var hiddenChol = [[Double]]()
        var hiddenMoments = [[Double]]()
        var inputMoments = [[Double]]()
    }

    /// Activation statistics: per block, the second moments of the MLP input
    /// and of its hidden activations GELU(X·fc1ᵀ + b1), and their Cholesky factors.
    static func activationStatistics(_ model: ViTModel, _ p: GroupPlan, fc1: [HostTensor], inputs xs: [HostTensor],
                                     method: CompressionMethod, threads: Int) throws -> ActivationStatistics {
        let (blocks, d, m, _) = p
        var s = ActivationStatistics()
        let n = xs[0].shape[0]
        var covs = [[Double]]()
        for (k, b) in blocks.enumerated() {
            covs.append(FipsFactorization.secondMoment(rows: n, cols: d, threads: threads) { lo, hi, buf in
                xs[k].data.withUnsafeBufferPointer { buf.update(from: $0.baseAddress! + lo * d, count: (hi - lo) * d) }
            })
            let b1 = model[TensorNames.block(b, "mlp.fc1.bias")].data
            let hc = fc1[k].data.withUnsafeBufferPointer { w in
                FipsFactorization.secondMoment(rows: n, cols: m, threads: threads) { lo, hi, buf in
                    // H = GELU(X·fc1ᵀ + b1) for these rows
                    for i in 0..<(hi - lo) { (buf + i * m).update(from: b1, count: m) }
                    xs[k].data.withUnsafeBufferPointer { x in
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(hi - lo), Int32(m), Int32(d), 1,
                                    x.baseAddress! + lo * d, Int32(d), w.baseAddress, Int32(d), 1, buf, Int32(m))
                    }
                    GELU.forward(buf, buf, (hi - lo) * m)
                }
            }
            s.hiddenChol.append(try FipsFactorization.cholesky(hc, size: m))
            s.hiddenMoments.append(hc)
        }
        s.inputMoments = covs
        if method == .fips {
            // pooled over the group's blocks: U is shared, so one left transform for all
            var pooled = [Double](repeating: 0, count: d * d)
            for c in covs { for i in 0..<(d * d) { pooled[i] += c[i] / Double(covs.count) } }
            s.inputChol = [try FipsFactorization.cholesky(pooled, size: d)]
        } else {
            s.inputChol = try covs.map { try FipsFactorization.cholesky($0, size: d) }
        }
        return s
    }

    /// Factorisation: the group's shared basis and projections (FiPS), or
    /// per-layer bases and projections (SVD), before any pruning.
    static func factorise(_ model: ViTModel, _ p: GroupPlan, fc1: [HostTensor], fc2: [HostTensor],
                          statistics s: ActivationStatistics, options o: CompressionOptions) throws -> MLPGroup {
        let (blocks, d, m, r) = p
        let b1s = blocks.map { model[TensorNames.block($0, "mlp.fc1.bias")] }
        let b2s = blocks.map { model[TensorNames.block($0, "mlp.fc2.bias")] }
        switch o.method {
        case .fips:
            var w = o.activationAware ? Whitening(input: s.inputChol[0], hidden: s.hiddenChol) : nil
            if o.alternatingRefinement { w?.inputMoments = s.inputMoments; w?.hiddenMoments = s.hiddenMoments }
            let f = try FipsFactorization.fipsGroup(fc1: fc1, fc2: fc2, rank: r, whitening: w)
            return MLPGroup(d: d, m: m, bases: [HostTensor(shape: [d, r], data: f.u)], blocks: blocks.indices.map { k in
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
                                                     left: o.activationAware ? s.inputChol[k] : nil, right: nil)
                let l2 = try FipsFactorization.layer(fc2[k].data, rows: d, cols: m, rank: r,
                                                     left: nil, right: o.activationAware ? s.hiddenChol[k] : nil)
                bases.append(HostTensor(shape: [d, r], data: l1.u)); bases.append(HostTensor(shape: [d, r], data: l2.u))
                gb.append(MLPGroup.Block(v1: HostTensor(shape: [r, m], data: l1.v), v2: HostTensor(shape: [r, m], data: l2.v),
                                         b1: b1s[k], b2: b2s[k], inputBasis: 2 * k, outputBasis: 2 * k + 1))
            }
            return MLPGroup(d: d, m: m, bases: bases, blocks: gb)
        }
    }

    /// The group's blocks in `out` take their factors in place of the dense MLP weights.
    static func replaceMLPs(_ out: inout ViTModel, blocks: [Int], with group: MLPGroup) {
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
}
