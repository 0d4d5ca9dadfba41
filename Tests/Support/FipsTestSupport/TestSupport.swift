import Foundation
import XCTest

/// Paths shared by the device and host tests (FipsDeviceTests, FipsHostTests).
public enum TestPaths {
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    public static let data = packageRoot.appendingPathComponent("data")
    /// Each test target keeps its fixtures next to its sources.
    public static let deviceFixtures = packageRoot.appendingPathComponent("Tests/Device/FipsDeviceTests/Fixtures")
    public static let hostFixtures = packageRoot.appendingPathComponent("Tests/Host/FipsHostTests/Fixtures")
    public static var onnxModel: String { data.appendingPathComponent("vit_s_focus.onnx").path }
    public static var golden: URL { data.appendingPathComponent("golden") }
    public static var photos: URL { data.appendingPathComponent("photos") }
    /// Directory holding the built executables (next to the test bundle).
    public static var products: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }

    /// Downloaded inputs (model, photos, golden outputs) come from scripts/setup.sh
    /// and .ci/run. Locally a missing input skips; in CI (FIPS_REQUIRE_DATA=1) it fails,
    /// so a broken download can never turn into a silently skipped test.
    public static func require(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws {
        if FileManager.default.fileExists(atPath: path) { return }
        let msg = "\(path) is missing; run scripts/setup.sh"
        if ProcessInfo.processInfo.environment["FIPS_REQUIRE_DATA"] == "1" {
            XCTFail(msg, file: file, line: line)
            throw XCTSkip(msg)
        }
        throw XCTSkip(msg)
    }

    public static func temporaryDirectory() -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("fips-tests-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }
}

/// Runs an executable and returns (status, stdout, stderr); `stdin`: a file to read from.
public func runProcess(_ executable: URL, _ args: [String], stdin: URL? = nil) throws -> (Int32, String, String) {
    let p = Process()
    p.executableURL = executable
    p.arguments = args
    if let s = stdin { p.standardInput = try FileHandle(forReadingFrom: s) }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}
