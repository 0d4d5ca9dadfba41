import Foundation
import XCTest
import FipsArtifact
import FipsData
import FipsHostModel
import FipsArtifactWriter
import FipsImage
import FipsViT
import FipsTestSupport

/// FipsData: the logistic head, top-k metrics and evaluation (DataTests, continued).
extension DataTests {
    // MARK: logistic regression

    func syntheticProblem(n: Int, d: Int, classes C: Int, seed: UInt64) -> ([Float], [Int]) {
        // Class centres far apart on random directions, small noise, and a
        // large offset and scale per feature so standardisation matters.
        var rng = SplitMix64(seed: seed)
        let centres = (0..<(C * d)).map { _ in Float(rng.nextUnit() * 8 - 4) }
        var x = [Float](), y = [Int]()
        for i in 0..<n {
            let c = i % C
            for k in 0..<d {
                let v = centres[c * d + k] + Float(rng.nextUnit() - 0.5)
                x.append(v * Float(k + 1) + Float(10 * k))
            }
            y.append(c)
        }
        return (x, y)
    }

    func testLogisticHeadSeparatesSyntheticProblem() {
        let (n, d, C) = (300, 6, 3)
        let (x, y) = syntheticProblem(n: n, d: d, classes: C, seed: 3)
        var o = LogisticHead.Options()
        o.l2 = 1e-4
        let (head, rep) = LogisticHead.train(features: x, count: n, dim: d, labels: y, classes: C, options: o)
        XCTAssertEqual(rep.trainAccuracy, 1.0)
        XCTAssertTrue(rep.converged, "L-BFGS stopped after \(rep.iterations) iterations, max |grad| \(rep.gradientNorm)")
        // The stored head acts on raw features (standardisation folded in).
        XCTAssertEqual(Metrics.topK(head.logits(x, count: n), classes: C, labels: y, k: 1), 1.0)
        // Unseen points of the same distribution.
        let (x2, y2) = syntheticProblem(n: 90, d: d, classes: C, seed: 3)
        XCTAssertEqual(Metrics.topK(head.logits(x2, count: 90), classes: C, labels: y2, k: 1), 1.0)
        // Deterministic.
        let (again, _) = LogisticHead.train(features: x, count: n, dim: d, labels: y, classes: C, options: o)
        XCTAssertEqual(head.weight, again.weight)
        XCTAssertEqual(head.bias, again.bias)
    }

    /// --prototypes: the stored linear head picks exactly the class whose centred mean direction
    /// is nearest by cosine, for points anywhere (not only near a mean), and separates well-apart
    /// classes from a few examples.
    func testPrototypeHeadIsTheNearestCentredDirection() {
        let (n, d, C) = (15, 6, 3)
        let (x, y) = syntheticProblem(n: n, d: d, classes: C, seed: 5)
        let head = PrototypeHead.fit(features: x, count: n, dim: d, labels: y, classes: C)
        let mu = (0..<d).map { k in (0..<n).reduce(0.0) { $0 + Double(x[$1 * d + k]) } / Double(n) }
        var dir = [[Double]](repeating: [Double](repeating: 0, count: d), count: C)
        for i in 0..<n {
            let e = (0..<d).map { Double(x[i * d + $0]) - mu[$0] }
            let norm = e.reduce(0) { $0 + $1 * $1 }.squareRoot()
            for k in 0..<d { dir[y[i]][k] += e[k] / norm }
        }
        var rng = SplitMix64(seed: 9)
        let probes = (0..<(200 * d)).map { _ in Float(rng.nextUnit() * 120 - 20) }
        let logits = head.logits(probes, count: 200)
        for i in 0..<200 {
            let e = (0..<d).map { Double(probes[i * d + $0]) - mu[$0] }
            let cosine = (0..<C).map { c in
                zip(e, dir[c]).reduce(0) { $0 + $1.0 * $1.1 } / dir[c].reduce(0) { $0 + $1 * $1 }.squareRoot()
            }
            let nearest = cosine.indices.max { cosine[$0] < cosine[$1] }!
            let picked = (0..<C).max { logits[i * C + $0] < logits[i * C + $1] }!
            XCTAssertEqual(picked, nearest, "probe \(i): cosines \(cosine)")
        }
        let (x2, y2) = syntheticProblem(n: 90, d: d, classes: C, seed: 5)   // 75 points beyond the 15 examples
        XCTAssertEqual(Metrics.topK(head.logits(x2, count: 90), classes: C, labels: y2, k: 1), 1.0)
    }

