import CFipsSys
import FipsKernels

/// One tensor of a mapped artifact: a view into the file, never a copy.
public struct TensorView {
    public let name: String
    public let dtype: TensorDType
    public let shape: [Int]
    public let data: UnsafeRawPointer
    public let byteCount: Int
    /// Per-row float32 scales for `.i8RowScaled`, else nil.
    public internal(set) var scales: UnsafePointer<Float>?
    /// Row starts and column indices for `.f32CSR`, else nil.
    public var csrRowStart: UnsafePointer<UInt32>? = nil
    public var csrColIndex: UnsafePointer<UInt16>? = nil
    /// Tile offsets and masks for `.q8sparse`, else nil.
    public var tileOffsets: UnsafePointer<UInt32>? = nil
    public var tileMasks: UnsafePointer<UInt64>? = nil
    /// The tensor's whole auxiliary region (scales, sparse index) as stored,
    /// so a host tool can copy a packed tensor verbatim instead of re-packing it.
    public var aux: UnsafeRawPointer? = nil
    public var auxByteCount = 0

    public init(name: String, dtype: TensorDType, shape: [Int], data: UnsafeRawPointer, byteCount: Int,
                scales: UnsafePointer<Float>?) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.data = data
        self.byteCount = byteCount
        self.scales = scales
    }

    public var elementCount: Int { shape.reduce(1, *) }
    /// Stored values: every element, or the nonzeros of a sparse tensor.
    public var storedValues: Int {
        switch dtype {
        case .f32CSR: return byteCount / 4
        case .q8sparse: return byteCount
        default: return elementCount
        }
    }

    public var floats: UnsafePointer<Float> { data.assumingMemoryBound(to: Float.self) }
    public var int8s: UnsafePointer<Int8> { data.assumingMemoryBound(to: Int8.self) }
}

/// A `.fips` file mapped read-only. Tensors point into the mapping, so the
/// model costs its page-cache footprint and nothing more.
public final class Artifact {
    public let path: String
    public let version: UInt32
    public let config: ViTConfig
    public let labels: [String]
    /// The plan's input limits, or nil for a file that records none.
    public let inputLimits: InputLimits?
    public let tensors: [TensorView]
    public let fileBytes: Int
    /// The payload's CRC-32 as the header stores it (verified at open unless
    /// `verifyChecksum: false`); it identifies the model's bytes.
    public let checksum: UInt32
    private let base: UnsafeRawPointer
    private let mappedBytes: Int

    deinit { fips_unmap_file(base, mappedBytes) }

    /// Maps and validates `path`: magic, version, both checksums, table bounds,
    /// alignment and sizes. `verifyChecksum: false` skips the payload CRC for
    /// callers that re-open a file they just verified.
    public init(path: String, verifyChecksum: Bool = true) throws(ArtifactError) {
        var size = 0
        var err: Int32 = 0
        guard let p = fips_map_file(path, &size, &err) else { throw .io(path: path, errno: err) }
        let raw = UnsafeRawPointer(p)
        do {
            let parsed = try Artifact.parse(path: path, base: raw, size: size, verifyChecksum: verifyChecksum)
            self.path = path
            self.base = raw
            self.mappedBytes = size
            self.fileBytes = size
            self.version = parsed.version
            self.checksum = parsed.checksum
            self.config = parsed.config
            self.labels = parsed.labels
            self.inputLimits = parsed.inputLimits
            self.tensors = parsed.tensors
        } catch {
            fips_unmap_file(raw, size)
            throw error
        }
    }

    /// Where a pointer into the mapping lies in the file (a tensor's data or
    /// aux), for tools that print the layout (`fips info`).
    public func fileOffset(of p: UnsafeRawPointer) -> Int { p - base }

    public func tensor(_ name: String) -> TensorView? {
        for t in tensors where t.name == name { return t }
        return nil
    }

    /// Bytes stored per tensor format, in table order of first appearance,
    /// each stored tensor counted once (a FiPS group's shared basis is named
    /// by every block of the group but stored once); and how many distinct
    /// stored tensors there are.
    public func storedBytesByFormat() -> (formats: [(name: String, bytes: Int)], stored: Int) {
        var formats = [(name: String, bytes: Int)]()
        var seen = [UnsafeRawPointer]()
        for t in tensors {
            var shared = false
            for p in seen where p == t.data { shared = true }
            if shared { continue }
            seen.append(t.data)
            let n = t.dtype.name
            if let i = formats.firstIndex(where: { $0.name == n }) { formats[i].bytes += t.byteCount }
            else { formats.append((name: n, bytes: t.byteCount)) }
        }
        return (formats, seen.count)
    }

