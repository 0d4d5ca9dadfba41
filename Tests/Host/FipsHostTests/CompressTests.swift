import Foundation
import XCTest
import FipsArtifact
import FipsHostModel
import FipsCompress
import FipsKernels

// MARK: helpers

func tensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> HostTensor {
    HostTensor(shape: shape, data: randomFloats(shape.reduce(1, *), seed: seed, scale: scale))
}

func matmul(_ a: [Float], _ b: [Float], _ n: Int, _ k: Int, _ m: Int) -> [Float] {
    var c = [Float](repeating: 0, count: n * m)
    for i in 0..<n { for p in 0..<k { let x = a[i * k + p]; if x == 0 { continue }; for j in 0..<m { c[i * m + j] += x * b[p * m + j] } } }
    return c
}

func gelu(_ x: Float) -> Float { 0.5 * x * (1 + erf(x / Float(2).squareRoot())) }

/// The original MLP: y = GELU(x·fc1ᵀ + b1)·fc2ᵀ + b2, x [N, d].
func denseMLP(_ x: HostTensor, fc1: HostTensor, b1: HostTensor, fc2: HostTensor, b2: HostTensor) -> HostTensor {
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
func factoredMLP(_ x: HostTensor, _ model: ViTModel, block i: Int) -> HostTensor {
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

func mse(_ a: HostTensor, _ b: HostTensor) -> Double {
    zip(a.data, b.data).reduce(0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(a.count)
}

/// A tiny model plus teacher-forced calibration of its MLPs. Inputs are anisotropic
/// (a few strong directions), as LN outputs of a real ViT are.
func tinyProblem(rows: Int = 384, seed: UInt64 = 3) -> (ViTModel, MLPCalibration) {
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

}
