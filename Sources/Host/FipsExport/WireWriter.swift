// The protobuf wire format, writing side: the few encodings an ONNX model
// needs (varints, length-delimited fields, fixed32 floats). The kit has no
// protobuf library (SwiftProtobuf is not a dependency, and Package.swift
// fetches nothing but swift-argument-parser), and ONNX needs only these
// field kinds, so the writer is written out here as FipsImport's WireReader
// is on the reading side. ONNXProto.swift builds the ONNX messages from it.

/// One protobuf message being written: fields are appended in call order.
struct WireWriter {
    private(set) var bytes: [UInt8] = []

    /// Wire types: 0 varint, 2 length-delimited, 5 fixed32.
    enum WireType: UInt64 { case varint = 0, lengthDelimited = 2, fixed32 = 5 }

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func key(_ field: Int, _ type: WireType) { varint(UInt64(field) << 3 | type.rawValue) }

    /// An int32/int64/enum field; a negative value takes ten bytes (two's complement), as protobuf encodes it.
    mutating func int(_ field: Int, _ value: Int) {
        key(field, .varint)
        varint(UInt64(bitPattern: Int64(value)))
    }

    /// A repeated int64 field, one key per value (the unpacked form, which every parser accepts).
    mutating func ints(_ field: Int, _ values: [Int]) { values.forEach { int(field, $0) } }

    mutating func float(_ field: Int, _ value: Float) {
        key(field, .fixed32)
        let b = value.bitPattern
        for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: b >> (8 * UInt32(k)))) }
    }

    mutating func data(_ field: Int, _ payload: [UInt8]) {
        key(field, .lengthDelimited)
        varint(UInt64(payload.count))
        bytes.append(contentsOf: payload)
    }

    mutating func string(_ field: Int, _ s: String) { data(field, Array(s.utf8)) }

    mutating func message(_ field: Int, _ m: WireWriter) { data(field, m.bytes) }
}
