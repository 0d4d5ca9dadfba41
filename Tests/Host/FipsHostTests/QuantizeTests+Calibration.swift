import Foundation
import XCTest
import FipsArtifact
import FipsData
import FipsHostModel
import FipsArtifactWriter
import FipsQuantize
import FipsTestSupport

/// FipsQuantize: input statistics, activation scales and the calibration pass (QuantizeTests, continued).
extension QuantizeTests {
    // MARK: statistics and activation scales

    func testInputStatisticsHessianEqualsNaiveProduct() {
        let cols = 37
        let parts = [(200, 1), (1, 1), (131, 2)]  // rows, threads
        let total = parts.reduce(0) { $0 + $1.0 }
        let x = Self.gaussian(total * cols, seed: 41)
        let s = InputStatistics(cols: cols, histogramBins: 1024)
        var at = 0
        x.withUnsafeBufferPointer { xb in
            for (r, threads) in parts {
                s.observe(xb.baseAddress! + at * cols, rows: r, cols: cols, threads: threads)
                at += r
            }
        }
        XCTAssertEqual(s.tokens, total)
        let h = s.hessian, ref = Self.naiveHessian(x, rows: total, cols: cols)
        for i in 0..<(cols * cols) { XCTAssertEqual(h[i], ref[i], accuracy: 1e-4 * max(1, abs(ref[i]))) }
        for i in 0..<cols { for j in 0..<cols { XCTAssertEqual(h[i * cols + j], h[j * cols + i]) } }
        XCTAssertEqual(s.min, x.min()!)
        XCTAssertEqual(s.max, x.max()!)
        XCTAssertEqual(s.histogram.total, UInt64(total * cols))
        XCTAssertEqual(s.histogram.amax, x.map(abs).max()!)
        let noH = InputStatistics(cols: cols, hessian: false)
        x.withUnsafeBufferPointer { noH.observe($0.baseAddress!, rows: total, cols: cols) }
        XCTAssertTrue(noH.hessian.isEmpty)
        XCTAssertEqual(noH.histogram.amax, s.histogram.amax)
    }

    func testHistogramRebinningDoesNotDependOnObservationOrder() {
        let small = Self.gaussian(5000, seed: 51).map { $0 * 0.01 }
        let large = Self.gaussian(5000, seed: 52).map { $0 * 30 }
        var a = AbsHistogram(binCount: 4096), b = AbsHistogram(binCount: 4096)
        small.withUnsafeBufferPointer { a.add($0.baseAddress!, count: $0.count) }
        large.withUnsafeBufferPointer { a.add($0.baseAddress!, count: $0.count) }
        large.withUnsafeBufferPointer { b.add($0.baseAddress!, count: $0.count) }
        small.withUnsafeBufferPointer { b.add($0.baseAddress!, count: $0.count) }
        XCTAssertEqual(a, b)
    }

    func testActivationCalibratorsOnGaussianWithOutliers() {
        // 200 000 N(0, 1) values and 10 outliers at ±60 (a ViT's massive
        // activations in miniature): the max is useless as a clip.
        let n = 200_000
        var x = Self.gaussian(n, seed: 61)
        for i in 0..<10 { x[i * 997] = i % 2 == 0 ? 60 : -60 }
        let s = InputStatistics(cols: 1000, hessian: false)
        x.withUnsafeBufferPointer { s.observe($0.baseAddress!, rows: n / 1000, cols: 1000) }
        XCTAssertEqual(s.min, -60)
        XCTAssertEqual(s.max, 60)

        let maxRange = ActivationCalibrator.range(s, method: .absMax)
        XCTAssertEqual(maxRange.clip, 60)
        XCTAssertEqual(maxRange.amax, 60)

        let p99 = ActivationCalibrator.range(s, method: .percentile(99))
        XCTAssertEqual(p99.clip, 2.5758, accuracy: 0.03)           // |N(0,1)| 99th percentile
        XCTAssertEqual(p99.scale, p99.clip / 127)
        XCTAssertEqual(p99.clippedFraction, 0.01, accuracy: 0.001)
        let p50 = ActivationCalibrator.range(s, method: .percentile(50))
        XCTAssertEqual(p50.clip, 0.6745, accuracy: 0.01)
        let p9999 = ActivationCalibrator.range(s, method: .percentile(99.99))
        XCTAssertGreaterThan(p9999.clip, 3.5)
        XCTAssertLessThan(p9999.clip, 5)

        let mse = ActivationCalibrator.range(s, method: .mse)
        XCTAssertLessThan(mse.clip, 60)
        XCTAssertGreaterThan(mse.clip, 3)
        XCTAssertLessThan(mse.meanSquaredError, maxRange.meanSquaredError)
        XCTAssertLessThanOrEqual(mse.meanSquaredError, p9999.meanSquaredError)
        XCTAssertEqual(mse.absMaxMeanSquaredError, maxRange.meanSquaredError)

        // The histogram's error model against quantising the samples directly.
        for clip in [mse.clip, Float(2), Float(60)] {
            let sc = clip / 127
            var direct = 0.0
            for v in x {
                let q = sc * min(127, max(-127, (v / sc).rounded(.toNearestOrEven)))
                direct += Double((v - q) * (v - q))
            }
            direct /= Double(n)
            XCTAssertEqual(s.histogram.meanSquaredError(clip: clip), direct, accuracy: 0.03 * direct, "clip \(clip)")
        }
    }

