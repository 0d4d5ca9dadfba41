import Foundation
import XCTest
import FipsArtifact
import FipsArtifactWriter
import FipsHostModel
import FipsImage
import FipsPlan
import FipsTestSupport

/// fips-plan --camera: the budget counts fipsd's capture buffers, the artifact
/// records the planned camera (configuration word 24), and fipsd takes it as its
/// --camera-size and refuses a capture the budget does not count.
final class PlannedCameraTests: XCTestCase {
    var fipsd: URL { TestPaths.products.appendingPathComponent("fipsd") }

    func testCameraMemoryIsTheBuffersAndTheWaitingFrame() {
        // 4 YUYV mmap buffers at 2 bytes a pixel, and the RGB frame waiting to be classified.
        XCTAssertEqual(CameraMemory.bytes(width: 640, height: 480), 4 * 614_400 + 921_600)
        XCTAssertEqual(CameraMemory.bytes(width: 640, height: 480), 3_379_200)
        XCTAssertEqual(CameraMemory.bytes(width: 1280, height: 720), 4 * 1_843_200 + 2_764_800)
        XCTAssertEqual(PlanOptions(budgetBytes: 1).input.camera, .size(width: 640, height: 480), "fips-plan's default camera")
    }

    func testPlanMemoryCountsTheCameraAndNoneCountsNothing() {
        let model = RandomViT.make(PlanTests.tinyConfig, seed: 5)
        let groups = Planner.groups(depth: model.config.depth, size: 2)
        let dense = groups.map { _ in GroupChoice(mlp: .dense, mlpBits: 8, attentionBits: 8) }
        func breakdown(_ camera: PlannedCamera?) -> PlanMemory.Breakdown {
            var o = PlanTests.tinyOptions(1)
            o.input.camera = camera
            return PlanPipeline.memoryModel(model, groups: groups, options: o).breakdown(dense)
        }
        let none = breakdown(.noCamera), vga = breakdown(.size(width: 640, height: 480))
        XCTAssertEqual(none.cameraBytes, 0)
        XCTAssertEqual(breakdown(nil).cameraBytes, 0)
        XCTAssertEqual(vga.cameraBytes, 3_379_200)
        XCTAssertEqual(vga.totalBytes - none.totalBytes, 3_379_200)
        XCTAssertEqual(vga.totalBytes, vga.artifactBytes + vga.arenaBytes + vga.ioBytes + vga.inputBytes + 3_379_200)
    }

    /// The smallest feasible budget grows by the camera's bytes exactly, and the
    /// plan's table and plan.json show the camera line.
    func testThePlannerBudgetsTheCamera() throws {
        let model = RandomViT.make(PlanTests.tinyConfig, seed: 3)
        let cal = try PlanTests.calibration(model, images: 2, tokens: 17)
        let lat = try PlanTests.board()
        let camera = PlannedCamera.size(width: 64, height: 48)   // within tinyOptions' 64x48 --max-pixels
        func options(_ budget: Int, _ c: PlannedCamera) -> PlanOptions {
            var o = PlanTests.tinyOptions(budget)
            o.input.camera = c
            return o
        }
        var messages = [String]()
        func smallest(_ c: PlannedCamera) -> Int {
            var message = ""
            XCTAssertThrowsError(try PlanPipeline.plan(model, calibration: cal, latency: lat, options: options(1000, c))) { message = "\($0)" }
            messages.append(message)
            return PlanTests.smallestBudget(message) ?? -1
        }
        let withCamera = smallest(camera), without = smallest(.noCamera)
        XCTAssertEqual(withCamera - without, CameraMemory.bytes(width: 64, height: 48))
        XCTAssertEqual(CameraMemory.bytes(width: 64, height: 48), 64 * 48 * 11)
        XCTAssertTrue(messages[0].hasSuffix("; that counts fipsd's 64x48 camera, 33792 bytes (--camera none for a model served without one)"),
                      messages[0])
        XCTAssertFalse(messages[1].contains("camera"), messages[1])
        let (plan, _) = try PlanPipeline.plan(model, calibration: cal, latency: lat, options: options(withCamera, camera))
        XCTAssertEqual(plan.memory.totalBytes, withCamera)
        XCTAssertEqual(plan.memory.cameraBytes, 33_792)
        XCTAssertTrue(plan.table().contains(" + camera 33792 (64x48) = \(withCamera) bytes"), plan.table())
        let json = plan.json(inputs: [:])
        XCTAssertEqual((json["totals"] as? [String: Any])?["camera_bytes"] as? Int, 33_792)
        XCTAssertEqual((json["budget"] as? [String: Any])?["camera"] as? String, "64x48")
        let (none, _) = try PlanPipeline.plan(model, calibration: cal, latency: lat, options: options(withCamera, .noCamera))
        XCTAssertTrue(none.table().contains(" + camera 0 (none) = "), none.table())
    }

