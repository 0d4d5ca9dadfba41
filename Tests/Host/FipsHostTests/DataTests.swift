import Foundation
import XCTest
import FipsArtifact
import FipsData
import FipsHostCore
import FipsImage
import FipsViT
import FipsTestSupport

/// FipsData: datasets, image folders, calibration recording, logistic head, evaluation.
/// Fixture: Tests/Host/FipsHostTests/Fixtures/fmnist (scripts/fixtures/make_fmnist_fixture.py).
/// Fashion-MNIST itself: Debian dataset-fashion-mnist (skips locally when missing).
final class DataTests: XCTestCase {
    static let fmnistFixtures = TestPaths.hostFixtures.appendingPathComponent("fmnist")
    static let imageFixtures = TestPaths.deviceFixtures.appendingPathComponent("images")
    static let trainImages = FashionMNIST.defaultDirectory + "/train-images-idx3-ubyte.gz"
    static let testImages = FashionMNIST.defaultDirectory + "/t10k-images-idx3-ubyte.gz"

    func fixtureBytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: Self.fmnistFixtures.appendingPathComponent(name)))
    }

    func dataError(_ body: () throws -> Any, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try body()
            XCTFail("expected an error", file: file, line: line)
            return ""
        } catch let e as DataError {
            return e.description
        } catch {
            XCTFail("expected DataError, got \(error)", file: file, line: line)
            return ""
        }
    }

    // MARK: idx files

    func testFashionMNISTCountsAndHistogram() throws {
        try TestPaths.require(Self.trainImages)
        try TestPaths.require(Self.testImages)
        let train = try FashionMNIST.load(split: .train)
        let test = try FashionMNIST.load(split: .test)
        XCTAssertEqual(train.count, 60000)
        XCTAssertEqual(test.count, 10000)
        var h = [Int](repeating: 0, count: 10)
        train.labelValues.forEach { h[$0] += 1 }
        XCTAssertEqual(h, [Int](repeating: 6000, count: 10))
        h = [Int](repeating: 0, count: 10)
        test.labelValues.forEach { h[$0] += 1 }
        XCTAssertEqual(h, [Int](repeating: 1000, count: 10))
        XCTAssertEqual(train.classNames.count, 10)
        XCTAssertEqual(train.classNames[0], "T-shirt/top")
        XCTAssertEqual(train.classNames[9], "Ankle boot")
    }

    /// Expected values printed by scripts/fixtures/make_fmnist_fixture.py, which
    /// reads the same gzip idx file with Python's gzip + numpy.frombuffer:
    /// labels[:10] = [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]; image 0: sum 76247,
    /// a[14,14] = 217, a[5,20] = 23, a[27,27] = 0.
    func testFirstTrainingImageMatchesNumpy() throws {
        try TestPaths.require(Self.trainImages)
        let train = try FashionMNIST.load(split: .train)
        XCTAssertEqual(Array(train.labelValues[0..<10]), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
        let a = train.images[0]
        XCTAssertEqual(a.count, 784)
        XCTAssertEqual(a.reduce(0) { $0 + Int($1) }, 76247)
        XCTAssertEqual(a[14 * 28 + 14], 217)
        XCTAssertEqual(a[5 * 28 + 20], 23)
        XCTAssertEqual(a[27 * 28 + 27], 0)
        XCTAssertEqual(a, try fixtureBytes("train0_28.u8"))
    }

    func testIDXHeaderErrors() throws {
        // A valid 2x3 idx (plain, not gzip: zlib passes it through).
        let ok: [UInt8] = [0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]
        let f = try IDXFile.parse(ok, name: "ok")
        XCTAssertEqual(f.dimensions, [2, 3])
        XCTAssertEqual(f.bytes, [1, 2, 3, 4, 5, 6])
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = dir.appendingPathComponent("plain.idx").path
        FileManager.default.createFile(atPath: p, contents: Data(ok))
        XCTAssertEqual(try IDXFile.load(p).bytes, [1, 2, 3, 4, 5, 6])

        XCTAssertTrue(dataError { try IDXFile.parse([1, 0, 8, 1], name: "x") }.contains("bad magic"))
        XCTAssertTrue(dataError { try IDXFile.parse([0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0], name: "x") }.contains("not unsigned byte"))
        XCTAssertTrue(dataError { try IDXFile.parse(Array(ok.dropLast()), name: "short") }.contains("need 6 bytes"))
        XCTAssertTrue(dataError { try IDXFile.load(dir.appendingPathComponent("missing.gz").path) }.contains("no such file"))
        XCTAssertTrue(dataError { try FashionMNIST.load(split: .train, directory: dir.path) }.contains("no such file"))
    }

    // MARK: model input

    /// FashionMNIST.upsample against PIL: `Image.fromarray(a).resize((224, 224), Image.BICUBIC)`
    /// of the first training image (fixture), every pixel, all three channels.
    func testUpsampleMatchesPIL() throws {
        let src = try fixtureBytes("train0_28.u8")
        let ref = try fixtureBytes("train0_224.u8")
        let img = FashionMNIST.upsample(src, size: 224)
        XCTAssertEqual(img.width, 224)
        XCTAssertEqual(img.height, 224)
        var differing = 0
        for i in 0..<(224 * 224) {
            for c in 0..<3 where img.pixels[3 * i + c] != ref[i] { differing += 1 }
        }
        XCTAssertEqual(differing, 0)

        // The model input: replicated, normalised with the config's mean/std, CHW.
        let ds = FashionMNIST(split: .train, images: [src], labels: [9])
        let c = ViTConfig()
        var x = [Float](repeating: 0, count: 3 * 224 * 224)
        try x.withUnsafeMutableBufferPointer { try ds.write(0, config: c, into: $0.baseAddress!) }
        let mean = [c.mean.0, c.mean.1, c.mean.2], std = [c.std.0, c.std.1, c.std.2]
        for i in [0, 112 * 224 + 112, 224 * 224 - 1, 57 * 224 + 190] {
            for ch in 0..<3 {
                XCTAssertEqual(x[ch * 224 * 224 + i], (Float(ref[i]) / 255 - mean[ch]) / std[ch], accuracy: 1e-6)
            }
        }
    }

    func testProtocolSelections() {
        // Synthetic labels: class = i % 10 for 600 images, then 100 of class 3.
        let labels = (0..<600).map { $0 % 10 } + [Int](repeating: 3, count: 100)
        let ds = FashionMNIST(split: .train, images: [[UInt8]](repeating: [UInt8](repeating: 0, count: 784), count: labels.count),
                              labels: labels)
        let head = ds.firstPerClass(20)
        XCTAssertEqual(head.count, 200)
        XCTAssertEqual(head, Array(0..<200))  // file order
        // A disjoint later subset: the next 20 of each class.
        let next = ds.firstPerClass(20, skipping: 20)
        XCTAssertEqual(next, Array(200..<400))
        XCTAssertTrue(Set(next).isDisjoint(with: head))
        // Only class 3 has more than 60 images (60 + 100): skipping 60 leaves its extra ones alone.
        XCTAssertEqual(ds.firstPerClass(5, skipping: 60).count, 5)
        XCTAssertEqual(ds.firstPerClass(5, skipping: 60), Array(600..<605))
        let calib = ds.calibrationIndices(count: 256, skipPerClass: 20)
        XCTAssertEqual(calib.count, 256)
        XCTAssertTrue(Set(calib).isDisjoint(with: head))
        XCTAssertEqual(Set(calib).count, 256)
        // Deterministic and taken round-robin over classes.
        XCTAssertEqual(calib, ds.calibrationIndices(count: 256, skipPerClass: 20))
        XCTAssertEqual(calib.prefix(10).map { labels[$0] }, Array(0..<10))
    }

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

    // MARK: image folders

    func copyFixture(_ name: String, to dir: URL, as newName: String? = nil) throws {
        try FileManager.default.copyItem(at: Self.imageFixtures.appendingPathComponent(name),
                                         to: dir.appendingPathComponent(newName ?? name))
    }

    func testFolderErrors() throws {
        let c = makeTinyModel().config
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertTrue(dataError { try ImageFolder.open(dir.path, config: c) }.contains("no JPEG or PNG images"))
        XCTAssertTrue(dataError { try ImageFolder.open(dir.appendingPathComponent("nope").path, config: c) }.contains("no such folder"))
        try copyFixture("grey.png", to: dir)
        XCTAssertTrue(dataError { try ImageFolder.open(dir.appendingPathComponent("grey.png").path, config: c) }.contains("not a folder"))
        XCTAssertTrue(dataError { try ImageFolder.openLabelled(dir.path, config: c) }.contains("no class subfolders"))
        // Only undecodable files: an error naming the count.
        let bad = dir.appendingPathComponent("bad")
        try FileManager.default.createDirectory(at: bad, withIntermediateDirectories: true)
        try copyFixture("not_an_image.jpg", to: bad)
        try copyFixture("empty.jpg", to: bad)
        var warnings = [String]()
        XCTAssertTrue(dataError { try ImageFolder.open(bad.path, config: c, warn: { warnings.append($0) }) }
            .contains("none of the 2 images could be decoded"))
        XCTAssertEqual(warnings.count, 3)
    }

    func testUnreadableFolder() throws {
        let c = makeTinyModel().config
        let dir = TestPaths.temporaryDirectory()
        defer { chmod(dir.path, 0o755); try? FileManager.default.removeItem(at: dir) }
        try copyFixture("grey.png", to: dir)
        chmod(dir.path, 0o000)
        // Root reads anything, and CI runs as root: check as `nobody` (real and
        // effective uid; the saved uid 0 lets the test switch back).
        let asRoot = getuid() == 0
        if asRoot { XCTAssertEqual(c_setresuid(65534, 65534, 0), 0) }
        let message = dataError { try ImageFolder.open(dir.path, config: c) }
        if asRoot { XCTAssertEqual(c_setresuid(0, 0, 0), 0) }
        XCTAssertTrue(message.contains("not readable"), message)
    }

    func testFolderSkipsUndecodableFileAndCountsIt() throws {
        let c = ViTConfig()
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try copyFixture("chelsea_q90.jpg", to: dir)
        try copyFixture("grey.png", to: dir)
        try copyFixture("truncated.jpg", to: dir)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try copyFixture("grey.jpg", to: dir.appendingPathComponent("sub"))
        FileManager.default.createFile(atPath: dir.appendingPathComponent("notes.txt").path, contents: Data("x".utf8))
        var warnings = [String]()
        let f = try ImageFolder.open(dir.path, config: c, warn: { warnings.append($0) })
        XCTAssertEqual(f.count, 3)
        XCTAssertEqual(f.skipped.count, 1)
        XCTAssertTrue(f.skipped[0].path.hasSuffix("truncated.jpg"))
        XCTAssertTrue(warnings.contains { $0.contains("truncated.jpg") })
        XCTAssertTrue(warnings.contains { $0.contains("1 of 4 images") })
        XCTAssertNil(f.labels)
        // Not recursive: the subfolder's image is left out.
        XCTAssertEqual(try ImageFolder.open(dir.path, config: c, recursive: false, warn: { _ in }).count, 2)
        // The plain input is the kit's Resize(256) + CenterCrop(224): compare with the PIL fixture.
        let ref = [UInt8](try Data(contentsOf: Self.imageFixtures.appendingPathComponent("chelsea_q90_224.u8")))
        var x = [Float](repeating: 0, count: 3 * 224 * 224)
        let idx = f.files.firstIndex { $0.hasSuffix("chelsea_q90.jpg") }!
        try x.withUnsafeMutableBufferPointer { try f.write(idx, config: c, into: $0.baseAddress!) }
        for i in [0, 5000, 224 * 224 - 1] {
            XCTAssertEqual(x[224 * 224 + i], (Float(ref[3 * i + 1]) / 255 - c.mean.1) / c.std.1, accuracy: 1e-6)
        }
    }

    func testLabelledFolderAndAugmentation() throws {
        let c = makeTinyModel().config
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for cls in ["zebra", "apple"] {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent(cls), withIntermediateDirectories: true)
        }
        try copyFixture("chelsea_q90.jpg", to: dir.appendingPathComponent("zebra"))
        try copyFixture("grey.png", to: dir.appendingPathComponent("apple"))
        try copyFixture("grey.jpg", to: dir.appendingPathComponent("apple"))
        let f = try ImageFolder.openLabelled(dir.path, config: c)
        XCTAssertEqual(f.classNames, ["apple", "zebra"])
        XCTAssertEqual(f.labels!, [0, 0, 1])

        let aug = try ImageFolder.openLabelled(dir.path, config: c, augmentation: Augmentation(seed: 1), augmentedCount: 12)
        XCTAssertEqual(aug.count, 12)
        XCTAssertEqual(aug.labels!, (0..<12).map { [0, 0, 1][$0 % 3] })
        let n = 3 * c.imageSize * c.imageSize
        func input(_ s: ImageFolder, _ i: Int) throws -> [Float] {
            var x = [Float](repeating: 0, count: n)
            try x.withUnsafeMutableBufferPointer { try s.write(i, config: c, into: $0.baseAddress!) }
            return x
        }
        // Reproducible per index, different crops of the same file differ.
        XCTAssertEqual(try input(aug, 5), try input(aug, 5))
        let again = try ImageFolder.openLabelled(dir.path, config: c, augmentation: Augmentation(seed: 1), augmentedCount: 12)
        XCTAssertEqual(try input(aug, 5), try input(again, 5))
        XCTAssertNotEqual(try input(aug, 2), try input(aug, 5))
        // Crops stay inside the image and within the scale range.
        let a = Augmentation(seed: 3)
        for k in 0..<200 {
            let r = a.crop(k: k, width: 300, height: 200)
            XCTAssertTrue(r.x >= 0 && r.y >= 0 && r.x + r.w <= 300 && r.y + r.h <= 200)
            let frac = Double(r.w * r.h) / 60000
            XCTAssertTrue(frac > 0.2 && frac <= 1.0, "crop area fraction \(frac)")
        }
    }

    func testCalibrationSetFromFolderStretchesAndFromFashionMNIST() throws {
        let c = makeTinyModel().config
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try copyFixture("chelsea_q90.jpg", to: dir)
        try copyFixture("grey.png", to: dir)
        let plain = try CalibrationSet.open(dir.path, config: c, count: 10)
        XCTAssertEqual(plain.set.count, 2)
        let stretched = try CalibrationSet.open(dir.path, config: c, count: 10, augment: true, seed: 4)
        XCTAssertEqual(stretched.set.count, 10)
        XCTAssertTrue(stretched.description.contains("stretched to 10"))
        XCTAssertTrue(dataError { try CalibrationSet.open(dir.appendingPathComponent("none").path, config: c) }.contains("no such folder"))

        try TestPaths.require(Self.trainImages)
        let fm = try CalibrationSet.open("fashion-mnist", config: c, count: 256, skipPerClass: 200)
        XCTAssertEqual(fm.set.count, 256)
        XCTAssertNotNil(fm.set.labels)
    }

    /// The CLI end to end on a tiny model: head on a labelled folder, eval with
    /// a reference, and a clean error (no artifact left) for an empty folder.
    func testHeadAndEvalCommands() throws {
        let fips = TestPaths.products.appendingPathComponent("fips")
        try TestPaths.require(fips.path)
        let dir = TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tiny = dir.appendingPathComponent("tiny.fips").path
        try ArtifactWriter.write(makeTinyModel(seed: 2), precision: .f32, to: tiny)
        let data = dir.appendingPathComponent("set")
        for cls in ["cat", "grey"] {
            try FileManager.default.createDirectory(at: data.appendingPathComponent(cls), withIntermediateDirectories: true)
        }
        try copyFixture("chelsea_q90.jpg", to: data.appendingPathComponent("cat"))
        try copyFixture("grey.png", to: data.appendingPathComponent("grey"))
        try copyFixture("grey.jpg", to: data.appendingPathComponent("grey"))
        let out = dir.appendingPathComponent("head.fips").path
        let (rc, stdout, stderr) = try runProcess(fips, ["head", "--model", tiny, "--folder", data.path, "-o", out, "--threads", "1"])
        XCTAssertEqual(rc, 0, stderr)
        XCTAssertTrue(stdout.contains("train top-1: 100.00%"), stdout)
        let loaded = try ArtifactReaderHost.load(path: out)
        XCTAssertEqual(loaded.labels, ["cat", "grey"])

        let (rc2, json, err2) = try runProcess(fips, ["eval", "--model", out, "--folder", data.path, "--reference", tiny, "--json"])
        XCTAssertEqual(rc2, 0, err2)
        XCTAssertTrue(json.hasPrefix("{\"images\": 3, \"top1\": 1.000000, \"top5\": 1.000000, \"mean_cls_cosine\": 1.000000"), json)

        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let out2 = dir.appendingPathComponent("never.fips").path
        let (rc3, _, err3) = try runProcess(fips, ["head", "--model", tiny, "--folder", empty.path, "-o", out2])
        XCTAssertNotEqual(rc3, 0)
        XCTAssertTrue(err3.contains("no class subfolders"), err3)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out2))
    }

    // MARK: real model (skips locally without data)

    func testFashionMNISTFeaturesOnRealModelAreFinite() throws {
        let path = TestPaths.data.appendingPathComponent("dinov2_s.fips").path
        try TestPaths.require(path)
        try TestPaths.require(Self.testImages)
        let model = try ArtifactReaderHost.load(path: path)
        let test = try FashionMNIST.load(split: .test)
        let set = ImageSubset(test, indices: Array(test.firstPerClass(1)))
        XCTAssertEqual(set.labels!.sorted(), Array(0..<10))  // one per class, in file order
        let f = try FeatureExtractor.extract(model, images: set, batch: 5, threads: 2)
        XCTAssertEqual(f.cls.count, 10 * 384)
        XCTAssertTrue(f.cls.allSatisfy { $0.isFinite })
        // The calibration recorder on the real model: 12 blocks of [2 * 8, 384].
        var o = CalibrationRecorder.Options()
        o.tokensPerImage = 8
        let (acts, rep) = try CalibrationRecorder.record(model, images: ImageSubset(set, indices: [0, 1]), options: o)
        XCTAssertEqual(acts.inputs.count, 12)
        XCTAssertEqual(acts.outputs[11].shape, [16, 384])
        XCTAssertEqual(rep.bytes, 4 * 16 * 384 * 2 * 12)
        XCTAssertTrue(acts.outputs.allSatisfy { $0.data.allSatisfy { $0.isFinite } })
    }
}

/// glibc's setresuid (hidden behind _GNU_SOURCE in the Glibc module).
@_silgen_name("setresuid")
func c_setresuid(_ ruid: UInt32, _ euid: UInt32, _ suid: UInt32) -> Int32
