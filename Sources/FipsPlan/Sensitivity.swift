import COpenBLAS
import Foundation
import FipsArtifact
import FipsCompress
import FipsHostCore
import FipsKernels
import FipsQuantize

/// The MLP part of a group's choice (what its error depends on).
public struct MLPOption: Hashable {
    public var mlp: MLPChoice
    public var bits: Int
    public init(mlp: MLPChoice, bits: Int) { self.mlp = mlp; self.bits = bits }
}

/// Measured errors of every candidate, on calibration data:
/// - MLP: per block, ‖Y − Ŷ‖² / ‖Y‖² over the recorded calibration rows, Y the
///   original MLP output, Ŷ the candidate's: FiPS initialisation (SVD of the
///   group's concatenated weights, truncated to the rank), one-shot global
///   magnitude pruning of the V's to the sparsity, round-to-nearest weight
///   quantisation of every factor in its stored orientation — no gradient
///   refinement (only the chosen plan gets that), so the proxy is pessimistic
///   for FiPS alike at every rank; averaged over the group's blocks.
/// - attention: per block, the relative output error tr(ΔW H ΔWᵀ)/tr(W H Wᵀ) of
///   qkv and proj at the bit width (H = XᵀX of their calibration inputs), the
///   mean of the two, averaged over the group's blocks.
public struct SensitivityTable {
    public var mlp: [[MLPOption: Double]]
    public var attention: [[Int: Double]]
    public var seconds: Double
}

