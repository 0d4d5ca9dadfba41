import FipsKernels

/// Constants of the `.fips` file layout; docs/ARTIFACT.md is the prose version.
public enum ArtifactFormat {
    public static let magic: [UInt8] = Array("FIPSMODL".utf8)
    /// Version 2 added the packed integer formats (dtypes 3–6), version 3 the
    /// 2-bit q2g32 (dtype 7), version 4 the distillation token (configuration
    /// flag bit 2, tensor `dist_token`); nothing else changed, so older files
    /// still load. A writer uses the lowest version that holds its model, so a
    /// runtime that predates a feature refuses ("update fips-run") only the
    /// files that use it, instead of running them wrong.
    public static let currentVersion: UInt32 = 4

    /// The lowest version whose readers know every one of `dtypes`.
    public static func lowestVersion<S: Sequence>(holding dtypes: S) -> UInt32 where S.Element == TensorDType {
        dtypes.reduce(1) { max($0, $1.introducedInVersion) }
    }

    /// The lowest version whose readers run a model of this shape.
    public static func lowestVersion(for config: ViTConfig) -> UInt32 {
        config.hasDistillationToken ? 4 : 1
    }
    public static let headerBytes = 64
    public static let entryBytes = 128
    public static let maxNameBytes = 64
    public static let alignment = 64
}

/// Element encodings of a tensor. 3–7 are the packed integer weights of
/// versions 2 (3–6) and 3 (7); docs/ARTIFACT.md gives their tile layout.
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
    /// 2-bit tiles (q3g32's 2-bit planes alone), one f32 scale per row per 32 inputs.
    case q2g32 = 7

    /// The first artifact version that may hold this dtype.
    public var introducedInVersion: UInt32 {
        switch self {
        case .f32, .i8RowScaled, .f32CSR: return 1
        case .q8, .q4g32, .q3g32, .q8sparse: return 2
        case .q2g32: return 3
        }
    }

    /// The packed integer format (fips_qgemm.h's table) of dtypes 3–7, nil for the others.
    public var packedFormat: QuantFormat? { QuantFormat(rawValue: Int32(rawValue)) }

    /// The name the tools print; a packed format's is the table's.
    public var name: String {
        if let f = packedFormat { return f.name }
        switch self {
        case .i8RowScaled: return "i8"
        case .f32CSR: return "f32-csr"
        default: return "f32"
        }
    }

    /// Bits per weight of the packed integer formats, nil for the others.
    public var weightBits: Int? { packedFormat?.bits }
}

/// The packed layout's sizes (FipsKernels' PackedShape, beside the format table) for a dtype.
extension PackedShape {
    /// Bytes of packed data for a packed `dtype` (for q8-sparse the upper bound); 0 for the others.
    public func denseBytes(_ dtype: TensorDType) -> Int { dtype.packedFormat.map { denseBytes($0) } ?? 0 }
    /// Number of packed f32 scales of a packed `dtype`; 0 for the others.
    public func scaleCount(_ dtype: TensorDType) -> Int { dtype.packedFormat.map { scaleCount($0) } ?? 0 }
}
