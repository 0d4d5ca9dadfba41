import COpenBLAS
import Dispatch
import Foundation
import FipsHostModel

/// The factorised MLPs of one group, in the layout the runtime uses:
/// fc1 `y = (x·U_in)·V1 + b1`, fc2 `y = (h·V2ᵀ)·U_outᵀ + b2`.
/// FiPS: one basis, every block's `inputBasis == outputBasis == 0`.
/// Per-layer SVD: two bases per block (its fc1's and its fc2's own U).
public struct MLPGroup {
    public var d: Int
    public var m: Int
    /// Each [d, r].
    public var bases: [HostTensor]
    public var blocks: [Block]

    public struct Block {
        /// [r, m], r = the rank of the block's bases.
        public var v1: HostTensor
        /// [r, m] (fc2 uses its transpose, so the stored layout matches fc1's).
        public var v2: HostTensor
        /// [m]
        public var b1: HostTensor
        /// [d]
        public var b2: HostTensor
        public var inputBasis: Int
        public var outputBasis: Int
        public init(v1: HostTensor, v2: HostTensor, b1: HostTensor, b2: HostTensor, inputBasis: Int, outputBasis: Int) {
            self.v1 = v1; self.v2 = v2; self.b1 = b1; self.b2 = b2
            self.inputBasis = inputBasis; self.outputBasis = outputBasis
        }
        public var rank: Int { v1.shape[0] }
    }

    public init(d: Int, m: Int, bases: [HostTensor], blocks: [Block]) {
        self.d = d; self.m = m; self.bases = bases; self.blocks = blocks
    }

    /// Nonzero weights (each basis counted once, V's nonzeros), without biases.
    public var storedWeights: Int {
        bases.reduce(0) { $0 + $1.count }
            + blocks.reduce(0) { acc, b in acc + b.v1.data.reduce(0) { $1 != 0 ? $0 + 1 : $0 } + b.v2.data.reduce(0) { $1 != 0 ? $0 + 1 : $0 } }
    }
}

/// Settings of block-wise reconstruction (AdamW, cosine decay, gradual pruning).
public struct ReconstructionOptions {
    public var steps: Int = 600
    public var learningRate: Float = 1e-3
    /// Floor of the cosine decay.
    public var minLearningRate: Float = 0
    /// Decoupled (AdamW) weight decay on U and V; biases are not decayed.
    public var weightDecay: Float = 0.05
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    /// Token rows per minibatch (the same rows for every block of the group).
    public var batchRows: Int = 1024
    public var seed: UInt64 = 0
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Final sparsity of the V's; 0 = dense.
    public var sparsity: Double = 0
    public var pattern: SparsityPattern = .unstructured
    /// The cubic schedule reaches the final sparsity at this fraction of the steps…
    public var pruneEndFraction: Double = 0.5
    /// …through this many mask updates (masks are fixed after the last one).
    public var pruneUpdates: Int = 10
    public init() {}
}

public struct ReconstructionResult {
    /// Per block, over all calibration rows, with the final (pruned) weights.
    public var mseAfter: [Double]
    /// Final masks of V1_b, V2_b interleaved (nil when dense).
    public var masks: [[Bool]]?
    public var achievedSparsity: Double
    /// Minibatch loss at the last step.
    public var finalLoss: Double
}

