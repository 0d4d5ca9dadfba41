import XCTest
import Foundation
import FipsArtifact
import FipsHostModel
import FipsImport
import FipsTestSupport

/// Shared paths and the (slow) real-model import, done once per test run.
enum ImportFixtures {
    static let repoRoot = TestPaths.packageRoot
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let onnxPath = repoRoot.appendingPathComponent("data/vit_s_focus.onnx").path

    nonisolated(unsafe) static var cached: ONNXImportResult?

    /// The imported real DINOv2 ViT-S/14, or XCTSkip when data/ lacks it.
    static func realONNX() throws -> ONNXImportResult {
        if let r = cached { return r }
        guard FileManager.default.fileExists(atPath: onnxPath) else {
            throw XCTSkip("data/vit_s_focus.onnx is absent (run scripts/setup.sh)")
        }
        let r = try ONNXImporter.loadRaw(path: onnxPath)
        cached = r
        return r
    }

    static func tempDir(_ name: String) throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("fips-import-\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: u)
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    /// Minimal .npy reader: little-endian float32, C order.
    static func readNpy(_ url: URL) throws -> HostTensor {
        let d = try Data(contentsOf: url)
        let b = [UInt8](d)
        guard b.count > 10, b[0] == 0x93, String(decoding: b[1..<6], as: UTF8.self) == "NUMPY" else {
            throw ImportError(path: url.path, "not a .npy file")
        }
        let headerLen: Int, start: Int
        if b[6] == 1 { headerLen = Int(b[8]) | Int(b[9]) << 8; start = 10 }
        else { headerLen = Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24; start = 12 }
        let header = String(decoding: b[start..<(start + headerLen)], as: UTF8.self)
        guard header.contains("'descr': '<f4'"), header.contains("'fortran_order': False"),
              let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
            throw ImportError(path: url.path, "unsupported .npy header \(header)")
        }
        let shape = header[open.upperBound..<close].split(separator: ",")
            .compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let n = shape.reduce(1, *)
        let dataStart = start + headerLen
        var values = [Float](repeating: 0, count: n)
        d.withUnsafeBytes { raw in
            for i in 0..<n {
                values[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: dataStart + 4 * i, as: UInt32.self)))
            }
        }
        return HostTensor(shape: shape, data: values)
    }
}

extension ImportFixtures {
    static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        var m: Float = 0
        for i in 0..<a.count { m = max(m, abs(a[i] - b[i])) }
        return m
    }

    /// Compares configs and every tensor bit for bit; returns the first difference.
    static func firstDifference(_ a: ViTModel, _ b: ViTModel) -> String? {
        if a.config != b.config { return "configs differ: \(a.config.encode()) vs \(b.config.encode())" }
        if Set(a.tensors.keys) != Set(b.tensors.keys) {
            return "tensor names differ: \(Set(a.tensors.keys).symmetricDifference(b.tensors.keys).sorted())"
        }
        for name in a.tensors.keys.sorted() {
            let x = a.tensors[name]!, y = b.tensors[name]!
            if x.shape != y.shape { return "\(name): shape \(x.shape) vs \(y.shape)" }
            for i in 0..<x.data.count where x.data[i].bitPattern != y.data[i].bitPattern {
                return "\(name)[\(i)]: \(x.data[i]) vs \(y.data[i])"
            }
        }
        return nil
    }
}