public enum Sensitivity {
    /// y = x·Wᵀ + b for W [n, k] row-major, x [rows, k].
    static func linear(_ x: [Float], rows: Int, k: Int, _ w: [Float], n: Int, bias: [Float]?) -> [Float] {
        var y = [Float](repeating: 0, count: rows * n)
        if let b = bias { for r in 0..<rows { for j in 0..<n { y[r * n + j] = b[j] } } }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(n), Int32(k), 1, x, Int32(k), w, Int32(k),
                    bias == nil ? 0 : 1, &y, Int32(n))
        return y
    }

    static func gelu(_ x: inout [Float], tanh: Bool) {
        x.withUnsafeMutableBufferPointer { p in
            if tanh { Activations.geluTanh(p.baseAddress!, count: p.count) } else { Activations.geluErf(p.baseAddress!, count: p.count) }
        }
    }

    static func relativeError(_ y: [Float], _ yHat: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for i in 0..<y.count { let e = Double(y[i]) - Double(yHat[i]); num += e * e; den += Double(y[i]) * Double(y[i]) }
        return den > 0 ? num / den : 0
    }

    static func rtn(_ w: [Float], rows: Int, cols: Int, bits: Int) -> [Float] {
        WeightQuantizer.quantize(w, rows: rows, cols: cols, bits: bits, rounding: .nearest).dequantized()
    }

    static func transpose(_ a: [Float], rows: Int, cols: Int) -> [Float] {
        var o = [Float](repeating: 0, count: rows * cols)
        for i in 0..<rows { for j in 0..<cols { o[j * rows + i] = a[i * cols + j] } }
        return o
    }

    /// Errors of `options` for one group. `inputs`/`outputs`: per block of the group, [N, d].
    public static func mlpErrors(model: ViTModel, blocks: [Int], inputs: [HostTensor], outputs: [HostTensor],
                                 options: [MLPOption], progress: (String) -> Void = { _ in }) throws -> [MLPOption: Double] {
        let c = model.config, d = c.dim, m = c.mlpDim, n = blocks.count
        let rows = inputs[0].shape[0]
        let fc1 = blocks.map { model[TensorNames.block($0, "mlp.fc1.weight")] }
        let fc2 = blocks.map { model[TensorNames.block($0, "mlp.fc2.weight")] }
        let b1 = blocks.map { model[TensorNames.block($0, "mlp.fc1.bias")].data }
        let b2 = blocks.map { model[TensorNames.block($0, "mlp.fc2.bias")].data }
        var out = [MLPOption: Double]()
        // dense
        for o in options where o.mlp == .dense {
            var e = 0.0
            for k in 0..<n {
                let w1 = rtn(fc1[k].data, rows: m, cols: d, bits: o.bits), w2 = rtn(fc2[k].data, rows: d, cols: m, bits: o.bits)
                var h = linear(inputs[k].data, rows: rows, k: d, w1, n: m, bias: b1[k])
                gelu(&h, tanh: c.geluTanh)
                e += relativeError(outputs[k].data, linear(h, rows: rows, k: m, w2, n: d, bias: b2[k]))
            }
            out[o] = e / Double(n)
        }
        let ranks = Set(options.map { $0.mlp.rank }).filter { $0 > 0 }
        guard let rMax = ranks.max() else { return out }
        progress("SVD of blocks \(blocks.first!)-\(blocks.last!) (\(d)x\(2 * n * m))")
        let f = try FipsFactorization.fipsGroup(fc1: fc1, fc2: fc2, rank: rMax, whitening: nil)
        for o in options {
            guard case let .fips(r, s) = o.mlp else { continue }
            progress("blocks \(blocks.first!)-\(blocks.last!): rank \(r), sparsity \(s), \(o.bits) bits")
            // truncate: U [d, r], V [r, m]
            var u = [Float](repeating: 0, count: d * r)
            for i in 0..<d { for j in 0..<r { u[i * r + j] = f.u[i * rMax + j] } }
            var vs = [[Float]]()
            for k in 0..<n { vs.append(Array(f.v1[k][0..<(r * m)])); vs.append(Array(f.v2[k][0..<(r * m)])) }
            if s > 0 {
                let shapes = (0..<(2 * n)).map { MaskShape(rows: r, cols: m, reduction: $0 % 2 == 0 ? .rows : .columns) }
                let masks = try SparsityMask.global(vs, shapes: shapes, sparsity: s, pattern: .unstructured)
                for t in 0..<vs.count { for i in 0..<vs[t].count where !masks[t][i] { vs[t][i] = 0 } }
            }
            // stored orientations, as ModelQuantizer packs them
            let ut = rtn(transpose(u, rows: d, cols: r), rows: r, cols: d, bits: o.bits)      // fc1.Ut [r, d]
            let u2 = rtn(u, rows: d, cols: r, bits: o.bits)                                     // fc2.U [d, r]
            var e = 0.0
            for k in 0..<n {
                let vt = rtn(transpose(vs[2 * k], rows: r, cols: m), rows: m, cols: r, bits: o.bits)  // fc1.Vt [m, r]
                let v2 = rtn(vs[2 * k + 1], rows: r, cols: m, bits: o.bits)                           // fc2.V [r, m]
                let z = linear(inputs[k].data, rows: rows, k: d, ut, n: r, bias: nil)
                var h = linear(z, rows: rows, k: r, vt, n: m, bias: b1[k])
                gelu(&h, tanh: c.geluTanh)
                let q = linear(h, rows: rows, k: m, v2, n: r, bias: nil)
                e += relativeError(outputs[k].data, linear(q, rows: rows, k: r, u2, n: d, bias: b2[k]))
            }
            out[o] = e / Double(n)
        }
        return out
    }

    /// Attention errors at each bit width for one group.
    public static func attentionErrors(model: ViTModel, blocks: [Int], statistics: [String: InputStatistics],
                                       bits: [Int]) throws -> [Int: Double] {
        var out = [Int: Double]()
        for b in bits {
            var e = 0.0
            for blk in blocks {
                for layer in ["attn.qkv", "attn.proj"] {
                    let name = TensorNames.block(blk, layer)
                    guard let s = statistics[name] else { throw PlanError.calibration("no statistics for \(name)") }
                    let w = model[name + ".weight"]
                    let q = WeightQuantizer.quantize(w.data, rows: w.shape[0], cols: w.shape[1], bits: b, rounding: .nearest)
                    e += WeightQuantizer.outputError(original: w.data, quantized: q, hessian: s.hessian) / 2
                }
            }
            out[b] = e / Double(blocks.count)
        }
        return out
    }
}
