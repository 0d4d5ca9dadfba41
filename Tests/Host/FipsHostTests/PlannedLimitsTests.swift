import Foundation
import XCTest
import FipsArtifact
import FipsArtifactWriter
import FipsHostModel
import FipsImage
import FipsTestSupport

/// The input limits fips-plan writes into an artifact, and fips-run and fipsd
/// taking them as their defaults (issue: a budget is a promise).
final class PlannedLimitsTests: XCTestCase {
    var fipsRun: URL { TestPaths.products.appendingPathComponent("fips-run") }
    var fipsd: URL { TestPaths.products.appendingPathComponent("fipsd") }

    /// A tiny classifier, written plain and with `limits` stamped in.
    func artifacts(_ limits: InputLimits) throws -> (plain: String, planned: String) {
        let dir = TestPaths.temporaryDirectory()
        let model = makeTinyModel(classes: 3)
        let tensors = ArtifactWriter.encode(model, precision: .f32)
        let bytes = ArtifactWriter.serialize(config: model.config, labels: model.labels, tensors: tensors,
                                             version: ArtifactFormat.lowestVersion(holding: tensors.map(\.dtype)))
        let plain = dir.appendingPathComponent("plain.fips").path
        let planned = dir.appendingPathComponent("planned.fips").path
        try ArtifactWriter.writeAtomically(bytes, to: plain)
        try ArtifactWriter.writeAtomically(ArtifactWriter.stampInputLimits(bytes, limits), to: planned)
        return (plain, planned)
    }

    func testStampedLimitsRoundTripAndLeaveTheModelAlone() throws {
        let limits = InputLimits(maxPixels: 307_200, maxInputBytes: 350_072, maxConnections: 2, budgetBytes: 22_000_000)
        let (plain, planned) = try artifacts(limits)
        let a = try Artifact(path: plain), b = try Artifact(path: planned)
        XCTAssertNil(a.inputLimits, "a writer leaves words 20-23 zero: no limits")
        let got = try XCTUnwrap(b.inputLimits)
        XCTAssertEqual(got.maxPixels, 307_200)
        XCTAssertEqual(got.maxInputBytes, 350_072)
        XCTAssertEqual(got.maxConnections, 2)
        XCTAssertEqual(got.budgetBytes, 22_000_000 / 1024 * 1024, "the budget is stored in KiB, rounded down")
        XCTAssertEqual(a.fileBytes, b.fileBytes)
        XCTAssertEqual(a.config, b.config, "the limits are not part of the model's configuration")
        XCTAssertNotEqual(a.checksum, b.checksum, "the payload checksum covers the limits")
        for (x, y) in zip(a.tensors, b.tensors) {
            XCTAssertEqual(x.name, y.name)
            XCTAssertEqual(memcmp(x.data, y.data, x.byteCount), 0, x.name)
        }
    }

    func testPlannedLimitsAreTheDefaultsAndAnInputOverThemIsRefused() throws {
        let chelsea = TestPaths.photos.appendingPathComponent("chelsea.png").path   // 451x300, 241 kB
        let rocket = TestPaths.photos.appendingPathComponent("rocket.jpg").path     // 640x427, 113 kB
        try TestPaths.require(chelsea)
        try TestPaths.require(rocket)
        // 300 000 pixels: rocket (273 280) fits, chelsea (135 300) too; 200 000 bytes: chelsea's PNG does not.
        let (plain, planned) = try artifacts(InputLimits(maxPixels: 300_000, maxInputBytes: 200_000, maxConnections: 1,
                                                         budgetBytes: 8 << 20))
        var (status, out, err) = try runProcess(fipsRun, ["--model", planned, rocket, chelsea])
        XCTAssertEqual(status, 1, err)
        XCTAssertEqual(out.split(separator: "\n").count, 1, out)
        XCTAssertTrue(out.contains(rocket), out)
        XCTAssertTrue(err.contains("\(chelsea): file is larger than the limit of 200000 bytes"), err)
        XCTAssertFalse(err.contains("note:") || err.contains("warning:"), "a planned model within its limits: \(err)")

        // Raising a limit over the plan's is allowed, and said.
        (status, out, err) = try runProcess(fipsRun, ["--model", planned, "--max-input-bytes", "1000000", chelsea])
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(err.contains("fips-run: warning: --max-input-bytes 1000000 (plan: 200000) above the limits planned for \(planned); the 8192 KiB budget no longer holds"), err)

        // A pixel limit under the image (a PNG is not reduced): refused by name.
        let (_, _, err2) = try runProcess(fipsRun, ["--model", planned, "--max-pixels", "100000", "--max-input-bytes", "200000", chelsea])
        XCTAssertTrue(err2.contains("\(chelsea): file is larger than the limit of 200000 bytes"), err2)
        let (_, _, err3) = try runProcess(fipsRun, ["--model", planned, "--max-pixels", "100000", "--max-input-bytes", "300000", chelsea])
        XCTAssertTrue(err3.contains("\(chelsea): image is 451x300 = 135300 pixels, over the limit of 100000"), err3)

        // A model without limits: the old defaults, and a note that says so.
        (status, _, err) = try runProcess(fipsRun, ["--model", plain, chelsea])
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(err.contains("fips-run: note: \(plain) records no input limits (not made by fips-plan, or by an older one); using 8000000 pixels and 67108864 bytes per image"), err)
        (status, _, err) = try runProcess(fipsRun, ["--model", plain, "--max-pixels", "8000000", "--max-input-bytes", "1000000", chelsea])
        XCTAssertFalse(err.contains("note:"), "both limits given: nothing to note: \(err)")
    }

    func testFipsdTakesThePlannedBodyAndConnectionLimits() throws {
        let (plain, planned) = try artifacts(InputLimits(maxPixels: 300_000, maxInputBytes: 100_000, maxConnections: 3,
                                                         budgetBytes: 8 << 20))
        let dir = TestPaths.temporaryDirectory()
        // --stdin with an empty stream: fipsd starts, logs its notes, and exits at the stream's end.
        let empty = dir.appendingPathComponent("empty.mjpeg")
        FileManager.default.createFile(atPath: empty.path, contents: Data())
        var (status, _, err) = try runProcess(fipsd, ["--model", planned, "--stdin", "--max-connections", "8"], stdin: empty)
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(err.contains("warning: --max-connections 8 (plan: 3) above the limits planned for \(planned)"), err)
        (status, _, err) = try runProcess(fipsd, ["--model", plain, "--stdin"], stdin: empty)
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(err.contains("records no input limits (not made by fips-plan, or by an older one); using 8000000 pixels and 10485760 bytes per image, 16 connections"), err)
    }
}
