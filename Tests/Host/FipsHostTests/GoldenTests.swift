import Foundation
import XCTest
import FipsArtifact
import FipsArtifactWriter
import FipsBLASBackend
import FipsHostModel
import FipsImport
import FipsViT
import FipsTestSupport

/// The Swift forward pass against onnxruntime on the real DINOv2-S/14 weights
/// (fixtures from scripts/fixtures/make_golden.py).
final class GoldenTests: XCTestCase {
    static let stems = ["chelsea", "coffee", "astronaut"]
    nonisolated(unsafe) static var cachedModel: ViTModel?

    func model() throws -> ViTModel {
        try TestPaths.require(TestPaths.onnxModel)
        if let m = GoldenTests.cachedModel { return m }
        let m = try ONNXImporter.load(path: TestPaths.onnxModel)
        GoldenTests.cachedModel = m
        return m
    }

    func golden(_ stem: String) throws -> (input: HostTensor, features: HostTensor) {
        let dir = TestPaths.golden
        let inPath = dir.appendingPathComponent("\(stem).input.npy").path
        try TestPaths.require(inPath)
        return (try NpyFile.readFloat32(inPath),
                try NpyFile.readFloat32(dir.appendingPathComponent("\(stem).features.npy").path))
    }

    func check(_ ours: [Float], _ ref: HostTensor, _ what: String, maxAbs: Float = 1e-3, minCos: Double = 0.99999) {
        let err = Similarity.maxAbsDifference(ours, ref.data)
        let cos = Similarity.minRowCosine(ours, ref.data, cols: ref.shape[1])
        print("\(what): max abs error \(err), min token cosine \(cos)")
        XCTAssertLessThanOrEqual(err, maxAbs, what)
        XCTAssertGreaterThanOrEqual(cos, minCos, what)
    }

    func testBLASForwardMatchesOnnxRuntime() throws {
        let m = try model()
        let ex = try ViTExecutor<BLASBackend>.host(m, maxBatch: 1, threads: 2)
        for stem in GoldenTests.stems {
            let g = try golden(stem)
            var out = [Float](repeating: 0, count: g.features.count)
            ex.forward(batch: 1, images: g.input.data, features: &out)
            check(out, g.features, "BLAS fp32 \(stem)")
        }
    }

    func testBatchedForwardEqualsSingleImages() throws {
        let m = try model()
        let gs = try GoldenTests.stems.map { try golden($0) }
        let ex = try ViTExecutor<BLASBackend>.host(m, maxBatch: 3, threads: 2)
        let input = gs.flatMap { $0.input.data }
        let per = gs[0].features.count
        var out = [Float](repeating: 0, count: 3 * per)
        ex.forward(batch: 3, images: input, features: &out)
        for (i, g) in gs.enumerated() {
            check(Array(out[(i * per)..<((i + 1) * per)]), g.features, "BLAS batch 3, image \(i)")
        }
    }

    /// The device executor (portable kernels, no BLAS) over the written artifact.
    func testPortableForwardFromArtifactMatchesOnnxRuntime() throws {
        let m = try model()
        let path = TestPaths.temporaryDirectory().appendingPathComponent("dinov2.fips").path
        try ArtifactWriter.write(m, precision: .f32, to: path)
        let a = try Artifact(path: path)
        let ex = try ViTExecutor(artifact: a, backend: PortableBackend())
        let g = try golden("chelsea")
        var out = [Float](repeating: 0, count: g.features.count)
        ex.forward(batch: 1, images: g.input.data, features: &out)
        check(out, g.features, "portable fp32 chelsea")
    }

    func testInt8ArtifactKeepsClsDirection() throws {
        let m = try model()
        let path = TestPaths.temporaryDirectory().appendingPathComponent("dinov2.int8.fips").path
        try ArtifactWriter.write(m, precision: .int8, to: path)
        let a = try Artifact(path: path)
        XCTAssertLessThan(a.fileBytes, 30_000_000, "int8 artifact should be about a quarter of fp32")
        let ex = try ViTExecutor(artifact: a, backend: PortableBackend())
        for stem in GoldenTests.stems {
            let g = try golden(stem)
            var out = [Float](repeating: 0, count: g.features.count)
            ex.forward(batch: 1, images: g.input.data, features: &out)
            let d = g.features.shape[1]
            let cos = Similarity.cosine(Array(out[0..<d]), Array(g.features.data[0..<d]))
            print("int8 \(stem): CLS cosine vs fp32 reference \(cos)")
            XCTAssertGreaterThanOrEqual(cos, 0.99, stem)
        }
    }
}
