import Foundation
import FipsArtifact
import FipsHostModel

/// One tensor as it will be encoded in the artifact.
public struct EncodedTensor {
    public var name: String
    public var dtype: TensorDType
    public var shape: [Int]
    public var data: [UInt8]
    public var aux: [UInt8]
    public init(name: String, dtype: TensorDType, shape: [Int], data: [UInt8], aux: [UInt8]) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.data = data; self.aux = aux
    }
}

/// A float tensor of the model replaced by packed integers in the artifact.
public struct QuantizedTensor {
    /// Name in the artifact: the float name, or for the first factor pair of
    /// a FiPS MLP the transposed name (fc1.U → fc1.Ut, fc1.V → fc1.Vt) since
    /// the runtime wants every linear map as [out, in].
    public var storedName: String
    /// Logical shape [out, in] of what is stored.
    public var shape: [Int]
    public var packed: PackedWeights.Packed
    /// Calibrated per-tensor input scale; nil lets the runtime quantise each
    /// token on the fly.
    public var actScale: Float?

    public init(storedName: String, shape: [Int], packed: PackedWeights.Packed, actScale: Float?) {
        self.storedName = storedName
        self.shape = shape
        self.packed = packed
        self.actScale = actScale
    }

    /// "blocks.0.attn.qkv.weight" → "blocks.0.attn.qkv.act_scale"; "….fc1.Ut" → "….fc1.Ut.act_scale".
    public var actScaleName: String { Self.actScaleName(for: storedName) }

    public static func actScaleName(for storedName: String) -> String {
        (storedName.hasSuffix(".weight") ? String(storedName.dropLast(".weight".count)) : storedName) + ".act_scale"
    }
}

public struct ArtifactWriteError: Error, CustomStringConvertible {
    public var description: String
}

/// Writes `.fips` version 1, or 2 when it holds packed integer weights, 3 with q2g32 (docs/ARTIFACT.md). Host code: the device only reads.
public enum ArtifactWriter {
    public enum Precision: String, CaseIterable { case f32, int8 }

    /// Which tensors get int8 in `--int8` mode: the big linear weights. The
    /// patch embedding, norms, tokens and LayerScales stay f32 (they are tiny
    /// and the first layer is the most sensitive to rounding).
    public static func isQuantizable(_ name: String) -> Bool {
        name.hasSuffix(".weight") && (name.contains(".attn.") || name.contains(".mlp.") || name == TensorNames.headWeight)
    }

    public static func encode(_ model: ViTModel, precision: Precision,
                              quantized: [String: QuantizedTensor] = [:]) -> [EncodedTensor] {
        var names = model.requiredShapes().map { $0.0 }
        // Keep any extra tensors after the known ones, sorted for determinism.
        let known = Set(names)
        names += model.tensors.keys.filter { !known.contains($0) }.sorted()
        return names.flatMap { name -> [EncodedTensor] in
            if let q = quantized[name] { return encode(q) }
            return [encodeFloat(model, name, precision: precision)]
        }
    }

    /// A packed tensor and, when it has one, its static input scale.
    public static func encode(_ q: QuantizedTensor) -> [EncodedTensor] {
        var out = [EncodedTensor(name: q.storedName, dtype: q.packed.dtype, shape: q.shape,
                                 data: q.packed.data, aux: q.packed.aux)]
        if let s = q.actScale {
            out.append(EncodedTensor(name: q.actScaleName, dtype: .f32, shape: [1], data: bytes(of: [s]), aux: []))
        }
        return out
    }

    static func encodeFloat(_ model: ViTModel, _ name: String, precision: Precision) -> EncodedTensor {
        let t = model[name]
        if precision == .int8 && isQuantizable(name) && t.shape.count == 2 {
            let q = Int8Quantizer.quantizeRows(t)
            return EncodedTensor(name: name, dtype: .i8RowScaled, shape: t.shape,
                                 data: q.values.map { UInt8(bitPattern: $0) }, aux: bytes(of: q.scales))
        }
        if name.hasSuffix(".V"), t.shape.count == 2, t.shape[1] <= 65536, let sparse = csr(t, name: name) {
            return sparse
        }
        return EncodedTensor(name: name, dtype: .f32, shape: t.shape, data: bytes(of: t.data), aux: [])
    }

