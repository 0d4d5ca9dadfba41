import COpenBLAS
import Dispatch
import Foundation
import FipsHostModel

/// Training: pruning schedule and masks, minibatches, gradients, AdamW.
extension GroupTrainer {
    var maskShapes: [MaskShape] {
        var s = [MaskShape]()
        for b in 0..<n {
            s.append(MaskShape(rows: rank[b], cols: m, reduction: .rows))     // V1: z·V1 sums over r
            s.append(MaskShape(rows: rank[b], cols: m, reduction: .columns))  // V2: h·V2ᵀ sums over m
        }
        return s
    }

    func vValues() -> [[Float]] {
        var out = [[Float]]()
        for b in 0..<n {
            out.append(Array(params[v1Off[b]..<(v1Off[b] + rank[b] * m)]))
            out.append(Array(params[v2Off[b]..<(v2Off[b] + rank[b] * m)]))
        }
        return out
    }

    func train(inputs: [HostTensor], outputs: [HostTensor], options o: ReconstructionOptions,
               progress: (String) -> Void) throws -> ReconstructionResult {
        let rowsTotal = inputs[0].shape[0]
        let B = max(1, min(o.batchRows, rowsTotal))
        let T = max(1, min(o.threads, B / 16))
        let per = (B + T - 1) / T
        let sparse = o.sparsity > 0
        let steps = max(0, o.steps)
        let schedule = sparse ? pruningSchedule(o, steps: steps) : []
        var masks: [[Bool]]? = nil
        var maskFlat = [Float]()  // over [vStart, vEnd)
        let shapes = maskShapes
        func applySchedule(_ s: Double) throws {
            let r = try prune(to: s, pattern: o.pattern, previous: masks, shapes: shapes)
            masks = r.masks
            maskFlat = r.flat
        }

        let size = self.size
        // per-thread gradient buffers and workspaces (raw buffers: written from worker threads)
        let grads = (0..<T).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: size) }
        let workspaces = (0..<T).map { _ in Workspace(rows: per, d: d, m: m, r: maxRank) }
        let bx = (0..<n).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: B * d) }
        let by = (0..<n).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: B * d) }
        let sse = UnsafeMutablePointer<Double>.allocate(capacity: T * n)
        defer { (grads + bx + by).forEach { $0.deallocate() }; sse.deallocate() }
        var mom = [Float](repeating: 0, count: size), vel = [Float](repeating: 0, count: size)
        var sampler = RowSampler(rows: rowsTotal, seed: o.seed)
        let scale = Float(2.0 / (Double(n) * Double(B) * Double(d)))
        var lastLoss = 0.0
        var nextSchedule = 0
        let reportEvery = max(1, steps / 10)

        for step in 0..<steps {
            while nextSchedule < schedule.count && schedule[nextSchedule].step <= step {
                try applySchedule(schedule[nextSchedule].s); nextSchedule += 1
            }
            gatherBatch(sampler.next(B), inputs: inputs, outputs: outputs, into: bx, by)
            accumulateGradients(into: grads, sse: sse, x: bx, y: by, rows: B, perThread: per, workspaces: workspaces,
                                scale: scale)
            var total = 0.0
            for k in 0..<(T * n) { total += sse[k] }
            lastLoss = total / (Double(n) * Double(B) * Double(d))
            // AdamW with cosine-decayed learning rate
            let cosv = 0.5 * (1 + cos(Double.pi * Double(step) / Double(steps)))
            let lr = o.minLearningRate + (o.learningRate - o.minLearningRate) * Float(cosv)
            let bc1 = 1 - pow(o.beta1, Float(step + 1)), bc2 = 1 - pow(o.beta2, Float(step + 1))
            adamStep(grad: grads[0], m: &mom, v: &vel, lr: lr, bc1: bc1, bc2: bc2, o: o,
                     mask: maskFlat.isEmpty ? nil : maskFlat, threads: T)
            if step % reportEvery == 0 || step == steps - 1 {
                progress(String(format: "  step %d/%d  loss %.6g  lr %.3g", step + 1, steps, lastLoss, Double(lr)))
            }
        }
        // remaining schedule points (steps == 0, or the end fraction at the very end)
        while nextSchedule < schedule.count { try applySchedule(schedule[nextSchedule].s); nextSchedule += 1 }
        if sparse && masks == nil { try applySchedule(o.sparsity) }
        let mse = evaluate(inputs: inputs, outputs: outputs, threads: o.threads)
        return ReconstructionResult(mseAfter: mse, masks: masks,
                                    achievedSparsity: masks.map { SparsityMask.sparsity(of: $0) } ?? 0,
                                    finalLoss: lastLoss)
    }

    /// Schedule points: the step index at whose start the masks are recomputed,
    /// and the cubic schedule's sparsity there, up to the prune-end fraction.
    func pruningSchedule(_ o: ReconstructionOptions, steps: Int) -> [(step: Int, s: Double)] {
        let pruneEnd = steps == 0 ? 0 : max(1, min(steps, Int((o.pruneEndFraction * Double(steps)).rounded())))
        let updates = max(1, o.pruneUpdates)
        var schedule = [(step: Int, s: Double)]()
        for k in 1...updates {
            let t = Int((Double(k) * Double(pruneEnd) / Double(updates)).rounded())
            let s = SparsityMask.cubicSchedule(step: t, endStep: pruneEnd, finalSparsity: o.sparsity)
            if let last = schedule.last, last.step == t { schedule[schedule.count - 1] = (t, s) } else { schedule.append((t, s)) }
        }
        return schedule
    }

    /// Global magnitude masks over every V at sparsity `s` (kept entries stay kept
    /// when `previous` says so); zeroes the pruned parameters. The flat mask runs over [vStart, vEnd).
    func prune(to s: Double, pattern: SparsityPattern, previous: [[Bool]]?,
               shapes: [MaskShape]) throws -> (masks: [[Bool]], flat: [Float]) {
        let mk = try SparsityMask.global(vValues(), shapes: shapes, sparsity: s, pattern: pattern, previous: previous)
        var maskFlat = [Float](repeating: 1, count: vEnd - vStart)
        var off = 0
        for (i, mm) in mk.enumerated() {
            let base = (i % 2 == 0 ? v1Off[i / 2] : v2Off[i / 2]) - vStart
            precondition(base == off)
            for (j, keep) in mm.enumerated() where !keep { maskFlat[base + j] = 0 }
            off += mm.count
        }
        for j in 0..<maskFlat.count where maskFlat[j] == 0 { params[vStart + j] = 0 }
        return (mk, maskFlat)
    }

    /// Minibatch rows: an epoch-wise permutation drawn with SplitMix64, the same rows for every block.
    struct RowSampler {
        var rng: SplitMix64
        var perm: [Int]
        var cursor: Int
        let rows: Int

        init(rows: Int, seed: UInt64) {
            self.rows = rows
            rng = SplitMix64(seed: seed)
            perm = Array(0..<rows)
            cursor = rows
        }

        mutating func next(_ count: Int) -> [Int] {
            var idx = [Int](); idx.reserveCapacity(count)
            while idx.count < count {
                if cursor == rows {
                    for i in stride(from: rows - 1, to: 0, by: -1) {
                        let j = Int(rng.next() % UInt64(i + 1)); perm.swapAt(i, j)
                    }
                    cursor = 0
                }
                idx.append(perm[cursor]); cursor += 1
            }
            return idx
        }
    }

    /// Copies the batch's rows of every block's inputs and outputs into `bx` and `by`.
    func gatherBatch(_ idx: [Int], inputs: [HostTensor], outputs: [HostTensor],
                     into bx: [UnsafeMutablePointer<Float>], _ by: [UnsafeMutablePointer<Float>]) {
        for b in 0..<n {
            inputs[b].data.withUnsafeBufferPointer { src in
                for (k, row) in idx.enumerated() { (bx[b] + k * d).update(from: src.baseAddress! + row * d, count: d) }
            }
            outputs[b].data.withUnsafeBufferPointer { src in
                for (k, row) in idx.enumerated() { (by[b] + k * d).update(from: src.baseAddress! + row * d, count: d) }
            }
        }
    }

    /// Forward/backward with the batch's rows split over threads, each into its own
    /// gradient buffer (and its block SSEs into `sse`), then the reduction
    /// grads[0] += grads[1] + grads[2] … in thread order (each element's sum order is fixed).
    func accumulateGradients(into grads: [UnsafeMutablePointer<Float>], sse: UnsafeMutablePointer<Double>,
                             x bx: [UnsafeMutablePointer<Float>], y by: [UnsafeMutablePointer<Float>], rows B: Int,
                             perThread per: Int, workspaces: [Workspace], scale: Float) {
        let T = grads.count, size = self.size, n = self.n, d = self.d
        params.withUnsafeBufferPointer { p in
            let pp = p.baseAddress!
            DispatchQueue.concurrentPerform(iterations: T) { t in
                let lo = t * per, hi = min(B, lo + per)
                grads[t].initialize(repeating: 0, count: size)
                for b in 0..<n {
                    sse[t * n + b] = lo < hi
                        ? backward(b, pp, grads[t], x: bx[b] + lo * d, y: by[b] + lo * d, rows: hi - lo,
                                   ws: workspaces[t], scale: scale)
                        : 0
                }
            }
        }
        if T > 1 {
            let chunk = (size + T - 1) / T
            DispatchQueue.concurrentPerform(iterations: T) { t in
                let lo = t * chunk, hi = min(size, lo + chunk)
                guard lo < hi else { return }
                for s in 1..<T { let src = grads[s], dst = grads[0]; for k in lo..<hi { dst[k] += src[k] } }
            }
        }
    }

    func adamStep(grad g: UnsafeMutablePointer<Float>, m: inout [Float], v: inout [Float], lr: Float, bc1: Float, bc2: Float,
                  o: ReconstructionOptions, mask: [Float]?, threads: Int) {
        let b1 = o.beta1, b2 = o.beta2, eps = o.epsilon, wd = o.weightDecay
        let size = self.size, decayEnd = self.decayEnd, vStart = self.vStart
        let stepSize = lr / bc1, invBc2 = 1 / bc2
        let chunk = (size + threads - 1) / threads
        params.withUnsafeMutableBufferPointer { pw in
            do {
                m.withUnsafeMutableBufferPointer { mw in
                    v.withUnsafeMutableBufferPointer { vw in
                        let p = pw.baseAddress!, mm = mw.baseAddress!, vv = vw.baseAddress!
                        if let mk = mask {
                            for k in 0..<mk.count where mk[k] == 0 { g[vStart + k] = 0 }
                        }
                        DispatchQueue.concurrentPerform(iterations: threads) { t in
                            let lo = t * chunk, hi = min(size, lo + chunk)
                            guard lo < hi else { return }
                            for k in lo..<hi {
                                let gk = g[k]
                                let mk = b1 * mm[k] + (1 - b1) * gk
                                let vk = b2 * vv[k] + (1 - b2) * gk * gk
                                mm[k] = mk; vv[k] = vk
                                let decay: Float = k < decayEnd ? wd : 0
                                p[k] -= stepSize * mk / ((vk * invBc2).squareRoot() + eps) + lr * decay * p[k]
                            }
                        }
                        if let mk = mask {
                            for k in 0..<mk.count where mk[k] == 0 { p[vStart + k] = 0 }
                        }
                    }
                }
            }
        }
    }
}
