import CFipsKernels

/// Quantised linear layers: y = x·Wᵀ + b with W packed in one of the artifact
/// v2 formats and x quantised to int8 per row. The arithmetic lives in C
/// (CFipsKernels: vpdpbusd / sdot intrinsics, chosen at run time); every
/// kernel gives the same bits, so the choice only changes the speed.
/// The packed layouts and the exact contract: docs/KERNELS.md.

/// A packed weight matrix of logical shape [rows = N outputs][cols = K inputs],
/// borrowed (typically from a mapped artifact). Pointers need no alignment.
public struct QuantizedMatrix {
    public var format: QuantFormat
    public var rows: Int
    public var cols: Int
    public var data: UnsafeRawPointer
    /// [paddedRows] for q8 / q8sparse, [panels][kBlocks][16] for q4g32 / q3g32.
    public var scales: UnsafePointer<Float>
    /// q8sparse only: u32 [panels·kBlocks + 1] byte offsets of each tile's nonzeros.
    public var offsets: UnsafePointer<UInt32>?
    /// q8sparse only: u64 [panels·kBlocks·8] nonzero masks.
    public var masks: UnsafePointer<UInt64>?

    public init(format: QuantFormat, rows: Int, cols: Int, data: UnsafeRawPointer, scales: UnsafePointer<Float>,
                offsets: UnsafePointer<UInt32>? = nil, masks: UnsafePointer<UInt64>? = nil) {
        precondition(rows > 0 && cols > 0 && rows <= Int(Int32.max) && cols <= Int(Int32.max), "QuantizedMatrix: bad shape")
        precondition(!format.isSparse || (offsets != nil && masks != nil), "QuantizedMatrix: q8sparse needs offsets and masks")
        self.format = format
        self.rows = rows
        self.cols = cols
        self.data = data
        self.scales = scales
        self.offsets = offsets
        self.masks = masks
    }

    /// The padded sizes (whole panels and k-blocks).
    public var shape: PackedShape { PackedShape(rows: rows, cols: cols) }
    /// Outputs rounded up to whole panels of 16.
    public var paddedRows: Int { shape.paddedRows }
    /// Inputs rounded up to whole k-blocks of 32.
    public var paddedCols: Int { shape.paddedCols }
    public var panels: Int { shape.panels }
    public var kBlocks: Int { shape.kBlocks }

    var cMatrix: fips_qmatrix {
        fips_qmatrix(format: format.rawValue, rows: Int32(rows), cols: Int32(cols), data: data, scales: scales,
                     offsets: offsets, masks: masks)
    }
}

/// One of the compiled GEMM kernels. Only kernels this CPU can run can be
/// made, so a QuantKernel value is always safe to call.
public struct QuantKernel: Equatable {
    public let id: Int32

    private init(unchecked id: Int32) { self.id = id }

    /// The kernel with this id, nil when the id is unknown or this CPU lacks it.
    public init?(id: Int32) {
        guard fips_qgemm_kernel_supported(id) != 0 else { return nil }
        self.id = id
    }

    /// "scalar", "avx2", "avx512vnni", "neon", "neon-dotprod"; nil when the
    /// name is unknown or this CPU cannot run that kernel.
    public init?(name: String) {
        var found: Int32? = nil
        for id in 0..<FIPS_QKERNEL_COUNT where QuantKernel.name(of: id) == name { found = id }
        guard let id = found else { return nil }
        self.init(id: id)
    }

    public var name: String { QuantKernel.name(of: id) ?? "?" }

    /// The fastest kernel this CPU runs.
    public static var best: QuantKernel { QuantKernel(unchecked: fips_qgemm_best_kernel()) }
    /// The portable reference; runs everywhere.
    public static var scalar: QuantKernel { QuantKernel(unchecked: FIPS_QKERNEL_SCALAR) }
    /// Every kernel this CPU runs, scalar first.
    public static var available: [QuantKernel] {
        var all: [QuantKernel] = []
        for id in 0..<FIPS_QKERNEL_COUNT where fips_qgemm_kernel_supported(id) != 0 { all.append(QuantKernel(unchecked: id)) }
        return all
    }
    /// Names of every kernel compiled for any architecture (for messages).
    public static var allNames: [String] {
        var names: [String] = []
        for id in 0..<FIPS_QKERNEL_COUNT { if let n = name(of: id) { names.append(n) } }
        return names
    }
    /// The kernel the environment variable FIPS_KERNEL names, or `best` when
    /// it is unset; nil when it names an unknown or unsupported kernel.
    public static func fromEnvironment() -> QuantKernel? {
        let id = fips_qgemm_env_kernel()
        return id >= 0 ? QuantKernel(unchecked: id) : nil
    }