/// Block-wise reconstruction of a group's MLPs against the original MLP outputs.
///
/// Loss = mean over the group's blocks of MSE(MLP'_b(X_b), Y_b), where X_b is the
/// original model's LN2 output of block b and Y_b its MLP output (teacher forcing).
/// All blocks are trained together because they share U.
///
/// The backward pass is written out on `cblas_sgemm`, for
///   Z = X·U_in, A = Z·V1 + b1, H = GELU(A), Q = H·V2ᵀ, Ŷ = Q·U_outᵀ + b2:
///   dU_out += dŶᵀ·Q, dQ = dŶ·U_out, dV2 = dQᵀ·H, dH = dQ·V2, dA = dH ⊙ GELU'(A),
///   dV1 = Zᵀ·dA, dZ = dA·V1ᵀ, dU_in += Xᵀ·dZ, db1 = Σ dA, db2 = Σ dŶ.
/// Threads split each minibatch's rows; each thread accumulates into its own gradient
/// buffer and the buffers are summed in thread order, so a run is bit-identical for a
/// given seed and thread count. OpenBLAS itself is kept single-threaded.
public enum MLPReconstruction {
    /// Per-block MSE (mean over rows and the d outputs) over all rows. Rows are split in
    /// fixed chunks whose sums are added in order: the result does not depend on `threads`.
    public static func meanSquaredErrors(_ g: MLPGroup, inputs: [HostTensor], outputs: [HostTensor],
                                         threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> [Double] {
        openblas_set_num_threads(1)
        let t = GroupTrainer(g)
        return t.evaluate(inputs: inputs, outputs: outputs, threads: threads)
    }

    /// Full-batch loss (mean over blocks of the per-block MSE) and its gradient with
    /// respect to every parameter, in the group's own layout. For checking the backward.
    public static func lossAndGradient(_ g: MLPGroup, inputs: [HostTensor], outputs: [HostTensor]) -> (loss: Double, gradient: MLPGroup) {
        openblas_set_num_threads(1)
        let t = GroupTrainer(g)
        let n = inputs[0].shape[0]
        let (loss, grad) = t.gradient(inputs: inputs.map { $0.data }, outputs: outputs.map { $0.data }, rows: n, threads: 1)
        var out = g
        t.unpack(grad, into: &out)
        return (loss, out)
    }

    /// Trains `g` in place. Inputs and outputs: one [N, d] per block of the group.
    public static func train(_ g: inout MLPGroup, inputs: [HostTensor], outputs: [HostTensor],
                             options o: ReconstructionOptions, progress: (String) -> Void = { _ in }) throws -> ReconstructionResult {
        openblas_set_num_threads(1)
        try checkData(g, inputs, outputs)
        let t = GroupTrainer(g)
        let result = try t.train(inputs: inputs, outputs: outputs, options: o, progress: progress)
        t.unpack(t.params, into: &g)
        return result
    }

    static func checkData(_ g: MLPGroup, _ x: [HostTensor], _ y: [HostTensor]) throws {
        guard x.count == g.blocks.count, y.count == g.blocks.count else {
            throw CompressionError.calibration("\(x.count) inputs and \(y.count) outputs for \(g.blocks.count) blocks")
        }
        let n = x[0].shape[0]
        for (a, b) in zip(x, y) where a.shape != [n, g.d] || b.shape != [n, g.d] {
            throw CompressionError.calibration("calibration tensors \(a.shape) / \(b.shape), expected [\(n), \(g.d)] for every block")
        }
        guard n > 0 else { throw CompressionError.calibration("no calibration rows") }
    }
}

// MARK: - implementation

/// Flat parameter vector: bases, then V1_b, V2_b per block, then b1_b, b2_b per block.
/// Flat so that AdamW, the masks and the thread reduction are single loops; the
/// decayed part (U, V) is the prefix [0, decayEnd), the V's are [vStart, vEnd).
final class GroupTrainer {
    let d: Int, m: Int, n: Int
    var uOff = [Int](), uRank = [Int]()
    var v1Off = [Int](), v2Off = [Int](), b1Off = [Int](), b2Off = [Int](), rank = [Int](), uIn = [Int](), uOut = [Int]()
    var vStart = 0, vEnd = 0, decayEnd = 0, size = 0
    var params: [Float]

    init(_ g: MLPGroup) {
        d = g.d; m = g.m; n = g.blocks.count
        var off = 0
        for b in g.bases { uOff.append(off); uRank.append(b.shape[1]); off += b.count }
        vStart = off
        for b in g.blocks {
            precondition(uRank[b.inputBasis] == b.rank && uRank[b.outputBasis] == b.rank, "basis and V ranks differ")
            rank.append(b.rank); uIn.append(b.inputBasis); uOut.append(b.outputBasis)
            v1Off.append(off); off += b.v1.count
            v2Off.append(off); off += b.v2.count
        }
        vEnd = off; decayEnd = off
        for _ in g.blocks {
            b1Off.append(off); off += m
            b2Off.append(off); off += d
        }
        size = off
        params = [Float](repeating: 0, count: size)
        for (i, b) in g.bases.enumerated() { params.replaceSubrange(uOff[i]..<(uOff[i] + b.count), with: b.data) }
        for (i, b) in g.blocks.enumerated() {
            params.replaceSubrange(v1Off[i]..<(v1Off[i] + b.v1.count), with: b.v1.data)
            params.replaceSubrange(v2Off[i]..<(v2Off[i] + b.v2.count), with: b.v2.data)
            params.replaceSubrange(b1Off[i]..<(b1Off[i] + m), with: b.b1.data)
            params.replaceSubrange(b2Off[i]..<(b2Off[i] + d), with: b.b2.data)
        }
    }

