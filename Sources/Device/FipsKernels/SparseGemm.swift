/// A sparse matrix in compressed sparse rows: the nonzeros of row i are
/// values[rowStart[i] ..< rowStart[i+1]] at columns colIndex[...].
/// FiPS prunes the projections V; CSR keeps the artifact at the size of the
/// kept weights whatever the pattern (unstructured, N:M or blocks).
public struct SparseMatrix {
    public var rows: Int
    public var cols: Int
    public var rowStart: UnsafePointer<UInt32>   // rows + 1
    public var colIndex: UnsafePointer<UInt16>   // nnz; u16 keeps CSR smaller than dense above 1/3 sparsity
    public var values: UnsafePointer<Float>      // nnz

    public init(rows: Int, cols: Int, rowStart: UnsafePointer<UInt32>, colIndex: UnsafePointer<UInt16>,
                values: UnsafePointer<Float>) {
        self.rows = rows
        self.cols = cols
        self.rowStart = rowStart
        self.colIndex = colIndex
        self.values = values
    }

    public var nonzeros: Int { Int(rowStart[rows]) }
}

public enum SparseGemm {
    /// out = a · S (+ bias): a [M, S.rows], out [M, S.cols]. Scatter form:
    /// each a[m][i] scales the nonzeros of row i.
    public static func multiply(_ a: MatrixRef<Float>, _ s: SparseMatrix, bias: UnsafePointer<Float>?,
                                into out: MutableMatrixRef<Float>) {
        precondition(a.cols == s.rows && out.cols == s.cols && out.rows == a.rows, "SparseGemm.multiply shape mismatch")
        for m in 0..<a.rows {
            let o = out.row(m), ar = a.row(m)
            if let bias = bias { o.update(from: bias, count: s.cols) } else { o.update(repeating: 0, count: s.cols) }
            for i in 0..<s.rows {
                let x = ar[i]
                if x == 0 { continue }
                var p = Int(s.rowStart[i])
                let end = Int(s.rowStart[i + 1])
                while p < end { o[Int(s.colIndex[p])] += x * s.values[p]; p += 1 }
            }
        }
    }

    /// out = a · Sᵀ (+ bias): a [M, S.cols], out [M, S.rows]. Gather form:
    /// a dot product of each activation row with each sparse row.
    public static func multiplyTransposed(_ a: MatrixRef<Float>, _ s: SparseMatrix, bias: UnsafePointer<Float>?,
                                          into out: MutableMatrixRef<Float>) {
        precondition(a.cols == s.cols && out.cols == s.rows && out.rows == a.rows, "SparseGemm.multiplyTransposed shape mismatch")
        for m in 0..<a.rows {
            let o = out.row(m), ar = a.row(m)
            for i in 0..<s.rows {
                var acc: Float = bias?[i] ?? 0
                var p = Int(s.rowStart[i])
                let end = Int(s.rowStart[i + 1])
                while p < end { acc += ar[Int(s.colIndex[p])] * s.values[p]; p += 1 }
                o[i] = acc
            }
        }
    }
}
