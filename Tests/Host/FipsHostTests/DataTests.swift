import Foundation
import XCTest
import FipsArtifact
import FipsData
import FipsHostModel
import FipsArtifactWriter
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