    /// CSR encoding of a pruned projection when it is smaller than dense
    /// (6 bytes per kept weight against 4 per weight: above 1/3 sparsity).
    static func csr(_ t: HostTensor, name: String) -> EncodedTensor? {
        let rows = t.shape[0], cols = t.shape[1]
        let nnz = t.data.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
        guard 6 * nnz + 4 * (rows + 1) < 4 * t.count else { return nil }
        var values = [Float](), starts = [UInt32](), index = [UInt16]()
        values.reserveCapacity(nnz); index.reserveCapacity(nnz); starts.reserveCapacity(rows + 1)
        starts.append(0)
        for r in 0..<rows {
            for c in 0..<cols where t.data[r * cols + c] != 0 {
                values.append(t.data[r * cols + c])
                index.append(UInt16(c))
            }
            starts.append(UInt32(values.count))
        }
        var aux = starts.withUnsafeBytes { Array($0) }
        aux += index.withUnsafeBytes { Array($0) }
        return EncodedTensor(name: name, dtype: .f32CSR, shape: t.shape, data: bytes(of: values), aux: aux)
    }

    /// A tensor of a mapped artifact as it is stored: packed data and its
    /// scales or sparse index copied byte for byte, never re-quantised.
    public static func verbatim(_ v: TensorView) -> EncodedTensor {
        EncodedTensor(name: v.name, dtype: v.dtype, shape: v.shape,
                      data: Array(UnsafeRawBufferPointer(start: v.data, count: v.byteCount)),
                      aux: v.aux.map { Array(UnsafeRawBufferPointer(start: $0, count: v.auxByteCount)) } ?? [])
    }

    public static func bytes(of floats: [Float]) -> [UInt8] {
        floats.withUnsafeBytes { Array($0) }  // x86-64 and aarch64 are little-endian
    }

    /// Serialises and writes atomically (temporary file + rename): a failed
    /// write never leaves a partial model behind.
    public static func write(_ model: ViTModel, precision: Precision, quantized: [String: QuantizedTensor] = [:],
                             to path: String) throws {
        if let problem = model.validate() { throw ArtifactWriteError(description: "\(path): refusing to write: \(problem)") }
        // The lowest version that can hold the file: without packed tensors
        // it is a version-1 artifact, which runtimes before version 2 still read;
        // only q2g32 needs version 3 (and a distillation token 4: serialize).
        let tensors = encode(model, precision: precision, quantized: quantized)
        let data = serialize(config: model.config, labels: model.labels, tensors: tensors,
                             version: ArtifactFormat.lowestVersion(holding: tensors.map(\.dtype)))
        try writeAtomically(data, to: path)
    }

    public static func writeAtomically(_ data: [UInt8], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        do {
            try Data(data).write(to: tmp)
            // rename(2) replaces an existing file atomically. Foundation's
            // replaceItemAt on Linux failed ("file doesn't exist") after
            // removing the old file, losing it.
            if rename(tmp.path, path) != 0 {
                let e = errno
                throw ArtifactWriteError(description: "\(path): cannot write model: \(String(cString: strerror(e)))")
            }
        } catch let e as ArtifactWriteError {
            try? FileManager.default.removeItem(at: tmp)
            throw e
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw ArtifactWriteError(description: "\(path): cannot write model: \(error.localizedDescription)")
        }
    }

