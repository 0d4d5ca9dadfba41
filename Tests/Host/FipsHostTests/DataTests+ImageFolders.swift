import Foundation
import XCTest
import FipsArtifact
import FipsData
import FipsHostModel
import FipsArtifactWriter
import FipsImage
import FipsViT
import FipsTestSupport

/// FipsData: image folders, labelled folders, augmentation, the head and eval commands (DataTests, continued).
extension DataTests {
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
}

/// glibc's setresuid (hidden behind _GNU_SOURCE in the Glibc module).
@_silgen_name("setresuid")
func c_setresuid(_ ruid: UInt32, _ euid: UInt32, _ suid: UInt32) -> Int32
