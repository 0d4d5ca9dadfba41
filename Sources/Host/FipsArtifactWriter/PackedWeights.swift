import FipsArtifact
import FipsKernels

/// The packed integer formats of artifact version 2 to and from logical
/// values, through the kernels' own packer (`fips_qpack` / `fips_qunpack`),
/// so the tile layout is written down once; QuantKernelTests checks that
/// packer against an independent decoder of docs/ARTIFACT.md. Host code: the
/// device never packs or unpacks a whole tensor.
public enum PackedWeights {
    /// Logical integers [rows, cols] and logical scales: [rows] for q8, else
    /// [rows, ceil(cols / 32)].
    public struct Logical {
        public var bits: Int
        public var rows: Int
        public var cols: Int
        public var values: [Int8]
        public var scales: [Float]
        public var groups: Int { bits == 8 ? 1 : (cols + 31) / 32 }

        public init(bits: Int, rows: Int, cols: Int, values: [Int8], scales: [Float]) {
            self.bits = bits; self.rows = rows; self.cols = cols; self.values = values; self.scales = scales
        }

        public func dequantized() -> [Float] {
            var out = [Float](repeating: 0, count: rows * cols)
            for r in 0..<rows {
                for c in 0..<cols {
                    let s = bits == 8 ? scales[r] : scales[r * groups + c / 32]
                    out[r * cols + c] = s * Float(values[r * cols + c])
                }
            }
            return out
        }
    }

    public static func unpack(_ v: TensorView) -> Logical? {
        guard let format = v.dtype.packedFormat, v.shape.count == 2, let scales = v.scales else { return nil }
        if format.isSparse && (v.tileOffsets == nil || v.tileMasks == nil) { return nil }
        let m = QuantizedMatrix(format: format, rows: v.shape[0], cols: v.shape[1], data: v.data, scales: scales,
                                offsets: v.tileOffsets, masks: v.tileMasks)
        let (values, logicalScales) = QuantizedGemm.unpack(m)
        return Logical(bits: format.bits, rows: m.rows, cols: m.cols, values: values, scales: logicalScales)
    }
}

extension PackedWeights {
    /// A packed tensor ready for the artifact: data and aux as docs/ARTIFACT.md lays them out.
    public struct Packed {
        public var dtype: TensorDType
        public var data: [UInt8]
        public var aux: [UInt8]
    }

    /// The dense packed format of a bit-width (8, 4, 3 or 2).
    public static func denseType(bits: Int) -> TensorDType {
        // (any other width gets q3g32, as it always has)
        TensorDType(rawValue: UInt8((QuantFormat.dense(bits: bits) ?? .q3g32).rawValue))!
    }

    /// Packs logical values into `dtype` (q8, q4g32, q3g32, q2g32 or q8sparse).
    /// `l.bits` must be 8 for q8/q8sparse, 4, 3 or 2 for the grouped formats.
    public static func pack(_ l: Logical, as dtype: TensorDType) -> Packed {
        precondition(dtype.weightBits == l.bits, "\(dtype.name) holds \(dtype.weightBits ?? 0)-bit values, got \(l.bits)")
        guard let format = dtype.packedFormat,
              let m = QuantizedGemm.pack(l.values, scales: l.scales, rows: l.rows, cols: l.cols, format: format) else {
            preconditionFailure("\(dtype.name) \(l.rows)x\(l.cols): a value outside the format's range or a wrong scale count")
        }
        // aux: the packed scales; for q8sparse then the tile offsets and,
        // 8-byte aligned, the masks.
        var aux = m.scales.withUnsafeBytes { Array($0) }
        if format.isSparse {
            aux += m.offsets.withUnsafeBytes { Array($0) }
            while aux.count < PackedShape(rows: l.rows, cols: l.cols).sparseMasksAt { aux.append(0) }
            aux += m.masks.withUnsafeBytes { Array($0) }
        }
        return Packed(dtype: dtype, data: m.data, aux: aux)
    }
}

extension QuantFormat {
    /// "8, 4, 3 or 2": the dense bit-widths, for the tools' messages (host only:
    /// Embedded Swift lacks the string formatting).
    public static var denseBitsText: String {
        let b = denseBits.map(String.init)
        return b.dropLast().joined(separator: ", ") + " or " + b.last!
    }
}
