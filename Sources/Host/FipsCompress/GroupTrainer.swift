import COpenBLAS
import Dispatch
import Foundation
import FipsHostModel

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
}
