import FipsArtifact
import FipsHostModel

/// The checks `compress` makes before any work.
extension FipsCompressor {
    /// Shapes and ranks for every group, all checked (options, widths,
    /// calibration rows) before any work; and the sparsity of `o`.
    static func planGroups(_ model: ViTModel, calibration: MLPCalibration,
                           options o: CompressionOptions) throws -> (plan: [GroupPlan], sparsity: Double) {
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
        var plan = [GroupPlan]()
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
        return (plan, sparsity)
    }

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
