/// Constants of the `.fips` file layout; docs/ARTIFACT.md is the prose version.
public enum ArtifactFormat {
    public static let magic: [UInt8] = Array("FIPSMODL".utf8)
    public static let currentVersion: UInt32 = 1
    public static let headerBytes = 64
    public static let entryBytes = 128
    public static let maxNameBytes = 64
    public static let alignment = 64
}

/// Element encodings of a tensor. Further values are reserved for the N:M,
/// blocked and low-bit formats of later versions.
public enum TensorDType: UInt8 {
    /// IEEE float32, little-endian.
    case f32 = 0
    /// int8, symmetric, one float32 scale per output row (dims[0] rows):
    /// w[r][c] = scale[r] * q[r][c]. Scales live at auxOffset.
    case i8RowScaled = 1
    /// float32 compressed sparse rows of a [rows, cols] matrix: data holds the
    /// nnz values; aux holds u32 rowStart[rows + 1] then u16 colIndex[nnz]
    /// (cols ≤ 65536).
    case f32CSR = 2

    public var name: String {
        switch self {
        case .f32: return "f32"
        case .i8RowScaled: return "i8"
        case .f32CSR: return "f32-csr"
        }
    }
}