    private static func name(of id: Int32) -> String? {
        guard let p = fips_qgemm_kernel_name(id) else { return nil }
        return String(cString: p)
    }
}

/// Quantised activations as the GEMM reads them (caller-owned buffers):
/// data int8 [rows][paddedCols] (zero past `cols`), scales [rows] and the
/// per-32-column sums groupSums [rows][kBlocks].
public struct QuantizedActivations {
    public var rows: Int
    public var cols: Int
    public var data: UnsafeMutablePointer<Int8>
    public var scales: UnsafeMutablePointer<Float>
    public var groupSums: UnsafeMutablePointer<Int32>

    public init(rows: Int, cols: Int, data: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>,
                groupSums: UnsafeMutablePointer<Int32>) {
        precondition(rows >= 0 && cols > 0, "QuantizedActivations: bad shape")
        self.rows = rows
        self.cols = cols
        self.data = data
        self.scales = scales
        self.groupSums = groupSums
    }

    public var paddedCols: Int { PackedShape.paddedCols(cols) }
    public var kBlocks: Int { paddedCols / PackedShape.blockCols }
    /// Element counts of the three buffers for `rows` × `cols`.
    public static func dataCount(rows: Int, cols: Int) -> Int { rows * PackedShape.paddedCols(cols) }
    public static func groupSumCount(rows: Int, cols: Int) -> Int { rows * (PackedShape.paddedCols(cols) / PackedShape.blockCols) }
}

/// Logical weights packed by `QuantizedGemm.pack`, owning their arrays.
public struct PackedQuantMatrix {
    public var format: QuantFormat
    public var rows: Int
    public var cols: Int
    public var data: [UInt8]
    public var scales: [Float]
    public var offsets: [UInt32]   // empty unless q8sparse
    public var masks: [UInt64]     // empty unless q8sparse

    /// The borrowed view, valid inside `body` only.
    public func withMatrix<R>(_ body: (QuantizedMatrix) -> R) -> R {
        data.withUnsafeBytes { d in
            scales.withUnsafeBufferPointer { s in
                offsets.withUnsafeBufferPointer { o in
                    masks.withUnsafeBufferPointer { mk in
                        // A q8sparse matrix of all zeros has no data bytes; any valid address will do.
                        let dp = d.baseAddress ?? UnsafeRawPointer(s.baseAddress!)
                        return body(QuantizedMatrix(format: format, rows: rows, cols: cols, data: dp, scales: s.baseAddress!,
                                                    offsets: format.isSparse ? o.baseAddress : nil,
                                                    masks: format.isSparse ? mk.baseAddress : nil))
                    }
                }
            }
        }
    }
}

public enum QuantizedGemm {
    /// a_q = clamp(roundToNearestEven(x·(1/s)), ±127) with s = staticScale for
    /// every row, or s = amax/127 per row (1 for an all-zero row) when nil.
    /// Quantises rows `rows` (default all) of `x` into the same rows of `a`.
    public static func quantizeActivations(_ x: MatrixRef<Float>, staticScale: Float?, kernel: QuantKernel = .best,
                                           into a: QuantizedActivations, rows: Range<Int>? = nil) {
        let r = rows ?? 0..<x.rows
        precondition(x.cols == a.cols && r.lowerBound >= 0 && r.upperBound <= x.rows && r.upperBound <= a.rows,
                     "QuantizedGemm.quantizeActivations shape mismatch")
        if r.isEmpty { return }
        var s = staticScale ?? 0
        let rc = withUnsafePointer(to: &s) { sp in
            fips_quantize_rows(kernel.id, x.row(r.lowerBound), x.stride, Int32(r.count), Int32(x.cols),
                               staticScale == nil ? nil : sp, a.data + r.lowerBound * a.paddedCols,
                               a.scales + r.lowerBound, a.groupSums + r.lowerBound * a.kBlocks)
        }
        precondition(rc == 0, "fips_quantize_rows refused its arguments")
    }