    /// `version` nil: 2, or 3 when a tensor is q2g32 (the lowest a packed file can be).
    public static func serialize(config: ViTConfig, labels: [String], tensors: [EncodedTensor],
                                 version: UInt32? = nil) -> [UInt8] {
        let version = max(version ?? max(2, ArtifactFormat.lowestVersion(holding: tensors.map(\.dtype))),
                          ArtifactFormat.lowestVersion(for: config))
        // Identical tensors are stored once and share their offsets: this is
        // how every block of a FiPS group points at the one shared basis U.
        var twinOf = [Int](repeating: -1, count: tensors.count)
        var seen = [Int: [Int]]()
        for (i, t) in tensors.enumerated() {
            precondition(t.name.utf8.count < ArtifactFormat.maxNameBytes, "tensor name too long: \(t.name)")
            precondition(t.shape.count >= 1 && t.shape.count <= 4)
            var hasher = Hasher()
            hasher.combine(t.dtype.rawValue); hasher.combine(t.shape); hasher.combine(t.data); hasher.combine(t.aux)
            let key = hasher.finalize()
            if let twin = seen[key]?.first(where: { tensors[$0].dtype == t.dtype && tensors[$0].shape == t.shape
                                                    && tensors[$0].data == t.data && tensors[$0].aux == t.aux }) {
                twinOf[i] = twin
            } else {
                seen[key, default: []].append(i)
            }
        }
        let stored = tensors.indices.filter { twinOf[$0] < 0 }
        let layout = ArtifactLayout(metaBytes: ArtifactLayout.metaBytes(config: config, labels: labels),
                                    tensorCount: tensors.count,
                                    stored: stored.map { (tensors[$0].data.count, tensors[$0].aux.count) })
        var out = [UInt8](repeating: 0, count: layout.fileBytes)
        var at = layout.metaOffset
        func put32(_ v: UInt32) { store32(&out, at, v); at += 4 }
        let words = config.encode()
        put32(UInt32(words.count))
        words.forEach(put32)
        put32(UInt32(labels.count))
        for l in labels { let b = Array(l.utf8); put32(UInt32(b.count)); for (k, x) in b.enumerated() { out[at + k] = x }; at += b.count }
        precondition(at - layout.metaOffset == layout.metaBytes)

        var placed = [Int: (data: Int, aux: Int)]()
        for (k, i) in stored.enumerated() {
            let p = layout.placements[k]
            placed[i] = p
            let t = tensors[i]
            out.withUnsafeMutableBufferPointer { o in
                t.data.withUnsafeBufferPointer { (o.baseAddress! + p.data).update(from: $0.baseAddress!, count: $0.count) }
                t.aux.withUnsafeBufferPointer { if $0.count > 0 { (o.baseAddress! + p.aux).update(from: $0.baseAddress!, count: $0.count) } }
            }
        }
        for (i, t) in tensors.enumerated() {
            let p = placed[twinOf[i] < 0 ? i : twinOf[i]]!
            let e = layout.tableOffset + i * ArtifactFormat.entryBytes
            for (k, b) in t.name.utf8.enumerated() { out[e + k] = b }
            out[e + 64] = t.dtype.rawValue
            out[e + 65] = UInt8(t.shape.count)
            for (k, dim) in t.shape.enumerated() { store32(&out, e + 68 + 4 * k, UInt32(dim)) }
            store64(&out, e + 88, UInt64(p.data))
            store64(&out, e + 96, UInt64(t.data.count))
            store64(&out, e + 104, UInt64(t.aux.isEmpty ? 0 : p.aux))
            store64(&out, e + 112, UInt64(t.aux.count))
        }
        // Header last, once offsets and the payload checksum are known.
        for (k, b) in ArtifactFormat.magic.enumerated() { out[k] = b }
        store32(&out, 8, version)
        store32(&out, 12, UInt32(ArtifactFormat.headerBytes))
        store64(&out, 16, UInt64(out.count))
        store64(&out, 24, UInt64(layout.metaOffset))
        store64(&out, 32, UInt64(layout.metaBytes))
        store64(&out, 40, UInt64(layout.tableOffset))
        store32(&out, 48, UInt32(tensors.count))
        store32(&out, 52, UInt32(ArtifactFormat.entryBytes))
        storeChecksums(&out)
        return out
    }