    // MARK: calibration pass

    /// makeTinyModel's block 1 MLP replaced by factors of rank 6 (fc1) and 5 (fc2).
    func tinyFactorisedModel() -> ViTModel {
        var m = makeTinyModel(seed: 3, classes: 3, pooling: .clsAndPatchMean)
        let d = m.config.dim, h = m.config.mlpDim
        let b = { TensorNames.block(1, $0) }
        m.tensors[b("mlp.fc1.weight")] = nil
        m.tensors[b("mlp.fc2.weight")] = nil
        m.tensors[b("mlp.fc1.U")] = HostTensor(shape: [d, 6], data: randomFloats(d * 6, seed: 1, scale: 0.3))
        m.tensors[b("mlp.fc1.V")] = HostTensor(shape: [6, h], data: randomFloats(6 * h, seed: 2, scale: 0.3))
        m.tensors[b("mlp.fc2.U")] = HostTensor(shape: [d, 5], data: randomFloats(d * 5, seed: 3, scale: 0.3))
        m.tensors[b("mlp.fc2.V")] = HostTensor(shape: [5, h], data: randomFloats(5 * h, seed: 4, scale: 0.3))
        XCTAssertNil(m.validate())
        return m
    }

    func testCalibrationPassReportsEveryLinearLayerOfATinyModel() throws {
        let model = tinyFactorisedModel()
        let c = model.config, per = c.channels * c.imageSize * c.imageSize
        let images = TensorImageSet(tensors: (0..<3).map { randomFloats(per, seed: 70 + UInt64($0)) })
        var o = CalibrationPass.Options()
        o.batch = 2
        o.histogramBins = 1024
        let stats = try CalibrationPass.run(model, images: images, options: o)
        let expected = CalibrationPass.expectedLayers(model)
        XCTAssertEqual(expected.map { $0.name }, [
            "blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2",
            "blocks.1.attn.qkv", "blocks.1.attn.proj", "blocks.1.mlp.fc1.U", "blocks.1.mlp.fc1.V",
            "blocks.1.mlp.fc2.V", "blocks.1.mlp.fc2.U", "head"])
        XCTAssertEqual(expected.map { $0.cols }, [16, 16, 16, 40, 16, 16, 16, 6, 40, 5, 32])
        XCTAssertEqual(Set(stats.keys), Set(expected.map { $0.name }))
        for (name, cols) in expected {
            let s = try XCTUnwrap(stats[name], name)
            XCTAssertEqual(s.cols, cols, name)
            XCTAssertEqual(s.tokens, name == "head" ? 3 : 3 * c.tokenCount, name)
            XCTAssertEqual(s.hessian.count, cols * cols, name)
            XCTAssertTrue(s.histogram.amax > 0, name)
        }
        // The head's input is the pooled [CLS ‖ patch mean] of the final features.
        let f = try FeatureExtractor.extract(model, images: images, batch: 3, threads: 1, patchMean: true)
        let hx = f.headInput(.clsAndPatchMean)
        let ref = Self.naiveHessian(hx, rows: 3, cols: 32)
        let h = stats["head"]!.hessian
        for i in 0..<(32 * 32) { XCTAssertEqual(h[i], ref[i], accuracy: 1e-4 * max(1, abs(ref[i]))) }

        // Only the selected layers, no Hessians.
        o.hessians = false
        o.layers = { $0.hasSuffix("attn.qkv") }
        let some = try CalibrationPass.run(model, images: images, options: o)
        XCTAssertEqual(Set(some.keys), ["blocks.0.attn.qkv", "blocks.1.attn.qkv"])
        XCTAssertTrue(some["blocks.0.attn.qkv"]!.hessian.isEmpty)
    }

    func testCalibrationPassOnRealModel() throws {
        let path = TestPaths.data.appendingPathComponent("dinov2_s.fips").path
        try TestPaths.require(path)
        try TestPaths.require(TestPaths.photos.path)
        let model = try ArtifactReaderHost.load(path: path)
        let folder = try ImageFolder.open(TestPaths.photos.path, config: model.config)
        var o = CalibrationPass.Options()
        o.batch = 2
        let stats = try CalibrationPass.run(model, images: ImageSubset(folder, indices: [0, 1]), options: o)
        let expected = CalibrationPass.expectedLayers(model)
        XCTAssertEqual(expected.count, 4 * model.config.depth + (model.config.hasHead ? 1 : 0))
        XCTAssertEqual(stats.count, expected.count)
        for (name, cols) in expected {
            let s = try XCTUnwrap(stats[name], "missing \(name)")
            XCTAssertEqual(s.cols, cols, name)
            XCTAssertEqual(s.tokens, name == "head" ? 2 : 2 * model.config.tokenCount, name)
            XCTAssertTrue(s.histogram.amax.isFinite && s.histogram.amax > 0, name)
        }
        XCTAssertEqual(stats["blocks.0.mlp.fc2"]?.cols, model.config.mlpDim)
        let h = stats["blocks.11.attn.proj"]!.hessian
        let n = model.config.dim
        XCTAssertTrue((0..<n).allSatisfy { h[$0 * n + $0] >= 0 && h[$0 * n + $0].isFinite })
    }
}