    struct Parsed {
        var version: UInt32
        var checksum: UInt32
        var config: ViTConfig
        var labels: [String]
        var inputLimits: InputLimits?
        var tensors: [TensorView]
    }

    /// The header's section offsets, once checked against the file.
    struct Header {
        var version: UInt32
        var checksum: UInt32
        var metaOffset, metaBytes, tableOffset, count, entryBytes: Int
    }

    static func parse(path: String, base: UnsafeRawPointer, size: Int, verifyChecksum: Bool) throws(ArtifactError) -> Parsed {
        let r = ByteReader(base: base, count: size)
        let header = try parseHeader(path: path, r, verifyChecksum: verifyChecksum)
        let (config, labels, limits) = try parseMeta(path: path, r, header)
        var tensors = [TensorView]()
        tensors.reserveCapacity(header.count)
        for i in 0..<header.count {
            tensors.append(try parseTensorEntry(path: path, r, at: header.tableOffset + i * header.entryBytes,
                                                version: header.version))
        }
        return Parsed(version: header.version, checksum: header.checksum, config: config, labels: labels,
                      inputLimits: limits, tensors: tensors)
    }

    /// Magic, version, both checksums, file size and the section offsets.
    static func parseHeader(path: String, _ r: ByteReader, verifyChecksum: Bool) throws(ArtifactError) -> Header {
        let base = r.base, size = r.count
        if size == 0 { throw .empty(path: path) }
        if size < 8 { throw .notAnArtifact(path: path) }
        for i in 0..<8 where base.load(fromByteOffset: i, as: UInt8.self) != ArtifactFormat.magic[i] {
            throw .notAnArtifact(path: path)
        }
        if size < ArtifactFormat.headerBytes {
            throw .truncated(path: path, expected: ArtifactFormat.headerBytes, actual: size)
        }
        let version = r.u32(8)
        // The version is read before any checksum so that a newer file gets
        // "update the runtime", not "corrupted".
        if version == 0 || version > ArtifactFormat.currentVersion {
            throw .unsupportedVersion(path: path, version: version)
        }
        let crc = CRC32()
        if crc.checksum(base, count: 60) != r.u32(60) { throw .headerChecksum(path: path) }
        let fileBytes = r.int(16)
        if fileBytes != size {
            if fileBytes > size { throw .truncated(path: path, expected: fileBytes, actual: size) }
            throw .malformed(path: path, reason: "\(size - fileBytes) unexpected bytes after the end of the model")
        }
        let stored = r.u32(56)
        if verifyChecksum {
            let computed = crc.checksum(base + ArtifactFormat.headerBytes, count: size - ArtifactFormat.headerBytes)
            if computed != stored { throw .payloadChecksum(path: path, stored: stored, computed: computed) }
        }
        let h = Header(version: version, checksum: stored, metaOffset: r.int(24), metaBytes: r.int(32),
                       tableOffset: r.int(40), count: Int(r.u32(48)), entryBytes: Int(r.u32(52)))
        guard r.contains(h.metaOffset, h.metaBytes), h.entryBytes == ArtifactFormat.entryBytes,
              h.count < 1_000_000, r.contains(h.tableOffset, h.count * h.entryBytes) else {
            throw .malformed(path: path, reason: "section offsets outside the file")
        }
        return h
    }

    /// Meta: config words (with the input limits in words 20–24), then labels.
    static func parseMeta(path: String, _ r: ByteReader, _ h: Header) throws(ArtifactError) -> (ViTConfig, [String], InputLimits?) {
        var at = h.metaOffset
        let metaEnd = h.metaOffset + h.metaBytes
        guard at + 4 <= metaEnd else { throw .malformed(path: path, reason: "empty configuration") }
        let words = Int(r.u32(at)); at += 4
        guard words >= 20, words < 4096, at + 4 * words + 4 <= metaEnd else {
            throw .malformed(path: path, reason: "configuration record of \(words) words")
        }
        var w = [UInt32]()
        for k in 0..<words { w.append(r.u32(at + 4 * k)) }
        at += 4 * words
        let (decoded, reason) = ViTConfig.decode(w)
        guard let config = decoded else { throw .malformed(path: path, reason: reason) }
        let labelCount = Int(r.u32(at)); at += 4
        guard labelCount == 0 || labelCount == config.numClasses else {
            throw .malformed(path: path, reason: "\(labelCount) labels for \(config.numClasses) classes")
        }
        var labels = [String]()
        for _ in 0..<labelCount {
            guard at + 4 <= metaEnd else { throw .malformed(path: path, reason: "label table truncated") }
            let n = Int(r.u32(at)); at += 4
            guard at + n <= metaEnd else { throw .malformed(path: path, reason: "label table truncated") }
            labels.append(r.string(at, n)); at += n
        }
        return (config, labels, InputLimits.decode(w))
    }

