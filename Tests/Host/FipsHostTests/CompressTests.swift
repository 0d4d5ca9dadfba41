import Foundation
import XCTest
import FipsArtifact
import FipsHostCore
import FipsCompress
import FipsKernels

// MARK: helpers

private func tensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> HostTensor {
    HostTensor(shape: shape, data: randomFloats(shape.reduce(1, *), seed: seed, scale: scale))
}

private func matmul(_ a: [Float], _ b: [Float], _ n: Int, _ k: Int, _ m: Int) -> [Float] {
    var c = [Float](repeating: 0, count: n * m)
    for i in 0..<n { for p in 0..<k { let x = a[i * k + p]; if x == 0 { continue }; for j in 0..<m { c[i * m + j] += x * b[p * m + j] } } }
    return c
}

private func gelu(_ x: Float) -> Float { 0.5 * x * (1 + erf(x / Float(2).squareRoot())) }

/// The original MLP: y = GELU(x·fc1ᵀ + b1)·fc2ᵀ + b2, x [N, d].
private func denseMLP(_ x: HostTensor, fc1: HostTensor, b1: HostTensor, fc2: HostTensor, b2: HostTensor) -> HostTensor {
    let n = x.shape[0], d = x.shape[1], m = fc1.shape[0]
    var h = [Float](repeating: 0, count: n * m)
    for i in 0..<n { for j in 0..<m {
        var s = b1.data[j]; for k in 0..<d { s += x.data[i * d + k] * fc1.data[j * d + k] }; h[i * m + j] = gelu(s)
    } }
    var y = [Float](repeating: 0, count: n * d)
    for i in 0..<n { for j in 0..<d {
        var s = b2.data[j]; for k in 0..<m { s += h[i * m + k] * fc2.data[j * m + k] }; y[i * d + j] = s
    } }
    return HostTensor(shape: [n, d], data: y)
}

/// The factorised layout: fc1 y = (x·U)·V + b; fc2 y = (h·Vᵀ)·Uᵀ + b.
private func factoredMLP(_ x: HostTensor, _ model: ViTModel, block i: Int) -> HostTensor {
    func t(_ s: String) -> HostTensor { model[TensorNames.block(i, s)] }
    let u1 = t("mlp.fc1.U"), v1 = t("mlp.fc1.V"), u2 = t("mlp.fc2.U"), v2 = t("mlp.fc2.V")
    let n = x.shape[0], d = x.shape[1], r = u1.shape[1], m = v1.shape[1]
    var a = matmul(matmul(x.data, u1.data, n, d, r), v1.data, n, r, m)
    for i in 0..<n { for j in 0..<m { a[i * m + j] = gelu(a[i * m + j] + t("mlp.fc1.bias").data[j]) } }
    var q = [Float](repeating: 0, count: n * r)
    for i in 0..<n { for k in 0..<r { var s: Float = 0; for j in 0..<m { s += a[i * m + j] * v2.data[k * m + j] }; q[i * r + k] = s } }
    var y = [Float](repeating: 0, count: n * d)
    for i in 0..<n { for j in 0..<d {
        var s = t("mlp.fc2.bias").data[j]; for k in 0..<r { s += q[i * r + k] * u2.data[j * r + k] }; y[i * d + j] = s
    } }
    return HostTensor(shape: [n, d], data: y)
}