    func unpack(_ flat: [Float], into g: inout MLPGroup) {
        for i in g.bases.indices { g.bases[i].data = Array(flat[uOff[i]..<(uOff[i] + g.bases[i].count)]) }
        for i in g.blocks.indices {
            g.blocks[i].v1.data = Array(flat[v1Off[i]..<(v1Off[i] + g.blocks[i].v1.count)])
            g.blocks[i].v2.data = Array(flat[v2Off[i]..<(v2Off[i] + g.blocks[i].v2.count)])
            g.blocks[i].b1.data = Array(flat[b1Off[i]..<(b1Off[i] + m)])
            g.blocks[i].b2.data = Array(flat[b2Off[i]..<(b2Off[i] + d)])
        }
    }

    var maxRank: Int { rank.max() ?? 0 }

    /// Per-thread scratch for `rows` rows.
    final class Workspace {
        let z, a, h, q, e, dq: UnsafeMutablePointer<Float>
        init(rows: Int, d: Int, m: Int, r: Int) {
            z = .allocate(capacity: rows * r); q = .allocate(capacity: rows * r); dq = .allocate(capacity: rows * r)
            a = .allocate(capacity: rows * m); h = .allocate(capacity: rows * m)
            e = .allocate(capacity: rows * d)
        }
        deinit { [z, a, h, q, e, dq].forEach { $0.deallocate() } }
    }

    /// Forward of block `b` on `rows` rows; leaves E = Ŷ − Y in ws.e, and (when
    /// `keepDerivative`) H in ws.h and GELU'(A) in ws.a. Returns Σ E².
    func forward(_ b: Int, _ p: UnsafePointer<Float>, x: UnsafePointer<Float>, y: UnsafePointer<Float>, rows: Int,
                 ws: Workspace, keepDerivative: Bool) -> Double {
        let r = rank[b], R = Int32(r), N = Int32(rows), D = Int32(d), M = Int32(m)
        let uin = p + uOff[uIn[b]], uout = p + uOff[uOut[b]], v1 = p + v1Off[b], v2 = p + v2Off[b]
        let b1 = p + b1Off[b], b2 = p + b2Off[b]
        // Z = X·U_in  [rows, r]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, R, D, 1, x, D, uin, R, 0, ws.z, R)
        // A = Z·V1 + b1  [rows, m]
        for i in 0..<rows { (ws.a + i * m).update(from: b1, count: m) }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, M, R, 1, ws.z, R, v1, M, 1, ws.a, M)
        // H = GELU(A); GELU'(A) overwrites A (A itself is not needed again)
        if keepDerivative { GELU.forwardWithDerivative(ws.a, ws.h, rows * m) } else { GELU.forward(ws.a, ws.h, rows * m) }
        // Q = H·V2ᵀ  [rows, r]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, R, M, 1, ws.h, M, v2, M, 0, ws.q, R)
        // E = Q·U_outᵀ + b2 − Y  [rows, d]
        for i in 0..<rows {
            let e = ws.e + i * d, yi = y + i * d
            for j in 0..<d { e[j] = b2[j] - yi[j] }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, D, R, 1, ws.q, R, uout, R, 1, ws.e, D)
        var sse = 0.0
        var i = 0
        let cnt = rows * d
        // chunked float partial sums keep the loop vectorisable, the total in double
        while i < cnt {
            let hi = min(cnt, i + 4096)
            var s: Float = 0
            for k in i..<hi { s += ws.e[k] * ws.e[k] }
            sse += Double(s); i = hi
        }
        return sse
    }

