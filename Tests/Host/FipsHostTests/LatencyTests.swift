import Foundation
import XCTest
import FipsArtifact
@testable import FipsLatency
import FipsTestSupport

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

    /// Every board says what its OS keeps, and a budget above RAM minus that is refused naming both numbers.
    func testBudgetAboveBoardRAMMinusOSReserveIsRefused() throws {
        for n in try boardNames() {
            let b = try BoardDescription.load(name: n, boardsDirectory: boardsDir)
            XCTAssertGreaterThan(b.osReserveMB, 0, "\(n): OS_RESERVE_MB")
            XCTAssertLessThan(b.osReserveMB, b.ramMB / 2, "\(n): OS_RESERVE_MB")
            XCTAssertNil(b.budgetRefusal(b.processBytes), "\(n): exactly what the board leaves fits")
            XCTAssertNotNil(b.budgetRefusal(b.processBytes + 1), "\(n): one byte more does not")
        }
        let zero = try BoardDescription.load(name: "rpizero2w", boardsDirectory: boardsDir)
        XCTAssertEqual(zero.processBytes, (512 - 150) << 20)
        XCTAssertNil(zero.budgetRefusal(26_000_000))
        let why = try XCTUnwrap(zero.budgetRefusal(900_000_000))
        XCTAssertTrue(why.contains("RAM 512 MB") && why.contains("minus 150 MB") && why.contains("\((512 - 150) << 20) bytes"), why)
        XCTAssertThrowsError(try BoardDescription.parse(minimalBoard + "OS_RESERVE_MB=512\n")) { e in
            XCTAssertTrue("\(e)".contains("OS_RESERVE_MB"), "\(e)")
        }
        XCTAssertEqual(try BoardDescription.parse(minimalBoard).osReserveMB, 0)
    }

    let minimalBoard = """
    NAME=t
    TRIPLE=aarch64-linux-gnu
    TARGET_CPU=cortex-a53
    CORES=4
    FREQ_MHZ=1000
    RAM_MB=512
    MEM_BW_GBS=2
    FP32_MACS_PER_CYCLE_PER_CORE=4
    INT8_MACS_PER_CYCLE_PER_CORE=4

    """

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

    // MARK: - device profiles

    /// The committed profiles decode, and the model prices a real plan with them.
    func testCommittedProfilesDecode() throws {
        for name in ["x86-64", "qemu-aarch64"] {
            let path = profilesDir.appendingPathComponent("\(name).json").path
            let p = try DeviceProfile.load(path: path)
            XCTAssertEqual(p.name, name)
            XCTAssertEqual(p.schemaVersion, DeviceProfile.currentSchemaVersion)
            XCTAssertFalse(p.gemm.isEmpty); XCTAssertFalse(p.vit.isEmpty)
            XCTAssertEqual(p.memoryBandwidth.readGBs.count, p.threads.count)
            for f in ["q8", "q8-sparse", "q4g32", "q3g32", "q2g32", "f32"] { XCTAssertTrue(p.gemm.contains { $0.format == f }, "\(name): no \(f) timing") }
        }
        let q = try DeviceProfile.load(path: profilesDir.appendingPathComponent("qemu-aarch64.json").path)
        XCTAssertTrue(q.functionalOnly)
        XCTAssertEqual(q.system.arch, "aarch64")
        XCTAssertTrue(q.system.features.contains("asimddp"))
        let x = try DeviceProfile.load(path: profilesDir.appendingPathComponent("x86-64.json").path)
        XCTAssertFalse(x.functionalOnly)
        XCTAssertEqual(x.system.arch, "x86_64")
    }

    /// A malformed profile is an error that names the file and the field.
    func testMalformedProfileErrors() throws {
        let good = try Data(contentsOf: profilesDir.appendingPathComponent("x86-64.json"))
        var obj = try XCTUnwrap(JSONSerialization.jsonObject(with: good) as? [String: Any])
        func message(_ o: Any) -> String {
            let d = try! JSONSerialization.data(withJSONObject: o)
            do { _ = try DeviceProfile.decode(d, path: "bad.json"); return "" } catch { return "\(error)" }
        }
        var noGemm = obj; noGemm.removeValue(forKey: "gemm")
        XCTAssertTrue(message(noGemm).contains("bad.json") && message(noGemm).contains("$.gemm"), message(noGemm))
        var future = obj; future["schema_version"] = 99
        XCTAssertTrue(message(future).contains("schema_version 99 is not supported"), message(future))
        var wrongType = obj
        var g = try XCTUnwrap(obj["gemm"] as? [[String: Any]]); g[0]["ms"] = "fast"
        wrongType["gemm"] = g
        XCTAssertTrue(message(wrongType).contains("$.gemm[0].ms"), message(wrongType))
        var badFormat = obj
        g = try XCTUnwrap(obj["gemm"] as? [[String: Any]]); g[1]["format"] = "q5"
        badFormat["gemm"] = g
        XCTAssertTrue(message(badFormat).contains("gemm[1].format \"q5\" is unknown"), message(badFormat))
        obj["schema"] = "something-else"
        XCTAssertTrue(message(obj).contains("expected \"fips-profile\""), message(obj))
        do { _ = try DeviceProfile.decode(Data("{not json".utf8), path: "x.json"); XCTFail("decoded garbage") } catch {
            XCTAssertTrue("\(error)".contains("not valid JSON"), "\(error)")
        }
        XCTAssertThrowsError(try DeviceProfile.load(path: "/nonexistent/p.json")) { e in
            XCTAssertTrue("\(e)".contains("cannot read the file"), "\(e)")
        }
    }

    /// The profile-based model reproduces what it was measured on and
    /// interpolates sensibly between measured ranks and sparsities.
    func testProfileModelInterpolates() throws {
        let p = try DeviceProfile.load(path: profilesDir.appendingPathComponent("x86-64.json").path)
        let lm = LatencyModel(profile: p)
        let t = p.threads.max()!
        // A measured shape comes back as measured.
        let g = try XCTUnwrap(p.gemm.first { $0.format == "q8" && $0.threads == t && $0.m == 257 && $0.n == 1536 && $0.k == 384 })
        XCTAssertEqual(lm.linearMs(LatencyModel.Linear(dtype: .q8, sparsity: 0, m: 257, n: 1536, k: 384), threads: t), g.ms, accuracy: 1e-9)
        // Between two measured ranks: between their times.
        let ranks = Set(p.gemm.filter { $0.format == "q8" && $0.n == 1536 && $0.m == 257 && $0.k < 384 }.map { $0.k }).sorted()
        if ranks.count >= 2 {
            let a = lm.linearMs(.init(dtype: .q8, sparsity: 0, m: 257, n: 1536, k: ranks[0]), threads: t)
            let b = lm.linearMs(.init(dtype: .q8, sparsity: 0, m: 257, n: 1536, k: ranks[1]), threads: t)
            let mid = lm.linearMs(.init(dtype: .q8, sparsity: 0, m: 257, n: 1536, k: (ranks[0] + ranks[1]) / 2), threads: t)
            XCTAssertGreaterThanOrEqual(mid, min(a, b)); XCTAssertLessThanOrEqual(mid, max(a, b))
        }
        // Sparser projections are not slower (q8-sparse measured at 0.5 and 0.9).
        let s5 = lm.linearMs(.init(dtype: .q8sparse, sparsity: 0.5, m: 257, n: 1536, k: 256), threads: t)
        let s9 = lm.linearMs(.init(dtype: .q8sparse, sparsity: 0.9, m: 257, n: 1536, k: 256), threads: t)
        XCTAssertLessThan(s9, s5 * 1.1)
        // A whole model: additive, and a FiPS plan at a lower rank is cheaper.
        let c = ViTConfig()
        let q8 = lm.predict(uniform(c, attention: .q8, mlp: .dense(.q8)), threads: t)
        let f = lm.predict(uniform(c, attention: .q8, mlp: .fips(rank: 192, basis: .q8, projections: .q8sparse, projectionSparsity: 0.75)), threads: t)
        XCTAssertEqual(q8.totalMs, q8.fixedMs + q8.blockMs.reduce(0, +), accuracy: 1e-9)
        XCTAssertLessThan(f.totalMs, q8.totalMs)
        XCTAssertEqual(q8.source, "profile x86-64")
    }
}