private func mse(_ a: HostTensor, _ b: HostTensor) -> Double {
    zip(a.data, b.data).reduce(0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(a.count)
}

/// A tiny model plus teacher-forced calibration of its MLPs. Inputs are anisotropic
/// (a few strong directions), as LN outputs of a real ViT are.
private func tinyProblem(rows: Int = 384, seed: UInt64 = 3) -> (ViTModel, MLPCalibration) {
    let model = makeTinyModel(seed: seed)
    let c = model.config, d = c.dim
    var xs = [HostTensor](), ys = [HostTensor]()
    for i in 0..<c.depth {
        var x = tensor([rows, d], seed: seed &+ 100 &+ UInt64(i))
        let mix = tensor([d, d], seed: seed &+ 200 &+ UInt64(i), scale: 0.5)
        var xm = matmul(x.data, mix.data, rows, d, d)
        for k in 0..<xm.count where k % d < 3 { xm[k] *= 4 }
        x.data = xm
        xs.append(x)
        ys.append(denseMLP(x, fc1: model[TensorNames.block(i, "mlp.fc1.weight")], b1: model[TensorNames.block(i, "mlp.fc1.bias")],
                           fc2: model[TensorNames.block(i, "mlp.fc2.weight")], b2: model[TensorNames.block(i, "mlp.fc2.bias")]))
    }
    return (model, MLPCalibration(inputs: xs, outputs: ys))
}

final class CompressTests: XCTestCase {
    // MARK: budget

    func testBudgetWorkedExample() throws {
        // DINOv2-S group of 4: d = 384, m = 1536, dense weights 384·1536·8 = 4,718,592.
        let d = 384, m = 1536, n = 4
        XCTAssertEqual(FipsBudget.denseParameters(d: d, m: m, blocks: n), 4_718_592)
        // p = 0.5, s = 0: r = 0.5·4718592 / (384 + 12288) = 186.18 → 186
        let r0 = try FipsBudget.fipsRank(budget: 0.5, sparsity: 0, d: d, m: m, blocks: n)
        XCTAssertEqual(r0, 186)
        XCTAssertEqual(FipsBudget.fipsParameters(d: d, m: m, blocks: n, rank: r0, sparsity: 0), 384 * 186 + 186 * 12288) // 2,356,992
        XCTAssertEqual(FipsBudget.fipsParameters(d: d, m: m, blocks: n, rank: r0, sparsity: 0), 2_356_992)
        // p = 0.5, s = 0.5: r = 2359296 / (384 + 6144) = 361.4 → 361; 138,624 + 2,217,984
        let r1 = try FipsBudget.fipsRank(budget: 0.5, sparsity: 0.5, d: d, m: m, blocks: n)
        XCTAssertEqual(r1, 361)
        XCTAssertEqual(FipsBudget.fipsParameters(d: d, m: m, blocks: n, rank: r1, sparsity: 0.5), 2_356_608)
        // structured sparsity: multiple of 64
        XCTAssertEqual(try FipsBudget.fipsRank(budget: 0.5, sparsity: 0.5, d: d, m: m, blocks: n, multiple: 64), 320)
        // r > d is allowed (the authors pad): p = 0.5, s = 0.75 → 2359296 / 3456 = 682.7 → 682
        XCTAssertEqual(try FipsBudget.fipsRank(budget: 0.5, sparsity: 0.75, d: d, m: m, blocks: n), 682)
        // per-layer SVD at equal budget: k·(d+m) = 0.5·d·m → 153.6 → 153
        let k = try FipsBudget.svdRank(budget: 0.5, sparsity: 0, d: d, m: m)
        XCTAssertEqual(k, 153)
        let svd = FipsBudget.svdParameters(d: d, m: m, blocks: n, rank: k, sparsity: 0)
        XCTAssertEqual(svd, 8 * 153 * (384 + 1536))
        for p in [0.2, 0.33, 0.5, 0.7] {
            for s in [0.0, 0.5, 0.75] {
                let r = try FipsBudget.fipsRank(budget: p, sparsity: s, d: d, m: m, blocks: n)
                let k = try FipsBudget.svdRank(budget: p, sparsity: s, d: d, m: m)
                let target = p * Double(FipsBudget.denseParameters(d: d, m: m, blocks: n))
                let fp = FipsBudget.fipsParameters(d: d, m: m, blocks: n, rank: r, sparsity: s)
                let sp = FipsBudget.svdParameters(d: d, m: m, blocks: n, rank: k, sparsity: s)
                XCTAssertLessThanOrEqual(Double(fp), target + 1)
                XCTAssertLessThanOrEqual(Double(sp), target + 1)
                // within one rank step of the budget (and so of each other)
                XCTAssertGreaterThan(Double(FipsBudget.fipsParameters(d: d, m: m, blocks: n, rank: r + 1, sparsity: s)), target)
                XCTAssertGreaterThan(Double(FipsBudget.svdParameters(d: d, m: m, blocks: n, rank: k + 1, sparsity: s)), target)
            }
        }
    }

    func testBudgetTooSmallNamesTheMinimum() {
        XCTAssertThrowsError(try FipsBudget.fipsRank(budget: 0.0001, sparsity: 0, d: 384, m: 1536, blocks: 4)) { e in
            let s = "\(e)"
            XCTAssertTrue(s.contains("below the minimum"), s)
            XCTAssertTrue(s.contains("shared bases alone need"), s)
        }
        let (model, calib) = tinyProblem(rows: 64)
        var o = CompressionOptions()
        o.mlpBudget = 0.001; o.steps = 0
        XCTAssertThrowsError(try FipsCompressor.compress(model, calibration: calib, options: o)) { e in
            guard case let CompressionError.budgetTooSmall(_, minimum, _) = e else { return XCTFail("\(e)") }
            // d=16, m=40, n=2: one rank costs 16 + 160 of 2560 weights
            XCTAssertEqual(minimum, 176.0 / 2560.0, accuracy: 1e-12)
            XCTAssertTrue("\(e)".contains("below the minimum 0.06875"), "\(e)")
        }
    }

    // MARK: factorisation

    func testFullRankFactorsReproduceConcatenation() throws {
        let d = 12, m = 48, n = 3
        let fc1 = (0..<n).map { tensor([m, d], seed: 10 + UInt64($0), scale: 0.3) }
        let fc2 = (0..<n).map { tensor([d, m], seed: 20 + UInt64($0), scale: 0.3) }
        let cat = FipsFactorization.concatenate(fc1: fc1, fc2: fc2)
        XCTAssertEqual(cat.shape, [d, 2 * n * m])
        // W_cat layout: [fc1ᵀ_0 | fc2_0 | fc1ᵀ_1 | …]
        XCTAssertEqual(cat.data[2 * 2 * n * m + 5], fc1[0].data[5 * d + 2])
        XCTAssertEqual(cat.data[2 * 2 * n * m + m + 5], fc2[0].data[2 * m + 5])
        for r in [d, d + 5] {  // full rank, and r > d (zero-padded U, V rows /32)
            let f = try FipsFactorization.fipsGroup(fc1: fc1, fc2: fc2, rank: r, whitening: nil)
            var maxErr: Float = 0
            for b in 0..<n {
                let p1 = matmul(f.u, f.v1[b], d, r, m), p2 = matmul(f.u, f.v2[b], d, r, m)
                for i in 0..<d { for j in 0..<m {
                    maxErr = max(maxErr, abs(p1[i * m + j] - cat.data[i * 2 * n * m + 2 * b * m + j]))
                    maxErr = max(maxErr, abs(p2[i * m + j] - cat.data[i * 2 * n * m + (2 * b + 1) * m + j]))
                } }
            }
            XCTAssertLessThanOrEqual(maxErr, 1e-4, "rank \(r)")
            if r > d {
                for i in 0..<d { for k in d..<r { XCTAssertEqual(f.u[i * r + k], 0) } }
                XCTAssertEqual(f.v1[0][d * m + 3], f.v1[0][3] / 32, accuracy: 1e-7)
            }
        }
    }

    func testActivationAwareFullRankIsExactAndTruncationHelps() throws {
        // Whitening is undone exactly at full rank; truncated, it lowers the error on the
        // calibration data before any training (what it is for).
        let (model, calib) = tinyProblem(rows: 512)
        var o = CompressionOptions()
        o.steps = 0; o.groups = [[0, 1]]
        o.ranks = [16]; o.activationAware = true
        let (_, full) = try FipsCompressor.compress(model, calibration: calib, options: o)
        for b in full.blocks { XCTAssertLessThan(b.mseBefore / b.outputPower, 1e-8) }
        var results = [String: Double]()
        for method in CompressionMethod.allCases {
            for aware in [false, true] {
                o.method = method; o.activationAware = aware; o.ranks = nil; o.mlpBudget = 0.4
                let (_, rep) = try FipsCompressor.compress(model, calibration: calib, options: o)
                results["\(method.rawValue) aware=\(aware)"] = rep.blocks.map { $0.mseBefore / $0.outputPower }.reduce(0, +) / 2
            }
        }
        print("relative MSE right after SVD init (tiny model, budget 0.4):", results.sorted { $0.key < $1.key })
        XCTAssertLessThan(results["fips aware=true"]!, results["fips aware=false"]!)
        XCTAssertLessThan(results["svd aware=true"]!, results["svd aware=false"]!)
    }

    // MARK: backward

    func testBackwardMatchesFiniteDifferences() {
        let d = 6, m = 12, r = 4, rows = 9
        for shared in [true, false] {
            let nb = 2
            let bases = (0..<(shared ? 1 : 2 * nb)).map { tensor([d, r], seed: 40 + UInt64($0), scale: 0.6) }
            let blocks = (0..<nb).map { b in
                MLPGroup.Block(v1: tensor([r, m], seed: 50 + UInt64(b), scale: 0.6), v2: tensor([r, m], seed: 60 + UInt64(b), scale: 0.6),
                               b1: tensor([m], seed: 70 + UInt64(b), scale: 0.3), b2: tensor([d], seed: 80 + UInt64(b), scale: 0.3),
                               inputBasis: shared ? 0 : 2 * b, outputBasis: shared ? 0 : 2 * b + 1)
            }
            let g = MLPGroup(d: d, m: m, bases: bases, blocks: blocks)
            let xs = (0..<nb).map { tensor([rows, d], seed: 90 + UInt64($0)) }
            let ys = (0..<nb).map { tensor([rows, d], seed: 95 + UInt64($0)) }
            let (_, grad) = MLPReconstruction.lossAndGradient(g, inputs: xs, outputs: ys)

            // every parameter tensor, through a uniform accessor
            typealias Path = WritableKeyPath<MLPGroup, HostTensor>
            var paths = [(String, Path)]()
            for i in 0..<g.bases.count { paths.append(("U\(i)", \MLPGroup.bases[i])) }
            for b in 0..<nb {
                paths.append(("V1_\(b)", \MLPGroup.blocks[b].v1)); paths.append(("V2_\(b)", \MLPGroup.blocks[b].v2))
                paths.append(("b1_\(b)", \MLPGroup.blocks[b].b1)); paths.append(("b2_\(b)", \MLPGroup.blocks[b].b2))
            }
            let eps: Float = 2e-3
            for (name, path) in paths {
                var num = 0.0, den = 0.0
                for k in 0..<g[keyPath: path].count {
                    var gp = g, gm = g
                    gp[keyPath: path].data[k] += eps
                    gm[keyPath: path].data[k] -= eps
                    let lp = MLPReconstruction.lossAndGradient(gp, inputs: xs, outputs: ys).loss
                    let lm = MLPReconstruction.lossAndGradient(gm, inputs: xs, outputs: ys).loss
                    let fd = (lp - lm) / Double(2 * eps)
                    let an = Double(grad[keyPath: path].data[k])
                    num += (fd - an) * (fd - an); den += an * an
                }
                let rel = (num / max(den, 1e-20)).squareRoot()
                XCTAssertLessThan(rel, 1e-2, "\(shared ? "shared" : "per-layer") \(name): relative error \(rel)")
            }
        }
    }

    // MARK: masks

    func testGlobalUnstructuredMaskIsExact() throws {
        let shapes = [MaskShape(rows: 8, cols: 24, reduction: .rows), MaskShape(rows: 8, cols: 24, reduction: .columns),
                      MaskShape(rows: 5, cols: 7, reduction: .rows)]
        var values = shapes.enumerated().map { randomFloats($0.element.count, seed: 300 + UInt64($0.offset)) }
        values[1] = values[1].map { $0 * 0.1 }  // a weak layer: global ranking prunes it more
        for i in stride(from: 0, to: 40, by: 2) { values[2][i % 35] = 0.25 }  // ties
        let total = shapes.reduce(0) { $0 + $1.count }
        for s in [0.0, 0.1, 0.37, 0.5, 0.75, 0.9] {
            let mk = try SparsityMask.global(values, shapes: shapes, sparsity: s, pattern: .unstructured)
            let pruned = mk.reduce(0) { $0 + $1.filter { !$0 }.count }
            XCTAssertEqual(pruned, Int((s * Double(total)).rounded()), "s = \(s)")
            // deterministic
            XCTAssertEqual(mk, try SparsityMask.global(values, shapes: shapes, sparsity: s, pattern: .unstructured))
        }
        let mk = try SparsityMask.global(values, shapes: shapes, sparsity: 0.5, pattern: .unstructured)
        XCTAssertGreaterThan(SparsityMask.sparsity(of: [mk[1]]), 0.9)
        XCTAssertLessThan(SparsityMask.sparsity(of: [mk[0]]), 0.5)
        // all-equal values: still exact
        let flat = [[Float](repeating: 1, count: 100)]
        let mf = try SparsityMask.global(flat, shapes: [MaskShape(rows: 10, cols: 10, reduction: .rows)], sparsity: 0.33, pattern: .unstructured)
        XCTAssertEqual(mf[0].filter { !$0 }.count, 33)
        // gradual schedule: monotone masks
        let a = try SparsityMask.global(values, shapes: shapes, sparsity: 0.3, pattern: .unstructured)
        let b = try SparsityMask.global(values, shapes: shapes, sparsity: 0.6, pattern: .unstructured, previous: a)
        for (x, y) in zip(a, b) { for (kx, ky) in zip(x, y) where !kx { XCTAssertFalse(ky) } }
        XCTAssertEqual(SparsityMask.cubicSchedule(step: 0, endStep: 100, finalSparsity: 0.8), 0)
        XCTAssertEqual(SparsityMask.cubicSchedule(step: 50, endStep: 100, finalSparsity: 0.8), 0.8 * (1 - 0.125), accuracy: 1e-12)
        XCTAssertEqual(SparsityMask.cubicSchedule(step: 100, endStep: 100, finalSparsity: 0.8), 0.8)
        XCTAssertEqual(SparsityMask.cubicSchedule(step: 300, endStep: 100, finalSparsity: 0.8), 0.8)
    }

    func testTwoFourMaskAlongReductionAxis() throws {
        let shapes = [MaskShape(rows: 8, cols: 12, reduction: .rows), MaskShape(rows: 8, cols: 12, reduction: .columns)]
        let values = shapes.enumerated().map { randomFloats($0.element.count, seed: 400 + UInt64($0.offset)) }
        let mk = try SparsityMask.global(values, shapes: shapes, sparsity: 0.5, pattern: .nm(n: 2, m: 4))
        XCTAssertEqual(SparsityMask.sparsity(of: mk), 0.5)
        // V1 (fc1, z·V1): groups of 4 consecutive rows in each column
        for c in 0..<12 { for g in stride(from: 0, to: 8, by: 4) {
            XCTAssertEqual((g..<(g + 4)).filter { mk[0][$0 * 12 + c] }.count, 2)
        } }
        // V2 (fc2, h·V2ᵀ): groups of 4 consecutive columns in each row
        for r in 0..<8 { for g in stride(from: 0, to: 12, by: 4) {
            XCTAssertEqual((g..<(g + 4)).filter { mk[1][r * 12 + $0] }.count, 2)
        } }
        // the kept two are the largest of each group
        for r in 0..<8 { for g in stride(from: 0, to: 12, by: 4) {
            let kept = (g..<(g + 4)).filter { mk[1][r * 12 + $0] }.map { abs(values[1][r * 12 + $0]) }
            let dropped = (g..<(g + 4)).filter { !mk[1][r * 12 + $0] }.map { abs(values[1][r * 12 + $0]) }
            XCTAssertGreaterThanOrEqual(kept.min()!, dropped.max()!)
        } }
        // an intermediate point of the gradual schedule stays within the final pattern
        let half = try SparsityMask.global(values, shapes: shapes, sparsity: 0.25, pattern: .nm(n: 2, m: 4))
        XCTAssertEqual(SparsityMask.sparsity(of: half), 0.25)
        let fin = try SparsityMask.global(values, shapes: shapes, sparsity: 0.5, pattern: .nm(n: 2, m: 4), previous: half)
        XCTAssertEqual(SparsityMask.sparsity(of: fin), 0.5)
        XCTAssertThrowsError(try SparsityMask.global(values, shapes: shapes, sparsity: 0.6, pattern: .nm(n: 2, m: 4)))
    }

    func testBlockMaskIsExact() throws {
        let shapes = [MaskShape(rows: 8, cols: 16, reduction: .rows), MaskShape(rows: 8, cols: 16, reduction: .columns)]
        let values = shapes.enumerated().map { randomFloats($0.element.count, seed: 500 + UInt64($0.offset)) }
        for (br, bc) in [(1, 8), (4, 4)] {
            let mk = try SparsityMask.global(values, shapes: shapes, sparsity: 0.75, pattern: .block(rows: br, cols: bc))
            XCTAssertEqual(SparsityMask.sparsity(of: mk), 0.75)
            for (i, m) in mk.enumerated() {  // every tile all kept or all pruned
                for r0 in stride(from: 0, to: 8, by: br) { for c0 in stride(from: 0, to: 16, by: bc) {
                    let s = Set((r0..<(r0 + br)).flatMap { r in (c0..<(c0 + bc)).map { m[r * 16 + $0] } })
                    XCTAssertEqual(s.count, 1, "matrix \(i) tile \(r0),\(c0)")
                } }
            }
        }
    }

    // MARK: end to end

    func testReconstructionReducesErrorAndIsDeterministic() throws {
        let (model, calib) = tinyProblem(rows: 512)
        var o = CompressionOptions()
        o.mlpBudget = 0.35; o.steps = 150; o.batchRows = 128; o.learningRate = 3e-3; o.seed = 11; o.threads = 2
        o.sparsity = 0.5
        let (m1, rep) = try FipsCompressor.compress(model, calibration: calib, options: o)
        let (m2, _) = try FipsCompressor.compress(model, calibration: calib, options: o)
        print(rep)
        for b in rep.blocks { XCTAssertLessThan(b.mseAfter, b.mseBefore, "block \(b.index)") }
        XCTAssertEqual(m1.tensors, m2.tensors, "two runs with the same seed differ")
        // layout and semantics
        let g = rep.groups[0]
        XCTAssertEqual(g.sparsity, 0.5)
        for i in 0..<2 {
            XCTAssertNil(m1.tensors[TensorNames.block(i, "mlp.fc1.weight")])
            XCTAssertNil(m1.tensors[TensorNames.block(i, "mlp.fc2.weight")])
            XCTAssertEqual(m1[TensorNames.block(i, "mlp.fc1.U")].shape, [16, g.rank])
            XCTAssertEqual(m1[TensorNames.block(i, "mlp.fc2.V")].shape, [g.rank, 40])
            XCTAssertEqual(m1[TensorNames.block(i, "mlp.fc1.U")], m1[TensorNames.block(0, "mlp.fc2.U")])  // shared basis
            let y = factoredMLP(calib.inputs[i], m1, block: i)
            XCTAssertEqual(mse(y, calib.outputs[i]), rep.blocks[i].mseAfter, accuracy: 1e-3 * rep.blocks[i].mseAfter)
        }
        let zeros = (0..<2).reduce(0) { acc, i in
            acc + m1[TensorNames.block(i, "mlp.fc1.V")].data.filter { $0 == 0 }.count + m1[TensorNames.block(i, "mlp.fc2.V")].data.filter { $0 == 0 }.count
        }
        XCTAssertEqual(zeros, 2 * 2 * g.rank * 40 / 2)
        XCTAssertEqual(g.weightsAfter, FipsBudget.fipsParameters(d: 16, m: 40, blocks: 2, rank: g.rank, sparsity: 0.5))
        // a different seed gives a different (but also improved) result
        o.seed = 12
        let (m3, _) = try FipsCompressor.compress(model, calibration: calib, options: o)
        XCTAssertNotEqual(m1.tensors, m3.tensors)
    }

    func testTwoFourEndToEnd() throws {
        let (model, calib) = tinyProblem(rows: 256)
        var o = CompressionOptions()
        o.ranks = [16]; o.sparsity = 0.5; o.pattern = .nm(n: 2, m: 4); o.steps = 40; o.batchRows = 64; o.groups = [[0, 1]]
        let (out, rep) = try FipsCompressor.compress(model, calibration: calib, options: o)
        XCTAssertEqual(rep.groups[0].sparsity, 0.5)
        let v1 = out[TensorNames.block(1, "mlp.fc1.V")]
        for c in 0..<40 { for g in stride(from: 0, to: 16, by: 4) {
            XCTAssertLessThanOrEqual((g..<(g + 4)).filter { v1.data[$0 * 40 + c] != 0 }.count, 2)
        } }
        o.sparsity = 0.75
        XCTAssertThrowsError(try FipsCompressor.compress(model, calibration: calib, options: o))
    }

    func testSVDBaselineMatchesParameterCount() throws {
        let (model, calib) = tinyProblem(rows: 128)
        var o = CompressionOptions()
        o.steps = 20; o.batchRows = 64; o.mlpBudget = 0.5
        let (fm, fr) = try FipsCompressor.compress(model, calibration: calib, options: o)
        o.method = .svd
        let (sm, sr) = try FipsCompressor.compress(model, calibration: calib, options: o)
        // one rank step of the baseline: 2 blocks × 2 layers × (d + m)
        let step = 4 * (16 + 40)
        XCTAssertLessThanOrEqual(abs(fr.mlpWeightsAfter - sr.mlpWeightsAfter), step)
        XCTAssertLessThanOrEqual(sr.mlpWeightsAfter, sr.mlpWeightsBefore / 2)
        XCTAssertLessThanOrEqual(fr.mlpWeightsAfter, fr.mlpWeightsBefore / 2)
        // FiPS shares U across layers; the baseline does not
        XCTAssertEqual(fm[TensorNames.block(0, "mlp.fc1.U")], fm[TensorNames.block(1, "mlp.fc2.U")])
        XCTAssertNotEqual(sm[TensorNames.block(0, "mlp.fc1.U")], sm[TensorNames.block(0, "mlp.fc2.U")])
        for i in 0..<2 {
            let y = factoredMLP(calib.inputs[i], sm, block: i)
            XCTAssertEqual(mse(y, calib.outputs[i]), sr.blocks[i].mseAfter, accuracy: 1e-3 * sr.blocks[i].mseAfter)
        }
        // and at a DINOv2-S group of 4 the counts agree within one rank step too
        let k = try FipsBudget.svdRank(budget: 0.5, sparsity: 0.5, d: 384, m: 1536)
        let r = try FipsBudget.fipsRank(budget: 0.5, sparsity: 0.5, d: 384, m: 1536, blocks: 4)
        let diff = abs(FipsBudget.fipsParameters(d: 384, m: 1536, blocks: 4, rank: r, sparsity: 0.5)
            - FipsBudget.svdParameters(d: 384, m: 1536, blocks: 4, rank: k, sparsity: 0.5))
        XCTAssertLessThanOrEqual(diff, 8 * (384 + 768))
    }

    func testErrors() throws {
        var (model, calib) = tinyProblem(rows: 32)
        var o = CompressionOptions()
        o.steps = 0
        o.groups = [[0, 2]]
        XCTAssertThrowsError(try FipsCompressor.compress(model, calibration: calib, options: o)) { e in
            guard case CompressionError.invalidGroups = e else { return XCTFail("\(e)") }
            XCTAssertTrue("\(e)".contains("block 2 does not exist"), "\(e)")
        }
        o.groups = [[0, 1], [1]]
        XCTAssertThrowsError(try FipsCompressor.compress(model, calibration: calib, options: o))
        o.groups = nil
        // block 1 with a wider MLP than block 0
        model.tensors[TensorNames.block(1, "mlp.fc1.weight")] = tensor([48, 16], seed: 1)
        model.tensors[TensorNames.block(1, "mlp.fc2.weight")] = tensor([16, 48], seed: 2)
        model.tensors[TensorNames.block(1, "mlp.fc1.bias")] = tensor([48], seed: 3)
        XCTAssertThrowsError(try FipsCompressor.compress(model, calibration: calib, options: o)) { e in
            guard case CompressionError.widthMismatch = e else { return XCTFail("\(e)") }
            XCTAssertTrue("\(e)".contains("block 0 has width 16 and MLP width 40 but block 1 has 16 and 48"), "\(e)")
        }
        // separate groups are fine
        o.groups = [[0], [1]]
        o.mlpBudget = 0.5
        XCTAssertNoThrow(try FipsCompressor.compress(model, calibration: calib, options: o))
        // calibration missing a block
        calib.inputs.removeLast()
        XCTAssertThrowsError(try FipsCompressor.compress(model, calibration: calib, options: o))
    }
}

