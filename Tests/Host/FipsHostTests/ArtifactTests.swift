import Foundation
import XCTest
import FipsArtifact
import FipsArtifactWriter
import FipsHostModel
import FipsTestSupport

final class ArtifactTests: XCTestCase {
    func writeTiny(_ precision: ArtifactWriter.Precision, classes: Int = 3) throws -> (ViTModel, String) {
        let m = makeTinyModel(classes: classes)
        let path = TestPaths.temporaryDirectory().appendingPathComponent("tiny.fips").path
        try ArtifactWriter.write(m, precision: precision, to: path)
        return (m, path)
    }

    func testRoundTripIsExactAndAligned() throws {
        let (m, path) = try writeTiny(.f32)
        let a = try Artifact(path: path)
        XCTAssertEqual(a.version, 1)
        XCTAssertEqual(a.config, m.config)
        XCTAssertEqual(a.labels, m.labels)
        XCTAssertEqual(a.tensors.count, m.tensors.count)
        for t in a.tensors {
            XCTAssertEqual(Int(bitPattern: t.data) % 64, 0, "\(t.name) not 64-byte aligned")
            let original = m[t.name]
            XCTAssertEqual(t.shape, original.shape)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: t.floats, count: t.elementCount)), original.data, t.name)
        }
    }

    func testInt8RowsReconstructWithinHalfAStep() throws {
        let (m, path) = try writeTiny(.int8)
        let a = try Artifact(path: path)
        let t = try XCTUnwrap(a.tensor("blocks.0.mlp.fc1.weight"))
        XCTAssertEqual(t.dtype, .i8RowScaled)
        XCTAssertEqual(a.tensor(TensorNames.patchWeight)?.dtype, .f32, "patch embedding stays f32")
        let w = m["blocks.0.mlp.fc1.weight"]
        let cols = w.shape[1]
        for r in 0..<w.shape[0] {
            let s = t.scales![r]
            let rowMax = (0..<cols).map { abs(w.data[r * cols + $0]) }.max()!
            XCTAssertEqual(s, rowMax / 127, accuracy: 1e-7)
            for c in 0..<cols {
                XCTAssertLessThanOrEqual(abs(Float(t.int8s[r * cols + c]) * s - w.data[r * cols + c]), s * 0.5 + 1e-7)
            }
        }
    }

    func testCorruptedPayloadIsRejectedByChecksum() throws {
        let (_, path) = try writeTiny(.f32)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 100] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Artifact(path: path)) { e in
            let msg = (e as! ArtifactError).message
            XCTAssertTrue(msg.hasPrefix(path + ": model data is corrupted (checksum"), msg)
        }
    }

    func testFutureVersionSaysUpdateTheRuntime() throws {
        let m = makeTinyModel()
        let bytes = ArtifactWriter.serialize(config: m.config, labels: [], tensors: ArtifactWriter.encode(m, precision: .f32),
                                             version: 7)
        let path = TestPaths.temporaryDirectory().appendingPathComponent("future.fips").path
        try ArtifactWriter.writeAtomically(bytes, to: path)
        XCTAssertThrowsError(try Artifact(path: path)) { e in
            XCTAssertEqual((e as! ArtifactError).message,
                           "\(path): model format version 7 is not supported by this runtime (supports 1...4); update fips-run")
        }
    }

    /// A distillation token makes the file version 4, so a runtime of version 3
    /// or older refuses it ("update fips-run") instead of running it without the token.
    func testDistillationTokenIsVersionFourAndRoundTrips() throws {
        var m = makeTinyModel(classes: 3)
        let d = m.config.dim
        m.config.hasDistillationToken = true
        m.config.headPooling = .clsAndDistillation
        m.tensors[TensorNames.distToken] = HostTensor(shape: [d], data: (0..<d).map { Float($0) * 0.01 })
        m.tensors[TensorNames.posEmbed] = HostTensor(shape: [m.config.tokenCount, d], data: [Float](repeating: 0.1, count: m.config.tokenCount * d))
        m.tensors[TensorNames.headWeight] = HostTensor(shape: [3, 2 * d], data: [Float](repeating: 0.2, count: 6 * d))
        let path = TestPaths.temporaryDirectory().appendingPathComponent("distilled.fips").path
        try ArtifactWriter.write(m, precision: .f32, to: path)
        let a = try Artifact(path: path)
        XCTAssertEqual(a.version, 4)
        XCTAssertEqual(a.config, m.config)
        XCTAssertTrue(a.config.hasDistillationToken)
        XCTAssertEqual(a.config.prefixTokenCount, 2)
        XCTAssertEqual(a.config.headInputDim, 2 * d)
        // Pooling on the distillation token without one, or the patch mean with one: refused.
        var w = m.config.encode()
        w[10] &= ~4
        XCTAssertEqual(ViTConfig.decode(w).1, "head pooling cls+distillation without a distillation token")
        w = m.config.encode(); w[11] = ViTConfig.HeadPooling.clsAndPatchMean.rawValue
        XCTAssertEqual(ViTConfig.decode(w).1, "head pooling cls+patch mean with a distillation token")
        w = m.config.encode(); w[10] |= 8
        XCTAssertEqual(ViTConfig.decode(w).1, "unknown model flags \(w[10])")
    }

    func testTruncatedEmptyAndForeignFiles() throws {
        let (_, path) = try writeTiny(.f32)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let dir = TestPaths.temporaryDirectory()
        let cut = dir.appendingPathComponent("cut.fips").path
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: cut))
        XCTAssertThrowsError(try Artifact(path: cut)) { e in
            XCTAssertTrue((e as! ArtifactError).message.contains("model file is truncated (header says \(bytes.count) bytes"))
        }
        let empty = dir.appendingPathComponent("empty.fips").path
        FileManager.default.createFile(atPath: empty, contents: Data())
        XCTAssertThrowsError(try Artifact(path: empty)) { e in
            XCTAssertEqual((e as! ArtifactError).message, "\(empty): model file is empty (0 bytes)")
        }
        let onnx = dir.appendingPathComponent("model.onnx").path
        FileManager.default.createFile(atPath: onnx, contents: Data([0x08, 0x07, 0x12, 0x04] + [UInt8](repeating: 1, count: 100)))
        XCTAssertThrowsError(try Artifact(path: onnx)) { e in
            XCTAssertEqual((e as! ArtifactError).message, "\(onnx): not a .fips model (bad magic); convert it with `fips import`")
        }
        XCTAssertThrowsError(try Artifact(path: dir.path)) { e in
            XCTAssertTrue((e as! ArtifactError).message.contains("Is a directory"))
        }
        let missing = dir.appendingPathComponent("nope.fips").path
        XCTAssertThrowsError(try Artifact(path: missing)) { e in
            XCTAssertEqual((e as! ArtifactError).message, "\(missing): cannot read model: No such file or directory")
        }
    }

    func testWriterRefusesIncompleteModelAndLeavesNothing() throws {
        var m = makeTinyModel()
        m.tensors["blocks.1.mlp.fc2.bias"] = nil
        let path = TestPaths.temporaryDirectory().appendingPathComponent("bad.fips").path
        XCTAssertThrowsError(try ArtifactWriter.write(m, precision: .f32, to: path)) { e in
            XCTAssertTrue("\(e)".contains("missing tensor blocks.1.mlp.fc2.bias"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    func testCRC32MatchesZlibCheckValue() {
        let bytes = Array("123456789".utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { CRC32().checksum($0.baseAddress!, count: 9) }, 0xCBF4_3926)
    }
}
