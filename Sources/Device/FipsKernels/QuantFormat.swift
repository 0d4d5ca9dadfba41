import CFipsKernels

/// The packed weight formats, as the one table in fips_qgemm.h
/// (`FIPS_QFORMAT_TABLE`) defines them: this file is the only Swift view of
/// that table, and every Swift question about a format (its name, bits,
/// range, tile bytes, scale groups, padding) goes through it. The raw value is
/// the format's id, which is also its artifact TensorDType value.
public struct QuantFormat: Hashable {
    public let rawValue: Int32

    /// nil when `rawValue` names no packed format.
    public init?(rawValue: Int32) {
        guard fips_qformat_traits_of(rawValue) != nil else { return nil }
        self.rawValue = rawValue
    }
    private init(id: Int32) { self.rawValue = id }

    /// int8 [-127, 127], one scale per output row.
    public static var q8: QuantFormat { QuantFormat(id: FIPS_QFORMAT_Q8) }
    /// int4 [-8, 7], one scale per output row and 32 inputs.
    public static var q4g32: QuantFormat { QuantFormat(id: FIPS_QFORMAT_Q4G32) }
    /// int3 [-4, 3], as q4g32.
    public static var q3g32: QuantFormat { QuantFormat(id: FIPS_QFORMAT_Q3G32) }
    /// int2 [-2, 1], as q4g32 (q3g32's 2-bit planes alone).
    public static var q2g32: QuantFormat { QuantFormat(id: FIPS_QFORMAT_Q2G32) }
    /// q8 with zeros elided per 16×32 tile (masks + offsets).
    public static var q8sparse: QuantFormat { QuantFormat(id: FIPS_QFORMAT_Q8SPARSE) }
    /// Every format, in table order.
    public static var all: [QuantFormat] { [.q8, .q4g32, .q3g32, .q8sparse, .q2g32] }

    private var traits: fips_qformat_traits { fips_qformat_traits_of(rawValue)!.pointee }

    /// The name the artifact tools print ("q8", "q4g32", "q3g32", "q8-sparse", "q2g32").
    public var name: String { String(cString: traits.name) }
    /// Bits per logical weight.
    public var bits: Int { Int(traits.bits) }
    /// The logical value range.
    public var valueRange: ClosedRange<Int> { Int(traits.min_value)...Int(traits.max_value) }
    /// Stored bytes of one tile (for a sparse format, the dense upper bound).
    public var tileBytes: Int { Int(traits.tile_bytes) }
    /// Inputs per scale; 0 when there is one scale per output row.
    public var groupSize: Int { Int(traits.group_size) }
    /// True for the formats with one scale per `groupSize` inputs (q4g32, q3g32, q2g32).
    public var hasBlockScales: Bool { groupSize != 0 }
    /// Zeros elided: data is the nonzero bytes, aux carries offsets and masks.
    public var isSparse: Bool { traits.sparse != 0 }
    /// The alignment the artifact requires of the aux region.
    public var auxAlignment: Int { Int(traits.aux_alignment) }

    /// The bit-widths of the dense formats, widest first: what `--bits` accepts.
    public static var denseBits: [Int] { all.filter { !$0.isSparse }.map { $0.bits } }

    /// The dense packed format of a bit-width (8, 4, 3 or 2).
    public static func dense(bits: Int) -> QuantFormat? {
        for f in all where !f.isSparse && f.bits == bits { return f }
        return nil
    }
}

/// Sizes of the packed layout for a logical [rows, cols] weight: rows padded
/// to panels of `panelRows`, cols to k-blocks of `blockCols` (the table's
/// padding; docs/ARTIFACT.md draws the tiles).
public struct PackedShape {
    public static let panelRows = Int(FIPS_QPANEL_ROWS)
    public static let blockCols = Int(FIPS_QBLOCK_COLS)
    public let rows, cols: Int
    public init(rows: Int, cols: Int) { self.rows = rows; self.cols = cols }

    public var paddedRows: Int { PackedShape.paddedRows(rows) }
    public var paddedCols: Int { PackedShape.paddedCols(cols) }
    public var panels: Int { paddedRows / PackedShape.panelRows }
    public var kBlocks: Int { paddedCols / PackedShape.blockCols }
    public var tiles: Int { panels * kBlocks }
    /// `rows` rounded up to whole panels.
    public static func paddedRows(_ rows: Int) -> Int { (rows + panelRows - 1) / panelRows * panelRows }
    /// `cols` rounded up to whole k-blocks.
    public static func paddedCols(_ cols: Int) -> Int { (cols + blockCols - 1) / blockCols * blockCols }

    /// Bytes of dense packed data (for a sparse format, the upper bound its nonzeros cannot pass).
    public func denseBytes(_ f: QuantFormat) -> Int { tiles * f.tileBytes }
    /// Number of packed f32 scales.
    public func scaleCount(_ f: QuantFormat) -> Int {
        f.hasBlockScales ? paddedRows * ((cols + f.groupSize - 1) / f.groupSize) : paddedRows
    }
    /// Sparse aux: scales, then tile offsets (padded to 8 bytes), then masks.
    public var sparseOffsetsAt: Int { 4 * paddedRows }
    public var sparseMasksAt: Int { (sparseOffsetsAt + 4 * (tiles + 1) + 7) / 8 * 8 }
    public var sparseAuxBytes: Int { sparseMasksAt + 8 * 8 * tiles }
}
