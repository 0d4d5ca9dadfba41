import XCTest
import CFipsDaemon
import FipsArtifact
import FipsDaemon
import FipsImage

/// fipsd's camera size against the model's planned camera (`fips-plan --camera`):
/// the planned size is the default, a capture the budget does not count is
/// refused (exit 2 in `startDaemon`), an older file keeps 640x480 with a note.
final class DaemonCameraTests: XCTestCase {
    func options(_ args: [String]) -> DaemonOptions {
        var o = DaemonOptions()
        o.model = "m.fips"
        o.camera = "/dev/video0"
        if let i = args.firstIndex(of: "--camera-size") {
            let p = args[i + 1].split(separator: "x").map { Int($0)! }
            o.cameraWidth = p[0]; o.cameraHeight = p[1]; o.cameraSizeGiven = true
        }
        return o
    }

    func limits(_ camera: PlannedCamera?) -> InputLimits {
        InputLimits(maxPixels: 1280 * 720, maxInputBytes: 100_000, maxConnections: 2, budgetBytes: 30_000 << 10, camera: camera)
    }

    func testThePlannedCameraSizeIsTheDefault() {
        var o = options([])
        let r = o.resolveCamera(planned: limits(.size(width: 1280, height: 720)))
        XCTAssertEqual(r.notes, [])
        XCTAssertNil(r.refusal)
        XCTAssertEqual([o.cameraWidth, o.cameraHeight], [1280, 720])
        // Smaller than planned is fine, and kept.
        o = options(["--camera-size", "320x240"])
        XCTAssertNil(o.resolveCamera(planned: limits(.size(width: 1280, height: 720))).refusal)
        XCTAssertEqual([o.cameraWidth, o.cameraHeight], [320, 240])
    }

    func testACaptureTheBudgetDoesNotCountIsRefused() {
        var o = options(["--camera-size", "1920x1080"])
        XCTAssertEqual(o.resolveCamera(planned: limits(.size(width: 1280, height: 720))).refusal,
                       "--camera-size 1920x1080 is larger than the 1280x720 camera planned for m.fips: its 30000 KiB budget "
                       + "counts the capture buffers of 1280x720 only; give at most that, or plan it again with fips-plan --camera 1920x1080")
        o = options([])
        XCTAssertEqual(o.resolveCamera(planned: limits(.noCamera)).refusal,
                       "--camera /dev/video0 at 640x480: m.fips was planned with --camera none, so its 30000 KiB budget "
                       + "counts no camera buffers; plan it again with fips-plan --camera 640x480")
        o = options(["--camera-size", "160x120"])
        XCTAssertNotNil(o.resolveCamera(planned: limits(.noCamera)).refusal, "any camera size on a model planned without one")
        // No --camera: nothing to check, whatever the plan.
        o = DaemonOptions()
        o.model = "m.fips"
        XCTAssertNil(o.resolveCamera(planned: limits(.noCamera)).refusal)
    }

    func testAnOlderFileKeepsTheDefaultWithANote() {
        for planned in [limits(nil), nil] {
            var o = options([])
            let r = o.resolveCamera(planned: planned)
            XCTAssertNil(r.refusal)
            XCTAssertEqual([o.cameraWidth, o.cameraHeight], [640, 480])
            XCTAssertEqual(r.notes, ["note: m.fips records no planned camera size (not made by fips-plan, or by an older one); "
                                     + "capturing at 640x480, which its budget may not count"])
            o = options(["--camera-size", "1920x1080"])
            XCTAssertEqual(o.resolveCamera(planned: planned).notes, [], "a size given: nothing to note")
        }
    }

    /// fips-plan's camera bytes count the buffers fipsd_camera_open asks for.
    func testThePlannerCountsTheBuffersFipsdRequests() {
        XCTAssertEqual(Int(FIPSD_CAM_BUFFERS), CameraMemory.buffers)
    }
}