    /// One tensor table entry: name, type, shape, data, then its aux region.
    static func parseTensorEntry(path: String, _ r: ByteReader, at e: Int, version: UInt32) throws(ArtifactError) -> TensorView {
        var nameLen = 0
        while nameLen < ArtifactFormat.maxNameBytes && r.u8(e + nameLen) != 0 { nameLen += 1 }
        let name = r.string(e, nameLen)
        guard let dtype = TensorDType(rawValue: r.u8(e + 64)) else {
            throw .malformed(path: path, reason: "tensor \(name) has unknown element type \(r.u8(e + 64))")
        }
        let rank = Int(r.u8(e + 65))
        guard rank >= 1 && rank <= 4 else { throw .malformed(path: path, reason: "tensor \(name) has rank \(rank)") }
        var shape = [Int]()
        for k in 0..<rank { shape.append(Int(r.u32(e + 68 + 4 * k))) }
        let off = r.int(e + 88), bytes = r.int(e + 96)
        let aux = AuxRegion(offset: r.int(e + 104), bytes: r.int(e + 112))
        // Checked, so a crafted table cannot overflow the size arithmetic below
        // (found by the artifact fuzzer, scripts/fuzz.sh): 2^40 elements is
        // far beyond any file this reader can map.
        var elements = 1
        for d in shape {
            let (m, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow, m <= 1 << 40 else {
                throw .malformed(path: path, reason: "tensor \(name) has an implausible shape \(shapeText(shape))")
            }
            elements = m
        }
        if dtype.packedFormat != nil {
            guard version >= dtype.introducedInVersion else {
                throw .malformed(path: path, reason: "tensor \(name) is \(dtype.name), which version \(version) files cannot hold")
            }
            guard rank == 2, shape[0] > 0, shape[1] > 0 else {
                throw .malformed(path: path, reason: "tensor \(name): packed weights must be 2-D, are \(shapeText(shape))")
            }
        }
        guard r.contains(off, bytes), off % ArtifactFormat.alignment == 0,
              dataSizeIsValid(dtype, bytes: bytes, elements: elements, shape: shape) else {
            throw .malformed(path: path, reason: "tensor \(name) data out of bounds or mis-sized")
        }
        var view = TensorView(name: name, dtype: dtype, shape: shape, data: r.base + off, byteCount: bytes, scales: nil)
        try parseAux(path: path, r, aux, into: &view)
        if dtype != .f32 {
            view.aux = r.base + aux.offset
            view.auxByteCount = aux.bytes
        }
        return view
    }

    struct AuxRegion { var offset, bytes: Int }

    /// The data size a tensor of this type and shape must have (for the
    /// sparse types, may have at most); packed sizes come from the format table.
    static func dataSizeIsValid(_ dtype: TensorDType, bytes: Int, elements: Int, shape: [Int]) -> Bool {
        if let f = dtype.packedFormat {
            let dense = PackedShape(rows: shape[0], cols: shape[1]).denseBytes(f)
            return f.isSparse ? bytes <= dense : bytes == dense
        }
        switch dtype {
        case .i8RowScaled: return bytes == elements
        case .f32CSR: return bytes % 4 == 0 && bytes <= 4 * elements
        default: return bytes == 4 * elements
        }
    }

    /// The aux region: row scales, a CSR index, packed scales or a sparse tile index.
    static func parseAux(path: String, _ r: ByteReader, _ aux: AuxRegion, into view: inout TensorView) throws(ArtifactError) {
        let name = view.name, shape = view.shape, auxOff = aux.offset, auxBytes = aux.bytes
        if let f = view.dtype.packedFormat {
            let packed = PackedShape(rows: shape[0], cols: shape[1])
            if f.isSparse {
                try parseSparseTileIndex(path: path, r, aux, packed, dataBytes: view.byteCount, into: &view)
                return
            }
            guard r.contains(auxOff, auxBytes), auxOff % f.auxAlignment == 0, auxBytes == 4 * packed.scaleCount(f) else {
                throw .malformed(path: path, reason: "tensor \(name) scales out of bounds or mis-sized")
            }
            view.scales = (r.base + auxOff).assumingMemoryBound(to: Float.self)
            return
        }
        switch view.dtype {
        case .i8RowScaled:
            guard r.contains(auxOff, auxBytes), auxOff % 4 == 0, auxBytes == 4 * shape[0] else {
                throw .malformed(path: path, reason: "tensor \(name) scales out of bounds or mis-sized")
            }
            view.scales = (r.base + auxOff).assumingMemoryBound(to: Float.self)
        case .f32CSR:
            try parseCSRIndex(path: path, r, aux, into: &view)
        default:
            break
        }
    }

    /// f32-csr: u32 row starts [rows + 1], then u16 column indices [nnz].
    static func parseCSRIndex(path: String, _ r: ByteReader, _ aux: AuxRegion, into view: inout TensorView) throws(ArtifactError) {
        let name = view.name, shape = view.shape, rank = shape.count, auxOff = aux.offset
        let nnz = view.byteCount / 4
        guard rank == 2, shape[1] <= 65536, r.contains(auxOff, aux.bytes), auxOff % 4 == 0,
              aux.bytes == 4 * (shape[0] + 1) + 2 * nnz else {
            throw .malformed(path: path, reason: "tensor \(name) sparse index out of bounds or mis-sized")
        }
        let starts = (r.base + auxOff).assumingMemoryBound(to: UInt32.self)
        let cols = (r.base + auxOff + 4 * (shape[0] + 1)).assumingMemoryBound(to: UInt16.self)
        // Checked once here so the kernels can index without bounds checks.
        if starts[0] != 0 || Int(starts[shape[0]]) != nnz {
            throw .malformed(path: path, reason: "tensor \(name) sparse row starts do not cover \(nnz) values")
        }
        for row in 0..<shape[0] where starts[row] > starts[row + 1] {
            throw .malformed(path: path, reason: "tensor \(name) sparse row starts decrease at row \(row)")
        }
        for k in 0..<nnz where Int(cols[k]) >= shape[1] {
            throw .malformed(path: path, reason: "tensor \(name) sparse column index out of range")
        }
        view.csrRowStart = starts
        view.csrColIndex = cols
    }

    /// q8-sparse: scales, tile offsets and masks (PackedShape's sparse layout).
    static func parseSparseTileIndex(path: String, _ r: ByteReader, _ aux: AuxRegion, _ packed: PackedShape, dataBytes bytes: Int,
                                     into view: inout TensorView) throws(ArtifactError) {
        let name = view.name, auxOff = aux.offset
        guard r.contains(auxOff, aux.bytes), auxOff % QuantFormat.q8sparse.auxAlignment == 0,
              aux.bytes == packed.sparseAuxBytes else {
            throw .malformed(path: path, reason: "tensor \(name) sparse index out of bounds or mis-sized")
        }
        let offsets = (r.base + auxOff + packed.sparseOffsetsAt).assumingMemoryBound(to: UInt32.self)
        let masks = (r.base + auxOff + packed.sparseMasksAt).assumingMemoryBound(to: UInt64.self)
        // Each tile's mask must account for exactly its stored bytes,
        // so the kernels never read past a tile (checked once, here).
        if offsets[0] != 0 || Int(offsets[packed.tiles]) != bytes {
            throw .malformed(path: path, reason: "tensor \(name) sparse tile offsets do not cover \(bytes) values")
        }
        for tile in 0..<packed.tiles {
            var bits = 0
            for w in 0..<8 { bits += masks[tile * 8 + w].nonzeroBitCount }
            if offsets[tile] > offsets[tile + 1] || Int(offsets[tile + 1] - offsets[tile]) != bits {
                throw .malformed(path: path, reason: "tensor \(name) sparse tile \(tile) mask and offsets disagree")
            }
        }
        view.scales = (r.base + auxOff).assumingMemoryBound(to: Float.self)
        view.tileOffsets = offsets
        view.tileMasks = masks
    }
}

public func shapeText(_ s: [Int]) -> String {
    var out = "["
    for (i, v) in s.enumerated() { out += (i == 0 ? "" : ", ") + "\(v)" }
    return out + "]"
}

/// Little-endian loads at byte offsets, bounds checked by the caller.
struct ByteReader {
    let base: UnsafeRawPointer
    let count: Int
    func contains(_ offset: Int, _ bytes: Int) -> Bool {
        offset >= 0 && bytes >= 0 && offset <= count && bytes <= count - offset
    }
    func u8(_ o: Int) -> UInt8 { base.load(fromByteOffset: o, as: UInt8.self) }
    func u32(_ o: Int) -> UInt32 { base.loadUnaligned(fromByteOffset: o, as: UInt32.self).littleEndian }
    func u64(_ o: Int) -> UInt64 { base.loadUnaligned(fromByteOffset: o, as: UInt64.self).littleEndian }
    /// A u64 offset or size as Int; values past Int.max (which no file has)
    /// become Int.max, so bounds checks refuse them instead of trapping.
    func int(_ o: Int) -> Int {
        let v = u64(o)
        return v > UInt64(Int.max) ? Int.max : Int(v)
    }
    func string(_ o: Int, _ n: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(start: base + o, count: n), as: UTF8.self)
    }
}