    func testLogisticGradientMatchesFiniteDifferences() {
        let (n, d, C) = (40, 5, 4)
        var rng = SplitMix64(seed: 11)
        let x = (0..<(n * d)).map { _ in rng.nextUnit() * 2 - 1 }
        let y = (0..<n).map { $0 % C }
        let p = (0..<(C * d + C)).map { _ in rng.nextUnit() - 0.5 }
        let l2 = 0.05
        let (_, g) = LogisticHead.objective(p, x: x, n: n, dim: d, labels: y, classes: C, l2: l2)
        let h = 1e-6
        var worst = 0.0
        for k in 0..<p.count {
            var a = p, b = p
            a[k] += h; b[k] -= h
            let fd = (LogisticHead.objective(a, x: x, n: n, dim: d, labels: y, classes: C, l2: l2).loss
                      - LogisticHead.objective(b, x: x, n: n, dim: d, labels: y, classes: C, l2: l2).loss) / (2 * h)
            worst = max(worst, abs(fd - g[k]))
        }
        XCTAssertLessThan(worst, 1e-7)
    }

    func testMetricsTopK() {
        let logits: [Float] = [0.1, 0.9, 0.0,   0.5, 0.2, 0.3,   0.2, 0.2, 0.6]
        XCTAssertEqual(Metrics.topK(logits, classes: 3, labels: [1, 2, 0], k: 1), 1.0 / 3.0, accuracy: 1e-12)
        XCTAssertEqual(Metrics.topK(logits, classes: 3, labels: [1, 2, 0], k: 2), 1.0, accuracy: 1e-12)
    }

