/// Constants of the `.fips` file layout; docs/ARTIFACT.md is the prose version.
public enum ArtifactFormat {
    public static let magic: [UInt8] = Array("FIPSMODL".utf8)
    /// Version 2 added the packed integer formats (dtypes 3–6); version-1
    /// files use only dtypes 0–2 and still load.
    public static let currentVersion: UInt32 = 2
    public static let headerBytes = 64
    public static let entryBytes = 128
    public static let maxNameBytes = 64
    public static let alignment = 64
}

/// Element encodings of a tensor. 3–6 are the packed integer weights of
/// version 2; docs/ARTIFACT.md gives their tile layout.
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
    /// Weights [N, K] as int8 tiles of 16 rows × 32 inputs, one f32 scale per row.
    case q8 = 3
    /// 4-bit tiles, one f32 scale per row per 32 inputs.
    case q4g32 = 4
    /// 3-bit tiles (2-bit and 1-bit planes), one f32 scale per row per 32 inputs.
    case q3g32 = 5
    /// q8 with each tile's zeros elided (a 512-bit mask per tile).
    case q8sparse = 6

    public var name: String {
        switch self {
        case .f32: return "f32"
        case .i8RowScaled: return "i8"
        case .f32CSR: return "f32-csr"
        case .q8: return "q8"
        case .q4g32: return "q4g32"
        case .q3g32: return "q3g32"
        case .q8sparse: return "q8-sparse"
        }
    }

    /// Bits per weight of the packed integer formats, nil for the others.
    public var weightBits: Int? {
        switch self {
        case .q8, .q8sparse: return 8
        case .q4g32: return 4
        case .q3g32: return 3
        default: return nil
        }
    }
}

/// Sizes of the packed integer layout for a logical [rows, cols] weight:
/// rows padded to panels of 16, cols to k-blocks of 32.
public struct PackedShape {
    public let rows, cols: Int
    public var paddedRows: Int { (rows + 15) / 16 * 16 }
    public var paddedCols: Int { (cols + 31) / 32 * 32 }
    public var panels: Int { paddedRows / 16 }
    public var kBlocks: Int { paddedCols / 32 }
    public var tiles: Int { panels * kBlocks }
    public init(rows: Int, cols: Int) { self.rows = rows; self.cols = cols }

    /// Bytes of dense packed data for `dtype` (not q8sparse, whose size is its nonzero count).
    public func denseBytes(_ dtype: TensorDType) -> Int {
        switch dtype {
        case .q8, .q8sparse: return paddedRows * paddedCols
        case .q4g32: return paddedRows * paddedCols / 2
        case .q3g32: return paddedRows * paddedCols * 3 / 8
        default: return 0
        }
    }
    /// Number of f32 scales.
    public func scaleCount(_ dtype: TensorDType) -> Int {
        dtype == .q4g32 || dtype == .q3g32 ? tiles * 16 : paddedRows
    }
    /// q8sparse aux: scales, then tile offsets (padded to 8 bytes), then masks.
    public var sparseOffsetsAt: Int { 4 * paddedRows }
    public var sparseMasksAt: Int { (sparseOffsetsAt + 4 * (tiles + 1) + 7) / 8 * 8 }
    public var sparseAuxBytes: Int { sparseMasksAt + 8 * 8 * tiles }
}