    /// Forward + backward of block b, gradient accumulated (+=) into g. `scale` = ∂loss/∂(Σ E²).
    func backward(_ b: Int, _ p: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                  y: UnsafePointer<Float>, rows: Int, ws: Workspace, scale: Float) -> Double {
        let sse = forward(b, p, x: x, y: y, rows: rows, ws: ws, keepDerivative: true)
        let r = rank[b], R = Int32(r), N = Int32(rows), D = Int32(d), M = Int32(m)
        let uout = p + uOff[uOut[b]], v1 = p + v1Off[b], v2 = p + v2Off[b]
        let guin = g + uOff[uIn[b]], guout = g + uOff[uOut[b]], gv1 = g + v1Off[b], gv2 = g + v2Off[b]
        let gb1 = g + b1Off[b], gb2 = g + b2Off[b]
        // dŶ = scale·E ; db2 = Σ dŶ
        let cnt = rows * d
        for k in 0..<cnt { ws.e[k] *= scale }
        for i in 0..<rows { let e = ws.e + i * d; for j in 0..<d { gb2[j] += e[j] } }
        // dU_out += dŶᵀ·Q  [d, r]
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, R, N, 1, ws.e, D, ws.q, R, 1, guout, R)
        // dQ = dŶ·U_out  [rows, r]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, R, D, 1, ws.e, D, uout, R, 0, ws.dq, R)
        // dV2 += dQᵀ·H  [r, m]
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, M, N, 1, ws.dq, R, ws.h, M, 1, gv2, M)
        // dH = dQ·V2 (into H's buffer, H is no longer needed)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, M, R, 1, ws.dq, R, v2, M, 0, ws.h, M)
        // dA = dH ⊙ GELU'(A) ; db1 = Σ dA
        let hm = rows * m
        for k in 0..<hm { ws.h[k] *= ws.a[k] }
        for i in 0..<rows { let a = ws.h + i * m; for j in 0..<m { gb1[j] += a[j] } }
        // dV1 += Zᵀ·dA  [r, m]
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, M, N, 1, ws.z, R, ws.h, M, 1, gv1, M)
        // dZ = dA·V1ᵀ (into Q's buffer)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, R, M, 1, ws.h, M, v1, M, 0, ws.q, R)
        // dU_in += Xᵀ·dZ  [d, r]
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, R, N, 1, x, D, ws.q, R, 1, guin, R)
        return sse
    }

    /// Loss and gradient over `rows` rows of every block (row-major [rows, d] each),
    /// rows split over `threads`; per-thread gradients summed in thread order.
    func gradient(inputs: [[Float]], outputs: [[Float]], rows: Int, threads: Int) -> (Double, [Float]) {
        var grad = [Float](repeating: 0, count: size)
        var sse = [Double](repeating: 0, count: n)
        let ws = Workspace(rows: rows, d: d, m: m, r: maxRank)
        let scale = Float(2.0 / (Double(n) * Double(rows) * Double(d)))
        params.withUnsafeBufferPointer { p in
            grad.withUnsafeMutableBufferPointer { g in
                for b in 0..<n {
                    inputs[b].withUnsafeBufferPointer { x in
                        outputs[b].withUnsafeBufferPointer { y in
                            sse[b] = backward(b, p.baseAddress!, g.baseAddress!, x: x.baseAddress!, y: y.baseAddress!,
                                              rows: rows, ws: ws, scale: scale)
                        }
                    }
                }
            }
        }
        let loss = sse.reduce(0, +) / (Double(n) * Double(rows) * Double(d))
        return (loss, grad)
    }

    func evaluate(inputs: [HostTensor], outputs: [HostTensor], threads: Int) -> [Double] {
        let rowsTotal = inputs[0].shape[0]
        let chunk = 1024
        let chunks = (rowsTotal + chunk - 1) / chunk
        var sums = [Double](repeating: 0, count: chunks * n)
        let tcount = max(1, min(threads, chunks))
        let lock = NSLock()
        params.withUnsafeBufferPointer { p in
            DispatchQueue.concurrentPerform(iterations: tcount) { t in
                let ws = Workspace(rows: chunk, d: d, m: m, r: maxRank)
                var local = [(Int, Double)]()
                var c = t
                while c < chunks {
                    let lo = c * chunk, hi = min(rowsTotal, lo + chunk)
                    for b in 0..<n {
                        let s = inputs[b].data.withUnsafeBufferPointer { x in
                            outputs[b].data.withUnsafeBufferPointer { y in
                                forward(b, p.baseAddress!, x: x.baseAddress! + lo * d, y: y.baseAddress! + lo * d,
                                        rows: hi - lo, ws: ws, keepDerivative: false)
                            }
                        }
                        local.append((c * n + b, s))
                    }
                    c += tcount
                }
                lock.lock(); for (i, s) in local { sums[i] = s }; lock.unlock()
            }
        }
        var out = [Double](repeating: 0, count: n)
        for c in 0..<chunks { for b in 0..<n { out[b] += sums[c * n + b] } }
        return out.map { $0 / Double(rowsTotal * d) }
    }

    // MARK: training

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
        let pruneEnd = steps == 0 ? 0 : max(1, min(steps, Int((o.pruneEndFraction * Double(steps)).rounded())))
        let updates = max(1, o.pruneUpdates)
        // schedule points (step index at whose start the masks are recomputed)
        var schedule = [(step: Int, s: Double)]()
        if sparse {
            for k in 1...updates {
                let t = Int((Double(k) * Double(pruneEnd) / Double(updates)).rounded())
                let s = SparsityMask.cubicSchedule(step: t, endStep: pruneEnd, finalSparsity: o.sparsity)
                if let last = schedule.last, last.step == t { schedule[schedule.count - 1] = (t, s) } else { schedule.append((t, s)) }
            }
        }
        var masks: [[Bool]]? = nil
        var maskFlat = [Float]()  // over [vStart, vEnd)
        let shapes = maskShapes
        func applySchedule(_ s: Double) throws {
            let mk = try SparsityMask.global(vValues(), shapes: shapes, sparsity: s, pattern: o.pattern, previous: masks)
            masks = mk
            maskFlat = [Float](repeating: 1, count: vEnd - vStart)
            var off = 0
            for (i, mm) in mk.enumerated() {
                let base = (i % 2 == 0 ? v1Off[i / 2] : v2Off[i / 2]) - vStart
                precondition(base == off)
                for (j, keep) in mm.enumerated() where !keep { maskFlat[base + j] = 0 }
                off += mm.count
            }
            for j in 0..<maskFlat.count where maskFlat[j] == 0 { params[vStart + j] = 0 }
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
        // minibatch rows: an epoch-wise permutation drawn with SplitMix64, the same rows for every block
        var rng = SplitMix64(seed: o.seed)
        var perm = Array(0..<rowsTotal), cursor = rowsTotal
        let scale = Float(2.0 / (Double(n) * Double(B) * Double(d)))
        var lastLoss = 0.0
        var nextSchedule = 0
        let reportEvery = max(1, steps / 10)

        for step in 0..<steps {
            while nextSchedule < schedule.count && schedule[nextSchedule].step <= step {
                try applySchedule(schedule[nextSchedule].s); nextSchedule += 1
            }
            // gather the batch
            var idx = [Int](); idx.reserveCapacity(B)
            while idx.count < B {
                if cursor == rowsTotal {
                    for i in stride(from: rowsTotal - 1, to: 0, by: -1) {
                        let j = Int(rng.next() % UInt64(i + 1)); perm.swapAt(i, j)
                    }
                    cursor = 0
                }
                idx.append(perm[cursor]); cursor += 1
            }
            for b in 0..<n {
                inputs[b].data.withUnsafeBufferPointer { src in
                    for (k, row) in idx.enumerated() { (bx[b] + k * d).update(from: src.baseAddress! + row * d, count: d) }
                }
                outputs[b].data.withUnsafeBufferPointer { src in
                    for (k, row) in idx.enumerated() { (by[b] + k * d).update(from: src.baseAddress! + row * d, count: d) }
                }
            }
            // forward/backward, rows split over threads, each into its own gradient buffer
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
            // reduce: g0 += g1 + g2 … in thread order (each element's sum order is fixed)
            if T > 1 {
                let chunk = (size + T - 1) / T
                DispatchQueue.concurrentPerform(iterations: T) { t in
                    let lo = t * chunk, hi = min(size, lo + chunk)
                    guard lo < hi else { return }
                    for s in 1..<T { let src = grads[s], dst = grads[0]; for k in lo..<hi { dst[k] += src[k] } }
                }
            }
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
