import Foundation
import XCTest
import FipsArtifact
import FipsArtifactWriter
import FipsExport
import FipsHostModel
import FipsTestSupport

/// `fips info --json` read back against the file's own bytes.
final class ArtifactInfoTests: XCTestCase {
    /// The tiny FiPS model (blocks 0 and 1 share U, pruned V stored as f32-csr) written to a file.
    func writeTinyFiPS() throws -> (path: String, model: ViTModel) {
        let fact = makeTinyFactorisedPair(rank: 12, prune: true).factorised
        let path = TestPaths.temporaryDirectory().appendingPathComponent("info.fips").path
        try ArtifactWriter.write(fact, precision: .f32, to: path)
        return (path, fact)
    }

    func infoJSON(_ path: String) throws -> [String: Any] {
        let text = try ArtifactInfo(Artifact(path: path)).jsonText()
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    /// The stored entries' data and aux regions, in file order, tile the file from the
    /// first 64-byte boundary after the table (read from the header here, not from the
    /// JSON) to its last byte, with only alignment padding between them.
    func testInfoTableBytesCoverTheTensorDataOfTheFile() throws {
        let (path, model) = try writeTinyFiPS()
        let json = try infoJSON(path)
        let file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        func u64(_ o: Int) -> Int { (0..<8).reduce(0) { $0 | Int(file[o + $1]) << (8 * $1) } }
        func align(_ x: Int) -> Int { (x + 63) / 64 * 64 }
        let tableOffset = u64(40), count = u64(48) & 0xFFFF_FFFF
        let dataStart = align(tableOffset + count * 128)

        let tensors = try XCTUnwrap(json["tensors"] as? [[String: Any]])
        XCTAssertEqual(tensors.count, count)
        XCTAssertEqual(json["tensor_count"] as? Int, model.tensors.count)
        XCTAssertEqual(json["file_bytes"] as? Int, file.count)
        var regions = [(offset: Int, bytes: Int)]()
        var byName = [String: [String: Any]]()
        for t in tensors { byName[t["name"] as! String] = t }
        for t in tensors {
            if let owner = t["stored_in"] as? String {
                XCTAssertEqual(t["offset"] as? Int, byName[owner]?["offset"] as? Int, "\(t["name"]!) points at \(owner)'s bytes")
                continue
            }
            regions.append((t["offset"] as! Int, t["bytes"] as! Int))
            if let aux = t["aux_bytes"] as? Int, aux > 0 { regions.append((t["aux_offset"] as! Int, aux)) }
        }
        regions.sort { $0.offset < $1.offset }
        var at = dataStart
        for r in regions {
            XCTAssertEqual(r.offset, align(at), "a region starts at the next 64-byte boundary")
            at = r.offset + r.bytes
        }
        XCTAssertEqual(at, file.count, "the last region ends the file")
        let data = try XCTUnwrap(json["tensor_data"] as? [String: Any])
        XCTAssertEqual(data["stored_bytes"] as? Int, regions.reduce(0) { $0 + $1.bytes })
        XCTAssertEqual(data["offset"] as? Int, dataStart)
        XCTAssertEqual(data["bytes"] as? Int, file.count - dataStart)
    }

    func testInfoNamesTheSharedBasisTheHeaderAndTheSparseProjections() throws {
        let (path, model) = try writeTinyFiPS()
        let json = try infoJSON(path)
        let c = model.config
        let m = try XCTUnwrap(json["model"] as? [String: Any])
        XCTAssertEqual(m["dim"] as? Int, c.dim); XCTAssertEqual(m["depth"] as? Int, c.depth)
        XCTAssertEqual(m["heads"] as? Int, c.heads); XCTAssertEqual(m["image_size"] as? Int, c.imageSize)
        XCTAssertEqual(json["labels_count"] as? Int, 4)
        XCTAssertEqual((json["preprocessing"] as? [String: Any])?["crop"] as? Int, c.cropSize)
        XCTAssertTrue(json["plan"] is NSNull, "fips-plan did not write this file")
        let bases = try XCTUnwrap(json["shared_bases"] as? [[String: Any]])
        // The tiny group uses one U for fc1 and fc2 of both blocks: one stored tensor, four names.
        XCTAssertEqual(bases.map { $0["tensor"] as? String }, ["blocks.0.mlp.fc1.U"])
        XCTAssertEqual(bases.first?["factors"] as? [String], ["mlp.fc1.U", "mlp.fc2.U"])
        XCTAssertEqual(bases.first?["blocks"] as? [Int], [0, 1])
        let tensors = try XCTUnwrap(json["tensors"] as? [[String: Any]])
        let v = try XCTUnwrap(tensors.first { $0["name"] as? String == "blocks.1.mlp.fc1.V" })
        XCTAssertEqual(v["dtype"] as? String, "f32-csr")
        XCTAssertGreaterThan(v["aux_bytes"] as? Int ?? 0, 0)
        let u1 = try XCTUnwrap(tensors.first { $0["name"] as? String == "blocks.1.mlp.fc1.U" })
        XCTAssertEqual(u1["stored_in"] as? String, "blocks.0.mlp.fc1.U")
    }

    /// What fips-plan leaves: input limits in configuration words 20–24, NAME.plan.json beside the file.
    func testInfoReportsThePlansInputLimitsAndPlanJSON() throws {
        let (path, model) = try writeTinyFiPS()
        let limits = InputLimits(maxPixels: 640 * 480, maxInputBytes: 256 * 1024, maxConnections: 2, budgetBytes: 24 << 20,
                                 camera: .size(width: 1280, height: 720))
        let planned = TestPaths.temporaryDirectory().appendingPathComponent("planned.fips").path
        let bytes = ArtifactWriter.stampInputLimits([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))), limits)
        try ArtifactWriter.writeAtomically(bytes, to: planned)
        let planJSON = String(planned.dropLast(5)) + ".plan.json"
        try Data("{}".utf8).write(to: URL(fileURLWithPath: planJSON))
        defer { try? FileManager.default.removeItem(atPath: planJSON) }
        let plan = try XCTUnwrap(try infoJSON(planned)["plan"] as? [String: Any])
        XCTAssertEqual(plan["plan_json"] as? String, planJSON)
        var l = try XCTUnwrap(plan["input_limits"] as? [String: Any])
        XCTAssertEqual(l.removeValue(forKey: "camera") as? String, "1280x720", "word 24: the planned camera")
        XCTAssertEqual(l as? [String: Int], ["max_pixels": 640 * 480, "max_input_bytes": 256 * 1024, "max_connections": 2,
                                             "budget_bytes": 24 << 20])
        XCTAssertEqual(try infoJSON(path)["tensor_count"] as? Int, model.tensors.count)
    }
}
