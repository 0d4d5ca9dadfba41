import FipsArtifactWriter
import FipsKernels

/// A linear weight W [rows = outputs, cols = inputs] as symmetric integers and
/// float scales: the LOGICAL values the runtime's packer (docs/ARTIFACT.md, "Packed integer weights") lays out
/// into tiles. ŵ[r][k] = scale(r, k) · values[r][k].
public struct QuantizedWeight: Equatable {
    /// 8, 4, 3 or 2.
    public var bits: Int
    public var rows: Int
    public var cols: Int
    /// Inputs sharing one scale within a row: 0 = the whole row (8 bits), else 32.
    public var groupSize: Int
    /// Row-major [rows, cols], each in `QuantLevels(bits)`'s range.
    public var values: [Int8]
    /// [rows] when groupSize is 0, else row-major [rows, groups].
    public var scales: [Float]

    public init(bits: Int, rows: Int, cols: Int, groupSize: Int, values: [Int8], scales: [Float]) {
        precondition(values.count == rows * cols, "values \(values.count) for [\(rows), \(cols)]")
        self.bits = bits
        self.rows = rows
        self.cols = cols
        self.groupSize = groupSize
        self.values = values
        self.scales = scales
        precondition(scales.count == rows * groups, "scales \(scales.count) for \(rows) rows x \(groups) groups")
    }

    /// Scales per row: 1, or ceil(cols / groupSize).
    public var groups: Int { groupSize == 0 ? 1 : (cols + groupSize - 1) / groupSize }

    /// The scale of input `col` in row `row`.
    @inline(__always)
    public func scale(row: Int, col: Int) -> Float {
        groupSize == 0 ? scales[row] : scales[row * groups + col / groupSize]
    }

    /// ŵ row-major [rows, cols].
    public func dequantized() -> [Float] {
        var out = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            for k in 0..<cols { out[r * cols + k] = scale(row: r, col: k) * Float(values[r * cols + k]) }
        }
        return out
    }
}

/// How the integers are chosen.
public enum WeightRounding: Equatable {
    /// Round to nearest with a per-group clipping search (4/3 bits) or
    /// amax / 127 (8 bits): needs no data.
    case nearest
    /// GPTQ: rounds input by input and pushes each rounding error onto the
    /// not-yet-rounded inputs through the inverse input Hessian; needs H = XᵀX.
    case gptq
}

/// The integer grid of a bit width: symmetric scale, two's-complement range
/// (the 4-, 3- and 2-bit formats keep the extra negative level: -8 / -4 / -2;
/// a 2-bit scale may be negative, which moves that level to the positive side).
public struct QuantLevels {
    public let bits: Int
    public let min: Float
    public let max: Float

    public init(bits: Int) {
        precondition(QuantFormat.denseBits.contains(bits), "bits must be \(QuantFormat.denseBitsText), not \(bits)")
        self.bits = bits
        // 8 bits stays symmetric ([-127, 127]): the q8 kernels and the
        // activation grid never use -128.
        if bits == 8 { min = -127; max = 127 } else {
            min = -Float(1 << (bits - 1)); max = Float((1 << (bits - 1)) - 1)
        }
    }

    /// Inputs per scale: 0 (per row) at 8 bits, 32 below.
    public var groupSize: Int { bits == 8 ? 0 : 32 }

    /// clamp(roundToNearestEven(w · (1 / s))) as a Float holding an integer
    /// (a reciprocal, not a division: the clip search's SIMD lanes multiply,
    /// and every caller must round exactly as the search scored).
    /// Clamping first is the same (the bounds are integers) and keeps the
    /// value small enough for the 1.5·2²³ trick, which rounds to nearest
    /// even in two adds: `rounded(.toNearestOrEven)` compiles to a libm call
    /// on the baseline x86-64 target, which dominated the clip search.
    @inline(__always)
    public func level(_ w: Float, scale s: Float) -> Float {
        let v = Swift.min(max, Swift.max(min, w * (1 / s)))
        return (v + QuantLevels.roundingMagic) - QuantLevels.roundingMagic
    }

    static let roundingMagic: Float = 12_582_912  // 1.5 · 2²³
}
