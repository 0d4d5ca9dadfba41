import Foundation
import XCTest
import FipsArtifact
import FipsArtifactWriter
import FipsHostModel
import FipsTestSupport

/// `fips-run` as a user runs it: the built executable, real images, bad inputs.
final class RunnerTests: XCTestCase {
    var fipsRun: URL { TestPaths.products.appendingPathComponent("fips-run") }

    func tinyArtifact(in dir: URL) throws -> String {
        let path = dir.appendingPathComponent("tiny.fips").path
        try ArtifactWriter.write(makeTinyModel(classes: 3), precision: .f32, to: path)
        return path
    }

    /// A copy of a real JPEG whose SOF header claims `width`×`height`.
    func jpegClaiming(width: Int, height: Int, from src: Data) -> Data {
        var b = [UInt8](src)
        var i = 2
        while i + 9 < b.count {
            guard b[i] == 0xFF else { i += 1; continue }
            let marker = b[i + 1]
            let len = Int(b[i + 2]) << 8 | Int(b[i + 3])
            if marker == 0xC0 || marker == 0xC1 || marker == 0xC2 {
                b[i + 5] = UInt8(height >> 8); b[i + 6] = UInt8(height & 0xFF)
                b[i + 7] = UInt8(width >> 8); b[i + 8] = UInt8(width & 0xFF)
                break
            }
            i += 2 + len
        }
        return Data(b)
    }

