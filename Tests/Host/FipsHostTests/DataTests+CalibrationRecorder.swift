import Foundation
import XCTest
import FipsArtifact
import FipsData
import FipsHostModel
import FipsImage
import FipsViT
import FipsTestSupport

/// FipsData: the calibration recorder (DataTests, continued).
extension DataTests {
    // MARK: calibration recorder

    func testCalibrationRecorderShapesAndDeterminism() throws {
        let model = makeTinyModel(seed: 9)
        let c = model.config, d = c.dim, T = c.tokenCount  // 5 tokens
        let n = 7
        let set = TensorImageSet(tensors: (0..<n).map { randomFloats(3 * c.imageSize * c.imageSize, seed: UInt64(40 + $0)) })
        var o = CalibrationRecorder.Options()
        o.tokensPerImage = 3
        o.batch = 3
        o.seed = 42
        let (acts, rep) = try CalibrationRecorder.record(model, images: set, options: o)
        XCTAssertEqual(acts.inputs.count, c.depth)
        XCTAssertEqual(acts.outputs.count, c.depth)
        for b in 0..<c.depth {
            XCTAssertEqual(acts.inputs[b].shape, [n * 3, d])
            XCTAssertEqual(acts.outputs[b].shape, [n * 3, d])
        }
        XCTAssertEqual(rep.rowsPerBlock, n * 3)
        XCTAssertEqual(rep.bytes, 4 * n * 3 * d * 2 * c.depth)
        XCTAssertEqual(acts.bytes, rep.bytes)

        // Same seed → identical; another seed → other tokens.
        let (again, _) = try CalibrationRecorder.record(model, images: set, options: o)
        XCTAssertEqual(again.inputs, acts.inputs)
        XCTAssertEqual(again.outputs, acts.outputs)
        var o2 = o
        o2.seed = 43
        XCTAssertNotEqual(try CalibrationRecorder.record(model, images: set, options: o2).0.inputs, acts.inputs)

        // The picked rows are the rows of a full recording (all tokens), any batch size.
        var full = o
        full.tokensPerImage = 100
        full.batch = 2
        let (all, _) = try CalibrationRecorder.record(model, images: set, options: full)
        XCTAssertEqual(all.inputs[0].shape, [n * T, d])
        for i in 0..<n {
            let picks = CalibrationRecorder.tokens(image: i, tokenCount: T, keep: 3, seed: 42)
            XCTAssertEqual(picks.first, 0)  // CLS always kept
            XCTAssertEqual(Set(picks).count, 3)
            for b in 0..<c.depth {
                for (j, t) in picks.enumerated() {
                    let got = Array(acts.inputs[b].data[((i * 3 + j) * d)..<((i * 3 + j + 1) * d)])
                    let want = Array(all.inputs[b].data[((i * T + t) * d)..<((i * T + t + 1) * d)])
                    XCTAssertLessThan(Similarity.maxAbsDifference(got, want), 1e-5)
                    let gotOut = Array(acts.outputs[b].data[((i * 3 + j) * d)..<((i * 3 + j + 1) * d)])
                    let wantOut = Array(all.outputs[b].data[((i * T + t) * d)..<((i * T + t + 1) * d)])
                    XCTAssertLessThan(Similarity.maxAbsDifference(gotOut, wantOut), 1e-5)
                }
            }
        }

        // Output = fc2(GELU(fc1(input))), before LayerScale.
        for b in 0..<c.depth {
            let w1 = model[TensorNames.block(b, "mlp.fc1.weight")].data, b1 = model[TensorNames.block(b, "mlp.fc1.bias")].data
            let w2 = model[TensorNames.block(b, "mlp.fc2.weight")].data, b2 = model[TensorNames.block(b, "mlp.fc2.bias")].data
            for r in [0, 4, n * 3 - 1] {
                let x = Array(acts.inputs[b].data[(r * d)..<((r + 1) * d)])
                var h = [Double](repeating: 0, count: c.mlpDim)
                for j in 0..<c.mlpDim {
                    var s = Double(b1[j])
                    for k in 0..<d { s += Double(w1[j * d + k]) * Double(x[k]) }
                    h[j] = 0.5 * s * (1 + erf(s / 2.0.squareRoot()))
                }
                for k in 0..<d {
                    var s = Double(b2[k])
                    for j in 0..<c.mlpDim { s += Double(w2[k * c.mlpDim + j]) * h[j] }
                    XCTAssertEqual(Double(acts.outputs[b].data[r * d + k]), s, accuracy: 1e-4)
                }
            }
        }
    }
}
