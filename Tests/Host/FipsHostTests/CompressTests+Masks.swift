import Foundation
import XCTest
import FipsArtifact
import FipsHostModel
import FipsCompress
import FipsKernels

/// FipsCompress: sparsity masks (CompressTests, continued).
extension CompressTests {
    // MARK: masks

    func testGlobalUnstructuredMaskIsExact() throws {
        let shapes = [MaskShape(rows: 8, cols: 24, reduction: .rows), MaskShape(rows: 8, cols: 24, reduction: .columns),
                      MaskShape(rows: 5, cols: 7, reduction: .rows)]
        var values = shapes.enumerated().map { randomFloats($0.element.count, seed: 300 + UInt64($0.offset)) }
        values[1] = values[1].map { $0 * 0.1 }  // a weak layer: global ranking prunes it more
        for i in stride(from: 0, to: 40, by: 2) { values[2][i % 35] = 0.25 }  // ties
        let total = shapes.reduce(0) { $0 + $1.count }
        for s in [0.0, 0.1, 0.37, 0.5, 0.75, 0.9] {
            let mk = try SparsityMask.global(values, shapes: shapes, sparsity: s, pattern: .unstructured)
            let pruned = mk.reduce(0) { $0 + $1.filter { !$0 }.count }
            XCTAssertEqual(pruned, Int((s * Double(total)).rounded()), "s = \(s)")
            // deterministic
            XCTAssertEqual(mk, try SparsityMask.global(values, shapes: shapes, sparsity: s, pattern: .unstructured))
        }
        let mk = try SparsityMask.global(values, shapes: shapes, sparsity: 0.5, pattern: .unstructured)
        XCTAssertGreaterThan(SparsityMask.sparsity(of: [mk[1]]), 0.9)
        XCTAssertLessThan(SparsityMask.sparsity(of: [mk[0]]), 0.5)
        // all-equal values: still exact
        let flat = [[Float](repeating: 1, count: 100)]
        let mf = try SparsityMask.global(flat, shapes: [MaskShape(rows: 10, cols: 10, reduction: .rows)], sparsity: 0.33, pattern: .unstructured)
        XCTAssertEqual(mf[0].filter { !$0 }.count, 33)
        // gradual schedule: monotone masks
        let a = try SparsityMask.global(values, shapes: shapes, sparsity: 0.3, pattern: .unstructured)
        let b = try SparsityMask.global(values, shapes: shapes, sparsity: 0.6, pattern: .unstructured, previous: a)
        for (x, y) in zip(a, b) { for (kx, ky) in zip(x, y) where !kx { XCTAssertFalse(ky) } }
        XCTAssertEqual(SparsityMask.cubicSchedule(step: 0, endStep: 100, finalSparsity: 0.8), 0)
        XCTAssertEqual(SparsityMask.cubicSchedule(step: 50, endStep: 100, finalSparsity: 0.8), 0.8 * (1 - 0.125), accuracy: 1e-12)
        XCTAssertEqual(SparsityMask.cubicSchedule(step: 100, endStep: 100, finalSparsity: 0.8), 0.8)
        XCTAssertEqual(SparsityMask.cubicSchedule(step: 300, endStep: 100, finalSparsity: 0.8), 0.8)
    }

    func testTwoFourMaskAlongReductionAxis() throws {
        let shapes = [MaskShape(rows: 8, cols: 12, reduction: .rows), MaskShape(rows: 8, cols: 12, reduction: .columns)]
        let values = shapes.enumerated().map { randomFloats($0.element.count, seed: 400 + UInt64($0.offset)) }
        let mk = try SparsityMask.global(values, shapes: shapes, sparsity: 0.5, pattern: .nm(n: 2, m: 4))
        XCTAssertEqual(SparsityMask.sparsity(of: mk), 0.5)
        // V1 (fc1, z·V1): groups of 4 consecutive rows in each column
        for c in 0..<12 { for g in stride(from: 0, to: 8, by: 4) {
            XCTAssertEqual((g..<(g + 4)).filter { mk[0][$0 * 12 + c] }.count, 2)
        } }
        // V2 (fc2, h·V2ᵀ): groups of 4 consecutive columns in each row
        for r in 0..<8 { for g in stride(from: 0, to: 12, by: 4) {
            XCTAssertEqual((g..<(g + 4)).filter { mk[1][r * 12 + $0] }.count, 2)
        } }
        // the kept two are the largest of each group
        for r in 0..<8 { for g in stride(from: 0, to: 12, by: 4) {
            let kept = (g..<(g + 4)).filter { mk[1][r * 12 + $0] }.map { abs(values[1][r * 12 + $0]) }
            let dropped = (g..<(g + 4)).filter { !mk[1][r * 12 + $0] }.map { abs(values[1][r * 12 + $0]) }
            XCTAssertGreaterThanOrEqual(kept.min()!, dropped.max()!)
        } }
        // an intermediate point of the gradual schedule stays within the final pattern
        let half = try SparsityMask.global(values, shapes: shapes, sparsity: 0.25, pattern: .nm(n: 2, m: 4))
        XCTAssertEqual(SparsityMask.sparsity(of: half), 0.25)
        let fin = try SparsityMask.global(values, shapes: shapes, sparsity: 0.5, pattern: .nm(n: 2, m: 4), previous: half)
        XCTAssertEqual(SparsityMask.sparsity(of: fin), 0.5)
        XCTAssertThrowsError(try SparsityMask.global(values, shapes: shapes, sparsity: 0.6, pattern: .nm(n: 2, m: 4)))
    }

    func testBlockMaskIsExact() throws {
        let shapes = [MaskShape(rows: 8, cols: 16, reduction: .rows), MaskShape(rows: 8, cols: 16, reduction: .columns)]
        let values = shapes.enumerated().map { randomFloats($0.element.count, seed: 500 + UInt64($0.offset)) }
        for (br, bc) in [(1, 8), (4, 4)] {
            let mk = try SparsityMask.global(values, shapes: shapes, sparsity: 0.75, pattern: .block(rows: br, cols: bc))
            XCTAssertEqual(SparsityMask.sparsity(of: mk), 0.75)
            for (i, m) in mk.enumerated() {  // every tile all kept or all pruned
                for r0 in stride(from: 0, to: 8, by: br) { for c0 in stride(from: 0, to: 16, by: bc) {
                    let s = Set((r0..<(r0 + br)).flatMap { r in (c0..<(c0 + bc)).map { m[r * 16 + $0] } })
                    XCTAssertEqual(s.count, 1, "matrix \(i) tile \(r0),\(c0)")
                } }
            }
        }
    }
}