    func testBadImagesAreReportedAndTheRestStillRun() throws {
        let chelsea = TestPaths.photos.appendingPathComponent("chelsea.png").path
        let rocket = TestPaths.photos.appendingPathComponent("rocket.jpg").path
        try TestPaths.require(chelsea)
        try TestPaths.require(rocket)
        let dir = TestPaths.temporaryDirectory()
        let model = try tiny(dir)
        let jpeg = try Data(contentsOf: URL(fileURLWithPath: rocket))
        let truncated = dir.appendingPathComponent("truncated.jpg")
        try jpeg.prefix(jpeg.count / 2).write(to: truncated)
        let renamed = dir.appendingPathComponent("renamed.jpg")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: chelsea), to: renamed)
        let empty = dir.appendingPathComponent("empty.jpg")
        FileManager.default.createFile(atPath: empty.path, contents: Data())
        let huge = dir.appendingPathComponent("huge.jpg")
        try jpegClaiming(width: 60000, height: 60000, from: jpeg).write(to: huge)
        let folder = dir.appendingPathComponent("a-folder")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)

        let args = ["--model", model, chelsea, truncated.path, renamed.path, empty.path, rocket, huge.path, folder.path]
        let (status, out, err) = try runProcess(fipsRun, args)
        XCTAssertEqual(status, 1, "any failed image makes the exit status 1")
        let lines = out.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2, out)
        XCTAssertTrue(lines[0].hasPrefix("{\"image\": \"\(chelsea)\", \"ms\": "), lines[0])
        XCTAssertTrue(lines[1].hasPrefix("{\"image\": \"\(rocket)\""), lines[1])
        for l in lines {
            let obj = try JSONSerialization.jsonObject(with: Data(l.utf8)) as! [String: Any]
            let top = obj["top"] as! [[String: Any]]
            XCTAssertEqual(top.count, 3)
            XCTAssertTrue((top[0]["label"] as! String).hasPrefix("label "))
        }
        // One line per bad image, after the note that the model records no input limits.
        let errors = err.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("fips-run: note: ") }
        XCTAssertEqual(errors.count, 5, err)
        let expected: [(URL, String)] = [
            (truncated, "truncated"), (renamed, "PNG"), (empty, "empty"),
            (huge, "60000x60000"), (folder, "directory"),
        ]
        for (file, word) in expected {
            let line = errors.first { $0.contains(file.path + ":") }
            XCTAssertNotNil(line, "no error line names \(file.path):\n\(err)")
            XCTAssertTrue(line?.contains(word) ?? false, "error for \(file.lastPathComponent) should mention \(word): \(line ?? "")")
        }
    }

    func tiny(_ dir: URL) throws -> String { try tinyArtifact(in: dir) }

    func testFeaturesOutWritesNpyPerImage() throws {
        let chelsea = TestPaths.photos.appendingPathComponent("chelsea.png").path
        try TestPaths.require(chelsea)
        let dir = TestPaths.temporaryDirectory()
        let model = try tiny(dir)
        let feats = dir.appendingPathComponent("feats")
        let (status, out, err) = try runProcess(fipsRun, ["--model", model, "--top-k", "2", "--features-out", feats.path, chelsea])
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(out.contains("\"features\": \"\(feats.path)/chelsea.npy\""), out)
        let t = try NpyFile.readFloat32(feats.appendingPathComponent("chelsea.npy").path)
        XCTAssertEqual(t.shape, [5, 16])
        XCTAssertTrue(t.data.allSatisfy { $0.isFinite })
    }

    /// A backbone without a head: --top-k is refused (exit 2, one line naming the model and the way out,
    /// nothing on stdout); --embedding prints the CLS feature, equal to row 0 of --features-out and
    /// with the printed cls_norm as its norm.
    func testHeadlessModelRefusesTopKAndPrintsItsEmbedding() throws {
        let chelsea = TestPaths.photos.appendingPathComponent("chelsea.png").path
        try TestPaths.require(chelsea)
        let dir = TestPaths.temporaryDirectory()
        let model = dir.appendingPathComponent("backbone.fips").path
        try ArtifactWriter.write(makeTinyModel(classes: 0), precision: .f32, to: model)
        var (status, out, err) = try runProcess(fipsRun, ["--model", model, "--top-k", "3", chelsea])
        XCTAssertEqual(status, 2)
        XCTAssertEqual(out, "")
        XCTAssertTrue(err.hasPrefix("fips-run: \(model) has no classification head") && err.contains("--embedding"), err)
        XCTAssertEqual(err.split(separator: "\n").count, 1, err)

        let feats = dir.appendingPathComponent("feats")
        (status, out, err) = try runProcess(fipsRun, ["--model", model, "--embedding", "--features-out", feats.path, chelsea])
        XCTAssertEqual(status, 0, err)
        let obj = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
        let e = try XCTUnwrap(obj["embedding"] as? [Double], out)
        let t = try NpyFile.readFloat32(feats.appendingPathComponent("chelsea.npy").path)
        XCTAssertEqual(e.count, 16)
        for k in 0..<16 { XCTAssertEqual(Float(e[k]), t.data[k], "embedding[\(k)] is not the CLS feature") }
        let norm = e.reduce(0) { $0 + $1 * $1 }.squareRoot()
        XCTAssertEqual(norm, try XCTUnwrap(obj["cls_norm"] as? Double), accuracy: 1e-6 * norm)

        // With a head, --top-k works and --embedding adds the same vector beside "top".
        let headed = try tiny(dir)
        (status, out, err) = try runProcess(fipsRun, ["--model", headed, "--top-k", "2", "--embedding", chelsea])
        XCTAssertEqual(status, 0, err)
        let h = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
        XCTAssertEqual((h["top"] as? [[String: Any]])?.count, 2)
        XCTAssertEqual((h["embedding"] as? [Double])?.count, 16)
    }

    func testBadModelsAreRefusedWithTheReason() throws {
        let chelsea = TestPaths.photos.appendingPathComponent("chelsea.png").path
        let dir = TestPaths.temporaryDirectory()
        let model = try tiny(dir)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: model)))
        bytes[bytes.count - 10] ^= 1
        let corrupt = dir.appendingPathComponent("corrupt.fips")
        try Data(bytes).write(to: corrupt)
        var (status, _, err) = try runProcess(fipsRun, ["--model", corrupt.path, chelsea])
        XCTAssertEqual(status, 3, "a damaged model is exit status 3")
        XCTAssertTrue(err.hasPrefix("fips-run: \(corrupt.path): model data is corrupted"), err)
        XCTAssertEqual(err.split(separator: "\n").count, 1)

        let m = makeTinyModel()
        let future = dir.appendingPathComponent("future.fips")
        try ArtifactWriter.writeAtomically(ArtifactWriter.serialize(config: m.config, labels: [], tensors: ArtifactWriter.encode(m, precision: .f32), version: ArtifactFormat.currentVersion + 1), to: future.path)
        (status, _, err) = try runProcess(fipsRun, ["--model", future.path, chelsea])
        XCTAssertEqual(status, 3)
        XCTAssertTrue(err.contains("model format version \(ArtifactFormat.currentVersion + 1) is not supported"), err)

        (status, _, err) = try runProcess(fipsRun, ["--model", model])
        XCTAssertEqual(status, 2)
        XCTAssertTrue(err.contains("no images given"), err)
        (status, _, err) = try runProcess(fipsRun, ["--model", model, "--top-k", "zero", chelsea])
        XCTAssertEqual(status, 2)
        XCTAssertTrue(err.contains("--top-k needs a positive integer"), err)
    }

    func testHelpHasExamples() throws {
        let (status, out, _) = try runProcess(fipsRun, ["--help"])
        XCTAssertEqual(status, 0)
        XCTAssertTrue(out.contains("EXAMPLES:"))
        XCTAssertTrue(out.contains("--features-out"))
    }
}