    /// Head on a tiny model end to end: features → train → install → write →
    /// load → the executor's logits equal the head's logits on the CLS features.
    func testHeadInstalledInArtifactMatchesExecutor() throws {
        let model = makeTinyModel(seed: 5)
        let c = model.config
        let n = 24
        let inputs = (0..<n).map { randomFloats(3 * c.imageSize * c.imageSize, seed: UInt64(100 + $0)) }
        let set = TensorImageSet(tensors: inputs, labels: (0..<n).map { $0 % 3 }, classNames: ["a", "b", "c"])
        for pooling in [ViTConfig.HeadPooling.cls, .clsAndPatchMean] {
            let f = try FeatureExtractor.extract(model, images: set, batch: 5, threads: 2, patchMean: pooling == .clsAndPatchMean)
            XCTAssertEqual(f.cls.count, n * c.dim)
            let x = f.headInput(pooling)
            let dim = x.count / n
            let (head, _) = LogisticHead.train(features: x, count: n, dim: dim, labels: set.labels!, classes: 3)
            var withHead = model
            head.install(into: &withHead, labels: set.classNames, pooling: pooling)
            let dir = TestPaths.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: dir) }
            let path = dir.appendingPathComponent("head.fips").path
            try ArtifactWriter.write(withHead, precision: .f32, to: path)
            let loaded = try ArtifactReaderHost.load(path: path)
            XCTAssertEqual(loaded.labels, ["a", "b", "c"])
            XCTAssertEqual(loaded.config.numClasses, 3)
            let g = try FeatureExtractor.extract(loaded, images: set, batch: 8, threads: 1)
            let expected = head.logits(x, count: n)
            XCTAssertLessThan(Similarity.maxAbsDifference(g.logits!, expected), 1e-4)
            let rep = try Evaluation.run(model: loaded, images: set, reference: model, batch: 7, threads: 1)
            XCTAssertEqual(rep.top1!, Metrics.topK(expected, classes: 3, labels: set.labels!, k: 1), accuracy: 1e-12)
            XCTAssertEqual(rep.top5!, 1.0)
            XCTAssertEqual(rep.meanClsCosine!, 1.0, accuracy: 1e-9)
            XCTAssertEqual(rep.meanPatchCosine!, 1.0, accuracy: 1e-9)
            XCTAssertTrue(rep.json().hasPrefix("{\"images\": 24, \"top1\": "))
        }
    }

    func testEvaluationCosineDropsForADifferentModel() throws {
        let a = makeTinyModel(seed: 5), b = makeTinyModel(seed: 6)
        let c = a.config
        let set = TensorImageSet(tensors: (0..<6).map { randomFloats(3 * c.imageSize * c.imageSize, seed: UInt64($0)) })
        let rep = try Evaluation.run(model: a, images: set, reference: b, batch: 4, threads: 1)
        XCTAssertNil(rep.top1)
        XCTAssertLessThan(rep.meanClsCosine!, 0.99)
        XCTAssertLessThan(rep.meanPatchCosine!, 0.99)
        XCTAssertLessThanOrEqual(rep.minClsCosine!, rep.meanClsCosine!)
    }

    func testCachedReferenceOutputsMatchLiveReference() throws {
        let a = makeTinyModel(seed: 5), b = makeTinyModel(seed: 6)
        let c = a.config
        let set = TensorImageSet(tensors: (0..<9).map { randomFloats(3 * c.imageSize * c.imageSize, seed: UInt64(70 + $0)) })
        let live = try Evaluation.run(model: a, images: set, reference: b, batch: 4, threads: 1)
        let all = try Evaluation.referenceOutputs(b, images: set, patchesPerImage: 0, batch: 2, threads: 1)
        XCTAssertEqual(all.patchesPerImage, c.tokenCount - 1)
        let fromAll = try Evaluation.run(model: a, images: set, referenceOutputs: all, batch: 4, threads: 1)
        XCTAssertEqual(fromAll.meanClsCosine!, live.meanClsCosine!, accuracy: 1e-6)
        XCTAssertEqual(fromAll.meanPatchCosine!, live.meanPatchCosine!, accuracy: 1e-6)
        XCTAssertEqual(fromAll.minClsCosine!, live.minClsCosine!, accuracy: 1e-6)
        // A sampled subset: same CLS figures, patch figure from 2 of 4 tokens.
        let some = try Evaluation.referenceOutputs(b, images: set, patchesPerImage: 2, seed: 3, batch: 4, threads: 1)
        XCTAssertEqual(some.patches.count, 9 * 2 * c.dim)
        let fromSome = try Evaluation.run(model: a, images: set, referenceOutputs: some, batch: 4, threads: 1)
        XCTAssertEqual(fromSome.meanClsCosine!, live.meanClsCosine!, accuracy: 1e-6)
        XCTAssertEqual(fromSome.meanPatchCosine!, live.meanPatchCosine!, accuracy: 0.1)
        // File round trip; another key is a miss.
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("ref.cache").path
        try some.save(to: path, key: "k1")
        let back = try XCTUnwrap(ReferenceOutputs.load(from: path, key: "k1"))
        XCTAssertEqual(back.cls, some.cls)
        XCTAssertEqual(back.patches, some.patches)
        XCTAssertEqual(back.patchIndices(image: 4), some.patchIndices(image: 4))
        XCTAssertNil(ReferenceOutputs.load(from: path, key: "k2"))
        XCTAssertNil(ReferenceOutputs.load(from: dir.appendingPathComponent("none").path, key: "k1"))
        // A cache for another image count is refused.
        let fewer = TensorImageSet(tensors: Array(set.tensors.prefix(3)))
        XCTAssertTrue(dataError { try Evaluation.run(model: a, images: fewer, referenceOutputs: some) }.contains("do not match"))
    }
}