    /// Both CRC-32s of the header: the payload's, then the header's own.
    static func storeChecksums(_ out: inout [UInt8]) {
        let crc = CRC32()
        let payload = out.withUnsafeBytes { crc.checksum($0.baseAddress! + ArtifactFormat.headerBytes,
                                                         count: out.count - ArtifactFormat.headerBytes) }
        store32(&out, 56, payload)
        let header = out.withUnsafeBytes { crc.checksum($0.baseAddress!, count: 60) }
        store32(&out, 60, header)
    }

    /// The serialized artifact `bytes` with `limits` in its configuration
    /// words 20–24 (the words every writer leaves zero) and its checksums
    /// recomputed. The file's size and layout do not change.
    public static func stampInputLimits(_ bytes: [UInt8], _ limits: InputLimits) -> [UInt8] {
        var out = bytes
        func load64(_ o: Int) -> Int { (0..<8).reduce(0) { $0 | Int(out[o + $1]) << (8 * $1) } }
        let meta = load64(24)
        let words = (0..<4).reduce(0) { $0 | Int(out[meta + $1]) << (8 * $1) }
        precondition(words >= InputLimits.firstWord + InputLimits.wordCount, "stampInputLimits: configuration record of \(words) words")
        for (k, w) in limits.encode().enumerated() { store32(&out, meta + 4 + 4 * (InputLimits.firstWord + k), w) }
        storeChecksums(&out)
        return out
    }

    static func store32(_ a: inout [UInt8], _ o: Int, _ v: UInt32) {
        for k in 0..<4 { a[o + k] = UInt8((v >> (8 * UInt32(k))) & 0xFF) }
    }
    static func store64(_ a: inout [UInt8], _ o: Int, _ v: UInt64) {
        for k in 0..<8 { a[o + k] = UInt8((v >> (8 * UInt64(k))) & 0xFF) }
    }
}

/// Where everything goes in a `.fips` file (docs/ARTIFACT.md): the header,
/// the meta block, the tensor table, then each stored tensor's data and aux,
/// each 64-byte aligned, in table order. `ArtifactWriter.serialize` places
/// bytes with it, and fips-plan sizes a planned artifact with it, so the two
/// cannot disagree.
public struct ArtifactLayout {
    public let metaOffset: Int
    public let metaBytes: Int
    public let tableOffset: Int
    /// Per stored tensor: its data offset and aux offset (aux 0 when it has none).
    public let placements: [(data: Int, aux: Int)]
    public let fileBytes: Int

    /// `stored`: data and aux bytes of each tensor that is stored (a tensor
    /// identical to an earlier one is not: it shares that one's offsets), in
    /// table order; `tensorCount` counts every table entry, shared or not.
    public init(metaBytes: Int, tensorCount: Int, stored: [(data: Int, aux: Int)]) {
        func align(_ x: Int) -> Int { (x + ArtifactFormat.alignment - 1) / ArtifactFormat.alignment * ArtifactFormat.alignment }
        metaOffset = ArtifactFormat.headerBytes
        self.metaBytes = metaBytes
        tableOffset = align(metaOffset + metaBytes)
        var at = align(tableOffset + tensorCount * ArtifactFormat.entryBytes)
        var p = [(data: Int, aux: Int)]()
        p.reserveCapacity(stored.count)
        for s in stored {
            at = align(at)
            let d = at
            at += s.data
            var a = 0
            if s.aux > 0 { at = align(at); a = at; at += s.aux }
            p.append((d, a))
        }
        placements = p
        fileBytes = at
    }

    /// Bytes of the meta block: the configuration words and the label table.
    public static func metaBytes(config: ViTConfig, labels: [String]) -> Int {
        4 + 4 * config.encode().count + 4 + labels.reduce(0) { $0 + 4 + $1.utf8.count }
    }
}