    /// out[m][n] for m in `rows` and the outputs n < w.rows of `panels`
    /// (n in 16p ..< 16p+16). Row m of `out` is activation row m; columns past
    /// w.rows are never written. Any split of rows or panels (threads) gives
    /// the same bits. `scratch` holds `scratchBytes(for: w)` bytes, one per thread.
    public static func multiply(kernel: QuantKernel, a: QuantizedActivations, rows: Range<Int>, w: QuantizedMatrix,
                                panels: Range<Int>, bias: UnsafePointer<Float>?, into out: MutableMatrixRef<Float>,
                                scratch: UnsafeMutableRawPointer) {
        precondition(a.cols == w.cols && rows.lowerBound >= 0 && rows.upperBound <= a.rows && rows.upperBound <= out.rows
                     && panels.lowerBound >= 0 && panels.upperBound <= w.panels
                     && out.cols >= min(16 * panels.upperBound, w.rows), "QuantizedGemm.multiply shape mismatch")
        if rows.isEmpty || panels.isEmpty { return }
        var m = w.cMatrix
        let rc = fips_qgemm(kernel.id, a.data, a.scales, a.groupSums, Int32(rows.lowerBound), Int32(rows.upperBound), &m,
                            Int32(panels.lowerBound), Int32(panels.upperBound), bias, out.base, out.stride, scratch)
        precondition(rc == 0, "fips_qgemm refused its arguments")
    }

    /// Scratch bytes `multiply` needs for `w` (per thread).
    public static func scratchBytes(for w: QuantizedMatrix) -> Int {
        var m = w.cMatrix
        return fips_qgemm_scratch_bytes(&m)
    }

    /// Packs logical values [rows][cols] with logical scales ([rows] for q8 /
    /// q8sparse, [rows][ceil(cols/32)] for q4g32 / q3g32). Nil when a value is
    /// outside the format's range or a count is wrong.
    public static func pack(_ values: [Int8], scales: [Float], rows: Int, cols: Int, format: QuantFormat) -> PackedQuantMatrix? {
        guard rows > 0 && cols > 0 && values.count == rows * cols,
              scales.count == fips_qpack_logical_scale_count(format.rawValue, Int32(rows), Int32(cols)) else { return nil }
        let f = format.rawValue, r = Int32(rows), c = Int32(cols)
        let tiles = fips_qpack_tile_count(r, c)
        let dataBytes = values.withUnsafeBufferPointer { fips_qpack_data_bytes(f, r, c, $0.baseAddress) }
        // (one spare byte: an all-zero q8sparse matrix has no data but C wants an address)
        var data = [UInt8](repeating: 0, count: dataBytes + 1)
        var packedScales = [Float](repeating: 0, count: fips_qpack_scale_count(f, r, c))
        var offsets = [UInt32](repeating: 0, count: format.isSparse ? tiles + 1 : 0)
        var masks = [UInt64](repeating: 0, count: format.isSparse ? tiles * 8 : 0)
        let rc = values.withUnsafeBufferPointer { v in
            scales.withUnsafeBufferPointer { s in
                data.withUnsafeMutableBytes { d in
                    packedScales.withUnsafeMutableBufferPointer { ps in
                        offsets.withUnsafeMutableBufferPointer { o in
                            masks.withUnsafeMutableBufferPointer { mk in
                                fips_qpack(f, r, c, v.baseAddress, s.baseAddress, d.baseAddress,
                                           ps.baseAddress, format.isSparse ? o.baseAddress : nil,
                                           format.isSparse ? mk.baseAddress : nil)
                            }
                        }
                    }
                }
            }
        }
        guard rc == 0 else { return nil }
        data.removeLast()
        return PackedQuantMatrix(format: format, rows: rows, cols: cols, data: data, scales: packedScales,
                                 offsets: offsets, masks: masks)
    }

    /// The logical values [rows][cols] and logical scales of a packed matrix.
    public static func unpack(_ w: QuantizedMatrix) -> (values: [Int8], scales: [Float]) {
        var values = [Int8](repeating: 0, count: w.rows * w.cols)
        var scales = [Float](repeating: 0, count: fips_qpack_logical_scale_count(w.format.rawValue, Int32(w.rows), Int32(w.cols)))
        var m = w.cMatrix
        let rc = values.withUnsafeMutableBufferPointer { v in
            scales.withUnsafeMutableBufferPointer { s in fips_qunpack(&m, v.baseAddress, s.baseAddress) }
        }
        precondition(rc == 0, "fips_qunpack refused its arguments")
        return (values, scales)
    }
}