    /// A tiny classifier stamped with `limits`; `olderRecord` drops word 24, as
    /// an artifact from the fips-plan before it has (a 24-word record).
    func planned(_ limits: InputLimits, olderRecord: Bool = false) throws -> String {
        let model = makeTinyModel(classes: 3)
        let tensors = ArtifactWriter.encode(model, precision: .f32)
        var bytes = ArtifactWriter.stampInputLimits(
            ArtifactWriter.serialize(config: model.config, labels: model.labels, tensors: tensors,
                                     version: ArtifactFormat.lowestVersion(holding: tensors.map(\.dtype))), limits)
        if olderRecord { bytes = dropWord24(bytes) }
        let path = TestPaths.temporaryDirectory().appendingPathComponent(olderRecord ? "older.fips" : "planned.fips").path
        try ArtifactWriter.writeAtomically(bytes, to: path)
        return path
    }

    /// The record shortened to 24 words; the meta block keeps its size (4 spare
    /// zero bytes at its end, which readers do not look at) so no offset moves.
    func dropWord24(_ bytes: [UInt8]) -> [UInt8] {
        func load(_ o: Int, _ n: Int) -> Int { (0..<n).reduce(0) { $0 | Int(bytes[o + $1]) << (8 * $1) } }
        func store32(_ a: inout [UInt8], _ o: Int, _ v: UInt32) { for k in 0..<4 { a[o + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(k))) } }
        let meta = load(24, 8), metaBytes = load(32, 8)
        XCTAssertEqual(load(meta, 4), 25)
        var out = Array(bytes[..<meta])
        var block = Array(bytes[meta..<(meta + metaBytes)])
        block.remove(at: 4 + 4 * 24); block.remove(at: 4 + 4 * 24); block.remove(at: 4 + 4 * 24); block.remove(at: 4 + 4 * 24)
        block += [0, 0, 0, 0]
        store32(&block, 0, 24)
        out += block + bytes[(meta + metaBytes)...]
        let crc = CRC32()
        store32(&out, 56, out.withUnsafeBytes { crc.checksum($0.baseAddress! + 64, count: out.count - 64) })
        store32(&out, 60, out.withUnsafeBytes { crc.checksum($0.baseAddress!, count: 60) })
        return out
    }

    /// The refusal happens at start, before the camera is opened (so no device is needed).
    func testFipsdRefusesACaptureTheBudgetDoesNotCount() throws {
        func limits(_ c: PlannedCamera) -> InputLimits {
            InputLimits(maxPixels: 307_200, maxInputBytes: 100_000, maxConnections: 2, budgetBytes: 8 << 20, camera: c)
        }
        let vga = try planned(limits(.size(width: 640, height: 480)))
        let dev = TestPaths.temporaryDirectory().appendingPathComponent("video9").path   // never opened
        var (status, _, err) = try runProcess(fipsd, ["--model", vga, "--camera", dev, "--camera-size", "1280x720"])
        XCTAssertEqual(status, 2, err)
        XCTAssertTrue(err.contains("fipsd: --camera-size 1280x720 is larger than the 640x480 camera planned for \(vga): "
                                   + "its 8192 KiB budget counts the capture buffers of 640x480 only"), err)
        let none = try planned(limits(.noCamera))
        (status, _, err) = try runProcess(fipsd, ["--model", none, "--camera", dev])
        XCTAssertEqual(status, 2, err)
        XCTAssertTrue(err.contains("fipsd: --camera \(dev) at 640x480: \(none) was planned with --camera none, so its 8192 KiB "
                                   + "budget counts no camera buffers"), err)
    }

    func testArtifactRecordsThePlannedCamera() throws {
        func camera(_ c: PlannedCamera?, older: Bool = false) throws -> InputLimits? {
            let l = InputLimits(maxPixels: 307_200, maxInputBytes: 100_000, maxConnections: 2, budgetBytes: 8 << 20, camera: c)
            return try Artifact(path: try planned(l, olderRecord: older)).inputLimits
        }
        XCTAssertEqual(try camera(.size(width: 1280, height: 720))?.camera, .size(width: 1280, height: 720))
        XCTAssertEqual(try camera(.size(width: 16384, height: 16384))?.camera, .size(width: 16384, height: 16384))
        XCTAssertEqual(try camera(.noCamera)?.camera, .noCamera)
        XCTAssertNil(try XCTUnwrap(camera(nil)).camera, "word 24 zero: not recorded")
        // An older file: the same limits, no camera record.
        let older = try XCTUnwrap(camera(.size(width: 640, height: 480), older: true))
        XCTAssertNil(older.camera)
        XCTAssertEqual(older.maxInputBytes, 100_000)
        XCTAssertEqual(older.budgetBytes, 8 << 20)
        XCTAssertEqual(PlannedCamera(word: 1), .noCamera)
        XCTAssertNil(PlannedCamera(word: 0))
        XCTAssertNil(PlannedCamera(word: 640), "a zero height is no size")
        XCTAssertEqual(PlannedCamera.size(width: 640, height: 480).word, 640 | 480 << 16)
    }
}
