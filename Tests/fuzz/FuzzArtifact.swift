// libFuzzer target: the .fips artifact reader (header, configuration words,
// labels, tensor table, packed/sparse tensor validation) on arbitrary bytes.
// Built by scripts/fuzz.sh together with Sources/Device/FipsArtifact/*.swift, so it
// can call the internal Artifact.parse on memory instead of a mapped file.
// The harness repairs the file-size field and both CRC-32s of inputs that
// start with the magic, so the fuzzer reaches the parsing behind them.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzArtifact(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var buf = [UInt8](UnsafeBufferPointer(start: data, count: size))
    // Byte 13 (the high byte of the header-size field, never read) chooses:
    // odd leaves the input as it is, so the checks on size and CRCs are fuzzed too.
    if size >= 64 && buf[13] & 1 == 0 && Array(buf[0..<8]) == ArtifactFormat.magic {
        let crc = CRC32()
        var n = UInt64(size)
        for i in 0..<8 { buf[16 + i] = UInt8(truncatingIfNeeded: n); n >>= 8 }
        let payload = buf.withUnsafeBytes { crc.checksum($0.baseAddress! + 64, count: size - 64) }
        for i in 0..<4 { buf[56 + i] = UInt8(truncatingIfNeeded: payload >> UInt32(8 * i)) }
        let head = buf.withUnsafeBytes { crc.checksum($0.baseAddress!, count: 60) }
        for i in 0..<4 { buf[60 + i] = UInt8(truncatingIfNeeded: head >> UInt32(8 * i)) }
    }
    buf.withUnsafeBytes { raw in
        // The reader requires 64-byte aligned tensor data relative to the file
        // start; an Array's storage is 16-byte aligned, so copy to an aligned block.
        let base = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 64)
        defer { base.deallocate() }
        if size > 0 { base.copyMemory(from: raw.baseAddress!, byteCount: size) }
        checkParse(UnsafeRawPointer(base), size)
    }
    return 0
}

func checkParse(_ base: UnsafeRawPointer, _ size: Int) {
    do {
        let p = try Artifact.parse(path: "fuzz.fips", base: base, size: size, verifyChecksum: true)
        // Every tensor lies inside the input, and touching its bytes is safe.
        var sum: UInt64 = 0
        for t in p.tensors {
            precondition(t.data >= base && t.data + t.byteCount <= base + size)
            let b = t.data.assumingMemoryBound(to: UInt8.self)
            if t.byteCount > 0 { sum &+= UInt64(b[0]) &+ UInt64(b[t.byteCount - 1]) }
        }
        precondition(p.config.validate() == nil)
        _ = sum
    } catch {
        precondition(!error.message.isEmpty)
    }
}
