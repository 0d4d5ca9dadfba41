import Foundation
import XCTest
import FipsArtifact
import FipsArtifactWriter
import FipsBLASBackend
import FipsHostModel
import FipsKernels
import FipsViT
import FipsTestSupport

/// The executor's FiPS form of an MLP against the dense MLP it encodes.
final class FactorisedMLPTests: XCTestCase {
    func factorisedPair(rank r: Int, prune: Bool) -> (dense: ViTModel, factorised: ViTModel) {
        makeTinyFactorisedPair(rank: r, prune: prune)
    }

    func run<B: ComputeBackend>(_ ex: ViTExecutor<B>, _ c: ViTConfig) -> ([Float], [Float]) {
        let input = randomFloats(c.channels * c.imageSize * c.imageSize, seed: 3)
        var feats = [Float](repeating: 0, count: c.tokenCount * c.dim)
        var logits = [Float](repeating: 0, count: c.numClasses)
        ex.forward(batch: 1, images: input, features: &feats, logits: &logits)
        return (feats, logits)
    }

    func testFactorisedDenseAndSparseMatchTheDenseMLP() throws {
        for prune in [false, true] {
            let (dense, fact) = factorisedPair(rank: 12, prune: prune)
            XCTAssertNil(fact.validate())
            let ref = run(try ViTExecutor<BLASBackend>.host(dense), dense.config)
            let host = run(try ViTExecutor<BLASBackend>.host(fact, threads: 2), fact.config)
            XCTAssertLessThan(Similarity.maxAbsDifference(host.0, ref.0), 2e-4, "BLAS, pruned \(prune)")

            let path = TestPaths.temporaryDirectory().appendingPathComponent("fact.fips").path
            try ArtifactWriter.write(fact, precision: .f32, to: path)
            let a = try Artifact(path: path)
            let v = try XCTUnwrap(a.tensor("blocks.0.mlp.fc1.V"))
            XCTAssertEqual(v.dtype, prune ? .f32CSR : .f32, "pruned projections are stored sparse")
            let portable = run(try ViTExecutor(artifact: a, backend: PortableBackend()), a.config)
            XCTAssertLessThan(Similarity.maxAbsDifference(portable.0, ref.0), 2e-4, "portable, pruned \(prune)")
            XCTAssertLessThan(Similarity.maxAbsDifference(portable.1, ref.1), 2e-4)
            // The artifact round-trips to the same host model.
            let back = try ArtifactReaderHost.load(path: path)
            XCTAssertEqual(back.tensors["blocks.1.mlp.fc2.V"], fact.tensors["blocks.1.mlp.fc2.V"])
        }
    }

    func testSharedBasisIsStoredOnce() throws {
        let (_, fact) = factorisedPair(rank: 12, prune: false)
        let path = TestPaths.temporaryDirectory().appendingPathComponent("shared.fips").path
        try ArtifactWriter.write(fact, precision: .f32, to: path)
        let a = try Artifact(path: path)
        let us = ["blocks.0.mlp.fc1.U", "blocks.0.mlp.fc2.U", "blocks.1.mlp.fc1.U", "blocks.1.mlp.fc2.U"].map { a.tensor($0)! }
        XCTAssertEqual(Set(us.map { Int(bitPattern: $0.data) }).count, 1, "four names, one copy of U")
        var unshared = fact
        unshared.tensors["blocks.1.mlp.fc2.U"] = HostTensor(shape: [16, 12], data: randomFloats(16 * 12, seed: 99))
        let path2 = TestPaths.temporaryDirectory().appendingPathComponent("unshared.fips").path
        try ArtifactWriter.write(unshared, precision: .f32, to: path2)
        // A second basis costs exactly its 16×12 floats (768 bytes, already 64-aligned).
        XCTAssertEqual(try Artifact(path: path2).fileBytes - a.fileBytes, 768)
    }

    func testSparseKernelsAgainstDense() {
        // A 5×7 matrix with a third of its entries kept, as CSR.
        let rows = 5, cols = 7
        var dense = randomFloats(rows * cols, seed: 8)
        for k in 0..<dense.count where k % 3 != 1 { dense[k] = 0 }
        var starts: [UInt32] = [0], index = [UInt16](), values = [Float]()
        for r in 0..<rows {
            for c in 0..<cols where dense[r * cols + c] != 0 { values.append(dense[r * cols + c]); index.append(UInt16(c)) }
            starts.append(UInt32(values.count))
        }
        let a = randomFloats(3 * rows, seed: 2), b = randomFloats(3 * cols, seed: 4)
        var out1 = [Float](repeating: 0, count: 3 * cols), ref1 = out1
        var out2 = [Float](repeating: 0, count: 3 * rows), ref2 = out2
        starts.withUnsafeBufferPointer { s in index.withUnsafeBufferPointer { i in values.withUnsafeBufferPointer { v in
            let sm = SparseMatrix(rows: rows, cols: cols, rowStart: s.baseAddress!, colIndex: i.baseAddress!, values: v.baseAddress!)
            a.withUnsafeBufferPointer { pa in dense.withUnsafeBufferPointer { pd in
                out1.withUnsafeMutableBufferPointer { SparseGemm.multiply(MatrixRef(pa.baseAddress!, rows: 3, cols: rows), sm, bias: nil, into: MutableMatrixRef($0.baseAddress!, rows: 3, cols: cols)) }
                ref1.withUnsafeMutableBufferPointer { F32Gemm.multiply(MatrixRef(pa.baseAddress!, rows: 3, cols: rows), MatrixRef(pd.baseAddress!, rows: rows, cols: cols), bias: nil, into: MutableMatrixRef($0.baseAddress!, rows: 3, cols: cols)) }
            } }
            b.withUnsafeBufferPointer { pb in dense.withUnsafeBufferPointer { pd in
                out2.withUnsafeMutableBufferPointer { SparseGemm.multiplyTransposed(MatrixRef(pb.baseAddress!, rows: 3, cols: cols), sm, bias: nil, into: MutableMatrixRef($0.baseAddress!, rows: 3, cols: rows)) }
                ref2.withUnsafeMutableBufferPointer { F32Gemm.multiplyTransposed(MatrixRef(pb.baseAddress!, rows: 3, cols: cols), MatrixRef(pd.baseAddress!, rows: rows, cols: cols), bias: nil, into: MutableMatrixRef($0.baseAddress!, rows: 3, cols: rows)) }
            } }
        } } }
        XCTAssertLessThan(Similarity.maxAbsDifference(out1, ref1), 1e-6)
        XCTAssertLessThan(Similarity.maxAbsDifference(out2, ref2), 1e-6)
    }
}
