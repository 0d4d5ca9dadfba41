import Foundation
import XCTest
import FipsArtifact
@testable import FipsLatency

final class LatencyTests: XCTestCase {
    var boardsDir: String { TestPaths.packageRoot.appendingPathComponent("boards").path }
    var profilesDir: URL { TestPaths.packageRoot.appendingPathComponent("profiles") }

    func boardNames() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: boardsDir).filter { $0.hasSuffix(".board") }
            .map { String($0.dropLast(6)) }.sorted()
    }

    /// Every board file parses, and every figure in it has a `# source:` line.
    func testEveryBoardParsesAndSourcesItsFigures() throws {
        let names = try boardNames()
        XCTAssertTrue(names.contains("rpi5") && names.contains("x86-64") && names.count >= 6, "\(names)")
        for n in names {
            let b = try BoardDescription.load(name: n, boardsDirectory: boardsDir)
            XCTAssertEqual(b.name, n)
            XCTAssertEqual(b.unsourcedFigures, [], "\(n): figures without a # source: line")
            for k in ["CORES", "FREQ_MHZ", "RAM_MB", "MEM_BW_GBS", "FP32_MACS_PER_CYCLE_PER_CORE", "INT8_MACS_PER_CYCLE_PER_CORE", "FEATURES"] {
                XCTAssertNotNil(b.values[k], "\(n): missing \(k)")
            }
            XCTAssertEqual(b.clusters.reduce(0) { $0 + $1.cores }, b.cores)
        }
        let rock = try BoardDescription.load(name: "rock5b", boardsDirectory: boardsDir)
        XCTAssertEqual(rock.clusters.map { $0.core }, ["cortex-a76", "cortex-a55"])
        XCTAssertEqual(rock.clusters[1].int8MacsPerCyclePerCore, 16)
        XCTAssertThrowsError(try BoardDescription.load(name: "no-such-board", boardsDirectory: boardsDir)) { e in
            XCTAssertTrue("\(e)".contains("rpi5"), "the error lists the known boards: \(e)")
        }
    }

    func testBoardWithoutSourceIsReported() throws {
        let text = """
        NAME=t
        TRIPLE=aarch64-linux-gnu
        TARGET_CPU=cortex-a53
        # source: datasheet
        CORES=4
        FREQ_MHZ=1000
        # a comment that is not a source
        RAM_MB=512
        MEM_BW_GBS=2
        FP32_MACS_PER_CYCLE_PER_CORE=4
        INT8_MACS_PER_CYCLE_PER_CORE=4
        """
        let b = try BoardDescription.parse(text)
        XCTAssertEqual(b.unsourcedFigures, ["RAM_MB", "MEM_BW_GBS", "FP32_MACS_PER_CYCLE_PER_CORE", "INT8_MACS_PER_CYCLE_PER_CORE"])
        XCTAssertThrowsError(try BoardDescription.parse("NAME=t\nCORES=x\n"))
    }

    static func dinoS() -> ViTConfig { ViTConfig() }

    func uniform(_ c: ViTConfig, attention: TensorDType, mlp: BlockExecution.MLP) -> ModelExecution {
        ModelExecution(config: c, blocks: Array(repeating: BlockExecution(attention: attention, mlp: mlp), count: c.depth))
    }

    /// The roofline orders plans the way the hardware must: fewer bytes and
    /// MACs are never slower, more threads never slower, a slower board slower.
    func testRooflineIsMonotone() throws {
        let c = LatencyTests.dinoS()
        let pi5 = LatencyModel(board: try BoardDescription.load(name: "rpi5", boardsDirectory: boardsDir))
        let zero = LatencyModel(board: try BoardDescription.load(name: "rpizero2w", boardsDirectory: boardsDir))
        let q8 = uniform(c, attention: .q8, mlp: .dense(.q8))
        let f = uniform(c, attention: .q8, mlp: .fips(rank: 256, basis: .q8, projections: .q8, projectionSparsity: 0))
        let p1 = pi5.predict(q8, threads: 1), p4 = pi5.predict(q8, threads: 4)
        XCTAssertEqual(p1.blockMs.count, 12)
        XCTAssertEqual(p1.source, "roofline rpi5")
        XCTAssertGreaterThan(p1.totalMs, p4.totalMs)
        XCTAssertLessThan(pi5.predict(f, threads: 4).totalMs, p4.totalMs)
        XCTAssertGreaterThan(zero.predict(q8, threads: 4).totalMs, p4.totalMs)
        // Plausible size: the int8 DINOv2-S is ~9 GMAC; a Pi 5 runs it in tens to hundreds of ms.
        XCTAssertGreaterThan(p4.totalMs, 20); XCTAssertLessThan(p4.totalMs, 2000)
        XCTAssertEqual(p4.totalMs, p4.fixedMs + p4.blockMs.reduce(0, +), accuracy: 1e-9)
    }

    /// What a .fips stores per block, read back.
    func testModelExecutionFromArtifacts() throws {
        let q8 = TestPaths.data.appendingPathComponent("dinov2_s.q8.fips").path
        try TestPaths.require(q8)
        let m = try ModelExecution(artifact: try Artifact(path: q8))
        XCTAssertEqual(m.blocks.count, 12)
        XCTAssertEqual(m.blocks[0], BlockExecution(attention: .q8, mlp: .dense(.q8)))
        XCTAssertTrue(m.hasPackedWeights)
        let f32 = TestPaths.data.appendingPathComponent("dinov2_s.fips").path
        try TestPaths.require(f32)
        let mf = try ModelExecution(artifact: try Artifact(path: f32))
        XCTAssertEqual(mf.blocks[5], BlockExecution(attention: .f32, mlp: .dense(.f32)))
        XCTAssertFalse(mf.hasPackedWeights)
    }

    /// A FiPS artifact with pruned projections: rank and sparsity come back.
    /// The sparsity is what the storage elides (f32-csr, q8-sparse): a 4-bit
    /// dense tile stores its zeros, and runs as fast as an unpruned one.
    func testModelExecutionReadsFiPSRankAndSparsity() throws {
        let smoke = TestPaths.data.appendingPathComponent("fips_smoke.fips").path
        let smoke4 = TestPaths.data.appendingPathComponent("fips_smoke.q4.fips").path
        guard FileManager.default.fileExists(atPath: smoke), FileManager.default.fileExists(atPath: smoke4) else {
            throw XCTSkip("fips_smoke(.q4).fips are made by scripts/test.sh")
        }
        let m = try ModelExecution(artifact: try Artifact(path: smoke))
        guard case .fips(let r, let u, let v, let s) = m.blocks[0].mlp else { return XCTFail("not FiPS: \(m.blocks[0])") }
        XCTAssertGreaterThan(r, 0)
        XCTAssertEqual(u, .f32)
        XCTAssertEqual(v, .f32CSR)
        XCTAssertEqual(s, 0.5, accuracy: 0.1, "fips_smoke is pruned to 50%")
        let m4 = try ModelExecution(artifact: try Artifact(path: smoke4))
        guard case .fips(let r4, let u4, let v4, let s4) = m4.blocks[0].mlp else { return XCTFail("not FiPS: \(m4.blocks[0])") }
        XCTAssertEqual(r4, r)
        XCTAssertEqual(u4, .q4g32); XCTAssertEqual(v4, .q4g32)
        XCTAssertEqual(s4, 0)
    }
}
