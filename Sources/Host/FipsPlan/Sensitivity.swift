import COpenBLAS
import Foundation
import FipsArtifact
import FipsCompress
import FipsHostModel
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
///   magnitude pruning of the V's to the sparsity, then weight quantisation of
///   every factor in its stored orientation the way `ModelQuantizer` does it
///   for the build: with `MLPHessians` (the default), GPTQ from the calibration
///   Hessians — dense fc1/fc2 from their own inputs' XᵀX; the shared fc1.Ut from
///   the group's pooled XᵀX; fc1.Vt from UᵀXᵀXU; fc2.V from the original hidden
///   activations' HᵀH (the candidate's own hidden activations approximate them);
///   fc2.U from the group's pooled V·HᵀH·Vᵀ; pruned V's keep round-to-nearest,
///   as in the build — without them, round-to-nearest everywhere. No gradient
///   refinement (only the chosen plan gets that), so the proxy is pessimistic
///   for FiPS alike at every rank; averaged over the group's blocks.
/// - attention: per block, the relative output error tr(ΔW H ΔWᵀ)/tr(W H Wᵀ) of
///   qkv and proj at the bit width (H = XᵀX of their calibration inputs; ΔW from
///   GPTQ on that H, or round-to-nearest), the mean of the two, averaged over
///   the group's blocks.
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

    /// The second moments GPTQ needs for a block's MLP: H_x = XᵀX of its input
    /// [d, d] and H_h = HᵀH of its hidden activations (fc2's input) [m, m],
    /// over every token of the calibration images (`CalibrationPass`).
    public struct MLPHessians {
        public var input: [Double]
        public var hidden: [Double]
        public init(input: [Double], hidden: [Double]) { self.input = input; self.hidden = hidden }
    }

    /// Aᵀ·H·A for A [n, r] (row-major, float) and H [n, n] (double): the Hessian
    /// of a layer whose input is X·A when H is that of X.
    static func congruence(_ a: [Float], n: Int, r: Int, _ h: [Float]) -> [Double] {
        var ha = [Float](repeating: 0, count: n * r)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(r), Int32(n), 1, h, Int32(n), a, Int32(r), 0, &ha, Int32(r))
        var out = [Float](repeating: 0, count: r * r)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(r), Int32(r), Int32(n), 1, a, Int32(r), ha, Int32(r), 0, &out, Int32(r))
        // symmetrise (float rounding)
        var d = [Double](repeating: 0, count: r * r)
        for i in 0..<r { for j in 0..<r { d[i * r + j] = 0.5 * (Double(out[i * r + j]) + Double(out[j * r + i])) } }
        return d
    }

    /// The leading [r, r] block of a [n, n] matrix.
    static func leading(_ h: [Double], n: Int, r: Int) -> [Double] {
        var o = [Double](repeating: 0, count: r * r)
        for i in 0..<r { for j in 0..<r { o[i * r + j] = h[i * n + j] } }
        return o
    }

    /// Errors of `options` for one group. `inputs`/`outputs`: per block of the group, [N, d].
    /// `hessians`: per block of the group; with them quantisation is GPTQ (as the build's), without, round-to-nearest.
    public static func mlpErrors(model: ViTModel, blocks: [Int], inputs: [HostTensor], outputs: [HostTensor],
                                 options: [MLPOption], hessians: [MLPHessians]? = nil,
                                 progress: (String) -> Void = { _ in }) throws -> [MLPOption: Double] {
        let c = model.config, d = c.dim, m = c.mlpDim, n = blocks.count
        let rows = inputs[0].shape[0]
        if let h = hessians {
            guard h.count == n, h.allSatisfy({ $0.input.count == d * d && $0.hidden.count == m * m }) else {
                throw PlanError.calibration("MLP Hessians for \(h.count) blocks of widths other than \(d)/\(m)")
            }
        }
        let fc1 = blocks.map { model[TensorNames.block($0, "mlp.fc1.weight")] }
        let fc2 = blocks.map { model[TensorNames.block($0, "mlp.fc2.weight")] }
        let b1 = blocks.map { model[TensorNames.block($0, "mlp.fc1.bias")].data }
        let b2 = blocks.map { model[TensorNames.block($0, "mlp.fc2.bias")].data }
        // GPTQ's per-Hessian work, once per group and block
        let inputPrepared = hessians.map { $0.map { WeightQuantizer.PreparedHessian($0.input, cols: d) } }
        let hiddenPrepared = hessians.map { $0.map { WeightQuantizer.PreparedHessian($0.hidden, cols: m) } }
        /// W [rows, cols] quantised at `bits`: GPTQ with `prepared`, else round-to-nearest.
        func q(_ w: [Float], rows: Int, cols: Int, bits: Int, _ prepared: WeightQuantizer.PreparedHessian?) -> [Float] {
            if let p = prepared { return WeightQuantizer.quantize(w, rows: rows, cols: cols, bits: bits, prepared: p).dequantized() }
            return rtn(w, rows: rows, cols: cols, bits: bits)
        }
        var out = [MLPOption: Double]()
        // dense
        for o in options where o.mlp == .dense {
            var e = 0.0
            for k in 0..<n {
                let w1 = q(fc1[k].data, rows: m, cols: d, bits: o.bits, inputPrepared?[k])
                let w2 = q(fc2[k].data, rows: d, cols: m, bits: o.bits, hiddenPrepared?[k])
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
        // Hessians of the factors' inputs at the widest rank (narrower ranks are leading blocks):
        // fc1.Vt sees x·U, so Uᵀ·H_x·U; the shared fc1.Ut sees x in every block, so Σ H_x.
        var vtHessians = [[Double]](), pooledInput: WeightQuantizer.PreparedHessian? = nil
        var hiddenF = [[Float]]()
        if let hs = hessians {
            var pooled = [Double](repeating: 0, count: d * d)
            for h in hs { for i in 0..<(d * d) { pooled[i] += h.input[i] } }
            pooledInput = WeightQuantizer.PreparedHessian(pooled, cols: d)
            for h in hs { vtHessians.append(congruence(f.u, n: d, r: rMax, h.input.map { Float($0) })) }
            hiddenF = hs.map { $0.hidden.map { Float($0) } }
        }
        var fc2UDense = [[Double]]()   // per block: V₂·H_h·V₂ᵀ at rMax, unpruned
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
            // fc2.U sees h·V₂ᵀ in every block: Σ V₂·H_h·V₂ᵀ (pruned V₂ when sparse)
            var pooledU2: WeightQuantizer.PreparedHessian? = nil
            if hessians != nil {
                var sum = [Double](repeating: 0, count: r * r)
                for k in 0..<n {
                    let g: [Double]
                    if s > 0 {
                        g = congruence(transpose(vs[2 * k + 1], rows: r, cols: m), n: m, r: r, hiddenF[k])
                    } else {
                        if fc2UDense.count < n {
                            fc2UDense.append(congruence(transpose(f.v2[k], rows: rMax, cols: m), n: m, r: rMax, hiddenF[k]))
                        }
                        g = leading(fc2UDense[k], n: rMax, r: r)
                    }
                    for i in 0..<(r * r) { sum[i] += g[i] }
                }
                pooledU2 = WeightQuantizer.PreparedHessian(sum, cols: r)
            }
            // stored orientations, as ModelQuantizer packs them; pruned V's round to nearest there
            let ut = q(transpose(u, rows: d, cols: r), rows: r, cols: d, bits: o.bits, pooledInput)   // fc1.Ut [r, d]
            let u2 = q(u, rows: d, cols: r, bits: o.bits, pooledU2)                                   // fc2.U [d, r]
            var e = 0.0
            for k in 0..<n {
                let vtPrepared = (hessians == nil || s > 0) ? nil
                    : WeightQuantizer.PreparedHessian(leading(vtHessians[k], n: rMax, r: r), cols: r)
                let vt = q(transpose(vs[2 * k], rows: r, cols: m), rows: m, cols: r, bits: o.bits, vtPrepared)  // fc1.Vt [m, r]
                let v2 = q(vs[2 * k + 1], rows: r, cols: m, bits: o.bits, s > 0 ? nil : hiddenPrepared?[k])     // fc2.V [r, m]
                let z = linear(inputs[k].data, rows: rows, k: d, ut, n: r, bias: nil)
                var h = linear(z, rows: rows, k: r, vt, n: m, bias: b1[k])
                gelu(&h, tanh: c.geluTanh)
                let q2 = linear(h, rows: rows, k: m, v2, n: r, bias: nil)
                e += relativeError(outputs[k].data, linear(q2, rows: rows, k: r, u2, n: d, bias: b2[k]))
            }
            out[o] = e / Double(n)
        }
        return out
    }

    /// Attention errors at each bit width for one group.
    /// `gptq`: quantise as the build does (GPTQ from the layer's Hessian), else round-to-nearest.
    public static func attentionErrors(model: ViTModel, blocks: [Int], statistics: [String: InputStatistics],
                                       bits: [Int], gptq: Bool = false) throws -> [Int: Double] {
        var out = [Int: Double]()
        for b in bits {
            var e = 0.0
            for blk in blocks {
                for layer in ["attn.qkv", "attn.proj"] {
                    let name = TensorNames.block(blk, layer)
                    guard let s = statistics[name] else { throw PlanError.calibration("no statistics for \(name)") }
                    let w = model[name + ".weight"]
                    let q = WeightQuantizer.quantize(w.data, rows: w.shape[0], cols: w.shape[1], bits: b,
                                                     rounding: gptq ? .gptq : .nearest, hessian: gptq ? s.hessian : nil)
                    e += WeightQuantizer.outputError(original: w.data, quantized: q, hessian: s.hessian) / 2
                }
            }
            out[b] = e / Double(blocks.count)
        }
        return out
    }
}
