import XCTest
import FipsArtifact
@testable import FipsLatency
import FipsTestSupport

/// `fips latency`'s uncertainty is derived from the measurements it has:
/// zero when the profile's timings are exactly what its interpolation assumes,
/// growing with how far they are from it; for a roofline, the roofline's
/// error against a measured profile; unknown when there is nothing to derive it from.
final class LatencyUncertaintyTests: XCTestCase {
    var root: URL { TestPaths.packageRoot }

    func model(_ dtype: TensorDType) -> ModelExecution {
        let c = LatencyTests.dinoS()
        return ModelExecution(config: c, blocks: Array(repeating: BlockExecution(attention: dtype, mlp: .dense(dtype)), count: c.depth))
    }

    func x86Profile() throws -> DeviceProfile {
        try DeviceProfile.load(path: root.appendingPathComponent("profiles/x86-64.json").path)
    }

    func testProfileUncertaintyIsTheLeaveOneOutErrorOfItsTimings() throws {
        var p = try x86Profile()
        // Timings exactly proportional to the padded work: interpolation reproduces every left-out one.
        for i in p.gemm.indices {
            let g = p.gemm[i]
            p.gemm[i].ms = 1e-7 * Double(g.m) * Double((g.n + 15) / 16 * 16) * Double((g.k + 31) / 32 * 32) / Double(g.threads)
        }
        let exact = try XCTUnwrap(LatencyModel(profile: p).uncertainty(model(.q8), threads: 1))
        XCTAssertLessThan(exact.fraction, 1e-9, exact.basis)
        XCTAssertTrue(exact.basis.contains("leave-one-out") && exact.basis.contains("q8"), exact.basis)
        // Every other timing 30% slow: a left-out timing is mispredicted by about that much.
        for i in p.gemm.indices where i % 2 == 0 { p.gemm[i].ms *= 1.3 }
        let noisy = try XCTUnwrap(LatencyModel(profile: p).uncertainty(model(.q8), threads: 1))
        XCTAssertGreaterThan(noisy.fraction, 0.1)
        XCTAssertLessThan(noisy.fraction, 0.5)
        // Only the formats the model uses count.
        let q4 = try XCTUnwrap(LatencyModel(profile: p).uncertainty(model(.q4g32), threads: 1))
        XCTAssertFalse(q4.basis.contains("q8"), q4.basis)
        // A functional-only profile gives none.
        p.functionalOnly = true
        XCTAssertNil(LatencyModel(profile: p).uncertainty(model(.q8), threads: 1))
    }

    func testRooflineUncertaintyIsItsErrorAgainstAMeasuredProfile() throws {
        let boards = root.appendingPathComponent("boards").path
        let x86 = try BoardDescription.load(name: "x86-64", boardsDirectory: boards)
        let rpi5 = LatencyModel(board: try BoardDescription.load(name: "rpi5", boardsDirectory: boards))
        let p = try x86Profile(), m = model(.q8)
        XCTAssertNil(rpi5.uncertainty(m, threads: 2), "no measured profile: unknown")
        let u = try XCTUnwrap(rpi5.uncertainty(m, threads: 2, measuredPairs: [(x86, p)]))
        let ratio = LatencyModel(board: x86).predict(m, threads: 2).totalMs / LatencyModel(profile: p).predict(m, threads: 2).totalMs
        XCTAssertEqual(u.fraction, abs(ratio - 1), accuracy: 1e-12)
        XCTAssertTrue(u.basis.contains("x86-64"), u.basis)
        var functional = p
        functional.functionalOnly = true
        XCTAssertNil(rpi5.uncertainty(m, threads: 2, measuredPairs: [(x86, functional)]))
    }
}
