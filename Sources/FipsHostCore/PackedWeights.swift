import FipsArtifact

/// Reads the packed integer formats of artifact version 2 back into logical
/// values, written from docs/ARTIFACT.md independently of the C packer so that
/// each checks the other. Host code: the device never unpacks a whole tensor.
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

    /// The byte position of weight (row, col) inside its tile, and the tile.
    @inline(__always)
    static func position(_ shape: PackedShape, row: Int, col: Int) -> (tile: Int, group: Int, index: Int) {
        let p = row / 16, c = row % 16, b = col / 32, g = (col % 32) / 4, t = col % 4
        return (p * shape.kBlocks + b, g, c * 4 + t)
    }

    public static func unpack(_ v: TensorView) -> Logical? {
        guard let bits = v.dtype.weightBits, v.shape.count == 2, let scales = v.scales else { return nil }
        let rows = v.shape[0], cols = v.shape[1]
        let shape = PackedShape(rows: rows, cols: cols)
        let data = v.data.assumingMemoryBound(to: UInt8.self)
        var values = [Int8](repeating: 0, count: rows * cols)
        // q8sparse: expand every tile first.
        var dense: [UInt8] = []
        if v.dtype == .q8sparse, let offsets = v.tileOffsets, let masks = v.tileMasks {
            dense = [UInt8](repeating: 0, count: shape.tiles * 512)
            for tile in 0..<shape.tiles {
                var at = Int(offsets[tile])
                for i in 0..<512 where masks[tile * 8 + i / 64] >> UInt64(i % 64) & 1 == 1 {
                    dense[tile * 512 + i] = data[at]; at += 1
                }
            }
        }
        for r in 0..<rows {
            for c in 0..<cols {
                let (tile, g, i) = position(shape, row: r, col: c)
                let q: Int
                switch v.dtype {
                case .q8: q = Int(Int8(bitPattern: data[tile * 512 + g * 64 + i]))
                case .q8sparse: q = Int(Int8(bitPattern: dense[tile * 512 + g * 64 + i]))
                case .q4g32:
                    let byte = data[tile * 256 + (g / 2) * 64 + i]
                    q = Int(g % 2 == 0 ? byte & 15 : byte >> 4) - 8
                default:  // q3g32
                    let low = (data[tile * 192 + (g / 4) * 64 + i] >> UInt8(2 * (g % 4))) & 3
                    let high = (data[tile * 192 + 128 + i] >> UInt8(g)) & 1
                    q = Int(low | high << 2) - 4
                }
                values[r * cols + c] = Int8(q)
            }
        }
        var logicalScales: [Float]
        if bits == 8 {
            logicalScales = (0..<rows).map { scales[$0] }
        } else {
            let groups = (cols + 31) / 32
            logicalScales = [Float](repeating: 0, count: rows * groups)
            for r in 0..<rows {
                for b in 0..<groups {
                    logicalScales[r * groups + b] = scales[((r / 16) * shape.kBlocks + b) * 16 + r % 16]
                }
            }
        }
        return Logical(bits: bits, rows: rows, cols: cols, values: values, scales: logicalScales)
    }
}

extension PackedWeights {
    /// A packed tensor ready for the artifact: data and aux as docs/ARTIFACT.md lays them out.
    public struct Packed {
        public var dtype: TensorDType
        public var data: [UInt8]
        public var aux: [UInt8]
    }

    /// Packs logical values into `dtype` (q8, q4g32, q3g32 or q8sparse).
    /// `l.bits` must be 8 for q8/q8sparse, 4 or 3 for the grouped formats.
    public static func pack(_ l: Logical, as dtype: TensorDType) -> Packed {
        precondition(dtype.weightBits == l.bits, "\(dtype.name) holds \(dtype.weightBits ?? 0)-bit values, got \(l.bits)")
        let shape = PackedShape(rows: l.rows, cols: l.cols)
        // Every format starts from the logical q8 tile image (512 bytes per tile).
        var tiles = [Int8](repeating: 0, count: shape.tiles * 512)
        for r in 0..<l.rows {
            for c in 0..<l.cols {
                let (tile, g, i) = position(shape, row: r, col: c)
                tiles[tile * 512 + g * 64 + i] = l.values[r * l.cols + c]
            }
        }
        var data = [UInt8]()
        var scales = [Float]()
        if l.bits == 8 {
            scales = [Float](repeating: 0, count: shape.paddedRows)
            for r in 0..<l.rows { scales[r] = l.scales[r] }
        } else {
            let groups = l.groups
            scales = [Float](repeating: 0, count: shape.tiles * 16)
            for r in 0..<l.rows {
                for b in 0..<groups { scales[((r / 16) * shape.kBlocks + b) * 16 + r % 16] = l.scales[r * groups + b] }
            }
        }
        switch dtype {
        case .q8:
            data = tiles.map { UInt8(bitPattern: $0) }
        case .q4g32:
            data = [UInt8](repeating: 0, count: shape.tiles * 256)
            for t in 0..<shape.tiles {
                for j in 0..<4 {
                    for i in 0..<64 {
                        let lo = UInt8(Int(tiles[t * 512 + (2 * j) * 64 + i]) + 8)
                        let hi = UInt8(Int(tiles[t * 512 + (2 * j + 1) * 64 + i]) + 8)
                        data[t * 256 + j * 64 + i] = lo | hi << 4
                    }
                }
            }
        case .q3g32:
            data = [UInt8](repeating: 0, count: shape.tiles * 192)
            for t in 0..<shape.tiles {
                for i in 0..<64 {
                    var high: UInt8 = 0
                    for g in 0..<8 {
                        let u = UInt8(Int(tiles[t * 512 + g * 64 + i]) + 4)
                        data[t * 192 + (g / 4) * 64 + i] |= (u & 3) << UInt8(2 * (g % 4))
                        high |= ((u >> 2) & 1) << UInt8(g)
                    }
                    data[t * 192 + 128 + i] = high
                }
            }
        case .q8sparse:
            var offsets = [UInt32](repeating: 0, count: shape.tiles + 1)
            var masks = [UInt64](repeating: 0, count: shape.tiles * 8)
            for t in 0..<shape.tiles {
                for i in 0..<512 where tiles[t * 512 + i] != 0 {
                    masks[t * 8 + i / 64] |= 1 << UInt64(i % 64)
                    data.append(UInt8(bitPattern: tiles[t * 512 + i]))
                }
                offsets[t + 1] = UInt32(data.count)
            }
            var aux = scales.withUnsafeBytes { Array($0) }
            aux += offsets.withUnsafeBytes { Array($0) }
            while aux.count < shape.sparseMasksAt { aux.append(0) }
            aux += masks.withUnsafeBytes { Array($0) }
            return Packed(dtype: dtype, data: data, aux: aux)
        default:
            preconditionFailure("\(dtype.name) is not a packed integer format")
        }
        return Packed(dtype: dtype, data: data, aux: scales.withUnsafeBytes { Array($0) })
    }
}
