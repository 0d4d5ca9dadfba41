/// CRC-32 (IEEE, reflected, as zlib) with slicing-by-8: a 100 MB artifact is
/// verified at load time, so the byte-at-a-time loop would be too slow on a Pi.
public struct CRC32 {
    private var table: [UInt32]   // 8 x 256

    public init() {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (0xEDB8_8320 ^ (c >> 1)) : (c >> 1) }
            t[i] = c
        }
        for i in 0..<256 {
            for s in 1..<8 {
                let prev = t[(s - 1) * 256 + i]
                t[s * 256 + i] = (prev >> 8) ^ t[Int(prev & 0xFF)]
            }
        }
        table = t
    }

    public func checksum(_ p: UnsafeRawPointer, count: Int, seed: UInt32 = 0) -> UInt32 {
        var crc = ~seed
        var i = 0
        table.withUnsafeBufferPointer { tb in
            let t = tb.baseAddress!
            while i + 8 <= count {
                let lo = p.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian ^ crc
                let hi = p.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self).littleEndian
                crc = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < count {
                crc = t[Int((crc ^ UInt32(p.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)] ^ (crc >> 8)
                i += 1
            }
        }
        return ~crc
    }
}
