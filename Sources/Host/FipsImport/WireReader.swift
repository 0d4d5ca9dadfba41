import Foundation

// The protobuf wire format under ONNXModel: fields, varints, fixed-width
// values and packed arrays (this file), and the ONNX messages built from them
// (WireReader+Messages.swift).

struct WireError: Error {
    let message: String
}

/// Cursor over protobuf bytes in [start, end) of a mapped buffer; offsets are
/// absolute so tensor payloads can be remembered as ranges of the file.
struct WireReader {
    let base: UnsafeRawPointer
    var pos: Int
    let end: Int

    init(base: UnsafeRawPointer, start: Int, end: Int) {
        self.base = base
        self.pos = start
        self.end = end
    }

    var atEnd: Bool { pos >= end }

    mutating func varint() throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard pos < end else { throw WireError(message: "varint runs past the end at byte \(pos)") }
            let b = base.load(fromByteOffset: pos, as: UInt8.self)
            pos += 1
            if shift < 64 { result |= UInt64(b & 0x7F) << shift }
            if b & 0x80 == 0 { return result }
            shift += 7
            if shift > 70 { throw WireError(message: "varint longer than 10 bytes at byte \(pos)") }
        }
    }

    /// (field number, wire type), or nil at the end of the message.
    mutating func nextField() throws(WireError) -> (Int, Int)? {
        if pos >= end { return nil }
        let at = pos
        let key = try varint()
        let field = Int(key >> 3), wire = Int(key & 7)
        if field == 0 || wire == 3 || wire == 4 || wire > 5 {
            throw WireError(message: "invalid field key \(key) at byte \(at)")
        }
        return (field, wire)
    }

    mutating func lengthDelimited() throws(WireError) -> Range<Int> {
        let at = pos
        let n = try varint()
        guard n <= UInt64(end - pos) else {
            throw WireError(message: "field of \(n) bytes at byte \(at) runs past the end (\(end - pos) bytes left)")
        }
        let r = pos..<(pos + Int(n))
        pos += Int(n)
        return r
    }

    mutating func sub() throws(WireError) -> WireReader {
        let r = try lengthDelimited()
        return WireReader(base: base, start: r.lowerBound, end: r.upperBound)
    }

    mutating func string() throws(WireError) -> String {
        let r = try lengthDelimited()
        return String(decoding: UnsafeRawBufferPointer(start: base + r.lowerBound, count: r.count), as: UTF8.self)
    }

    mutating func fixed32() throws(WireError) -> UInt32 {
        guard end - pos >= 4 else { throw WireError(message: "fixed32 runs past the end at byte \(pos)") }
        let v = base.loadUnaligned(fromByteOffset: pos, as: UInt32.self).littleEndian
        pos += 4
        return v
    }

    mutating func fixed64() throws(WireError) -> UInt64 {
        guard end - pos >= 8 else { throw WireError(message: "fixed64 runs past the end at byte \(pos)") }
        let v = base.loadUnaligned(fromByteOffset: pos, as: UInt64.self).littleEndian
        pos += 8
        return v
    }

    mutating func skip(_ wire: Int) throws(WireError) {
        switch wire {
        case 0: _ = try varint()
        case 1: _ = try fixed64()
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed32()
        default: throw WireError(message: "unsupported wire type \(wire) at byte \(pos)")
        }
    }

    // Repeated scalars, packed (wire 2) or one per key.
    mutating func appendVarints(_ wire: Int, _ out: inout [Int64]) throws(WireError) {
        if wire == 2 {
            var s = try sub()
            while !s.atEnd { out.append(Int64(bitPattern: try s.varint())) }
        } else if wire == 0 {
            out.append(Int64(bitPattern: try varint()))
        } else { try skip(wire) }
    }

    mutating func appendFloats(_ wire: Int, _ out: inout [Float]) throws(WireError) {
        if wire == 2 {
            let r = try lengthDelimited()
            guard r.count % 4 == 0 else { throw WireError(message: "packed floats of \(r.count) bytes at byte \(r.lowerBound)") }
            let n = r.count / 4
            out.reserveCapacity(out.count + n)
            for i in 0..<n {
                out.append(Float(bitPattern: base.loadUnaligned(fromByteOffset: r.lowerBound + 4 * i, as: UInt32.self).littleEndian))
            }
        } else if wire == 5 {
            out.append(Float(bitPattern: try fixed32()))
        } else { try skip(wire) }
    }

    mutating func appendDoubles(_ wire: Int, _ out: inout [Double]) throws(WireError) {
        if wire == 2 {
            let r = try lengthDelimited()
            guard r.count % 8 == 0 else { throw WireError(message: "packed doubles of \(r.count) bytes at byte \(r.lowerBound)") }
            for i in 0..<(r.count / 8) {
                out.append(Double(bitPattern: base.loadUnaligned(fromByteOffset: r.lowerBound + 8 * i, as: UInt64.self).littleEndian))
            }
        } else if wire == 1 {
            out.append(Double(bitPattern: try fixed64()))
        } else { try skip(wire) }
    }
}
