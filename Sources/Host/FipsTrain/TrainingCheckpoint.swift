import CZlib
import Foundation
import FipsArtifactWriter

/// A fine-tuning run's state after `step` steps: parameters and AdamW's
/// moments. The data order and augmentation are functions of the seed and
/// the step, so they are replayed, not stored. The file says which student
/// and which options it belongs to, and ends with a CRC-32 (zlib) of all of it.
///
/// Layout (little-endian): "FIPSCKPT", u32 version, u64 student key, u64 options key,
/// u64 step, u64 count, count f32 parameters, count f32 m, count f32 v, u32 crc32.
struct TrainingCheckpoint {
    static let magic = Array("FIPSCKPT".utf8)
    static let version: UInt32 = 1
    var studentKey: UInt64
    var optionsKey: UInt64
    var step: Int
    var params: [Float], m: [Float], v: [Float]

    func write(to path: String) throws {
        var out = TrainingCheckpoint.magic
        func put<T: FixedWidthInteger>(_ x: T) { withUnsafeBytes(of: x.littleEndian) { out += $0 } }
        put(TrainingCheckpoint.version); put(studentKey); put(optionsKey); put(UInt64(step)); put(UInt64(params.count))
        for a in [params, m, v] { a.withUnsafeBytes { out += $0 } }
        put(Self.crc(out))
        try ArtifactWriter.writeAtomically(out, to: path)
    }

    /// Reads `path` and checks it belongs to this student and these options.
    static func read(_ path: String, studentKey: UInt64, optionsKey: UInt64, count: Int) throws -> TrainingCheckpoint {
        guard let data = FileManager.default.contents(atPath: path) else { throw TrainingError("\(path): cannot read checkpoint") }
        let b = [UInt8](data)
        let header = 8 + 4 + 8 * 4
        guard b.count >= header + 4, Array(b[0..<8]) == magic else { throw TrainingError("\(path): not a fips finetune checkpoint") }
        func u64(_ o: Int) -> UInt64 { b[o..<(o + 8)].reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        let ver = UInt32(b[8]) | UInt32(b[9]) << 8 | UInt32(b[10]) << 16 | UInt32(b[11]) << 24
        guard ver == version else { throw TrainingError("\(path): checkpoint version \(ver), this build reads \(version)") }
        let n = Int(u64(36))
        guard b.count == header + 12 * n + 4 else { throw TrainingError("\(path): truncated checkpoint (\(b.count) bytes)") }
        let stored = b[(b.count - 4)...].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard stored == crc(Array(b[0..<(b.count - 4)])) else { throw TrainingError("\(path): checkpoint is corrupt (CRC mismatch)") }
        guard u64(12) == studentKey, n == count else {
            throw TrainingError("\(path): checkpoint is from another model (not this --model's parameters)")
        }
        guard u64(20) == optionsKey else {
            throw TrainingError("\(path): checkpoint was made with other training options (steps, batch, lr, loss, data, seed or threads)")
        }
        func floats(_ k: Int) -> [Float] {
            let o = header + 4 * n * k
            return b[o..<(o + 4 * n)].withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        return TrainingCheckpoint(studentKey: studentKey, optionsKey: optionsKey, step: Int(u64(28)),
                                  params: floats(0), m: floats(1), v: floats(2))
    }

    static func crc(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
    }

    /// FNV-1a 64 of bytes: the keys that tie a checkpoint to its student and options.
    static func key(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for x in bytes { h = (h ^ UInt64(x)) &* 0x100_0000_01b3 }
        return h
    }
}
