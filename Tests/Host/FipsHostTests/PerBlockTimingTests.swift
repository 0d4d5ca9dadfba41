import Foundation
import XCTest
import FipsArtifactWriter
import FipsHostModel
import FipsTestSupport

/// `fips-run --bench N --per-block`: one line per block with ordered percentiles, and the cold start.
final class PerBlockTimingTests: XCTestCase {
    func testPerBlockLinesFollowTheImageLine() throws {
        let chelsea = TestPaths.photos.appendingPathComponent("chelsea.png").path
        try TestPaths.require(chelsea)
        let dir = TestPaths.temporaryDirectory()
        let model = dir.appendingPathComponent("tiny.fips").path
        try ArtifactWriter.write(makeTinyModel(classes: 3), precision: .f32, to: model)
        let fipsRun = TestPaths.products.appendingPathComponent("fips-run")
        let (status, out, err) = try runProcess(fipsRun, ["--model", model, "--threads", "1", "--bench", "7", "--per-block", chelsea])
        XCTAssertEqual(status, 0, err)
        let lines = try out.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(lines.count, 1 + 2 + 2, "the image, then embed, blocks 0 and 1, head: \(out)")
        let image = lines[0]
        let minMs = try XCTUnwrap(image["forward_min_ms"] as? Double), maxMs = try XCTUnwrap(image["forward_max_ms"] as? Double)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(image["cold_start_ms"] as? Double), minMs)
        XCTAssertEqual(lines.dropFirst().map { $0["block"] as? String }, ["embed", "0", "1", "head"])
        var sum = 0.0
        for l in lines.dropFirst() {
            let p50 = l["p50_ms"] as! Double, p90 = l["p90_ms"] as! Double, p99 = l["p99_ms"] as! Double
            XCTAssertTrue(0 < p50 && p50 <= p90 && p90 <= p99, "\(l)")
            XCTAssertEqual(l["runs"] as? Int, 7)
            sum += p50
        }
        // The slots cover the whole forward pass: their medians add up to about one run.
        XCTAssertGreaterThan(sum, 0.3 * minMs, out)
        XCTAssertLessThan(sum, 2 * maxMs + 0.01, out)
        let (bad, _, why) = try runProcess(fipsRun, ["--model", model, "--per-block", chelsea])
        XCTAssertEqual(bad, 2)
        XCTAssertTrue(why.contains("--per-block needs --bench"), why)
    }
}
