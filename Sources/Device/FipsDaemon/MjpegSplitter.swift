/// Splits a byte stream of concatenated JPEGs (MJPEG as ffmpeg `-f mjpeg`
/// and most IP cameras send it, without multipart headers) into frames.
///
/// It walks the JPEG marker structure rather than searching for FF D9, so an
/// EXIF thumbnail inside APP1 does not end the frame early: from SOI it skips
/// each marker segment by its length; after SOS it scans the entropy-coded
/// data, where FF is followed by 00 (a stuffed byte), D0-D7 (restart
/// markers) or a real marker — EOI (D9) ends the frame, anything else (DHT,
/// SOS of a progressive JPEG) goes back to segment parsing. Bytes that are
/// not a JPEG are skipped up to the next SOI and counted; a frame longer than
/// `maxFrameBytes` is dropped and counted. Memory is bounded by
/// `maxFrameBytes` plus one read.
public struct MjpegSplitter {
    public let maxFrameBytes: Int
    var buf: [UInt8] = []
    /// Where parsing continues inside `buf`.
    var pos = 0
    enum State { case seekSOI, segments, entropy }
    var state = State.seekSOI
    /// Bytes skipped because they were not inside a JPEG, frames dropped as too large.
    public private(set) var garbageBytes = 0
    public private(set) var oversizedFrames = 0
    /// Frames abandoned because a new SOI came before their end, or whose marker structure was broken.
    public private(set) var brokenFrames = 0

    public init(maxFrameBytes: Int) { self.maxFrameBytes = maxFrameBytes }

    /// Bytes buffered but not yet part of a returned frame.
    public var pending: Int { buf.count }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        buf.append(contentsOf: bytes)
    }

    /// Forgets the buffered bytes (the stream ended inside a frame).
    public mutating func discard() {
        buf = []
        pos = 0
        state = .seekSOI
    }

    public mutating func append(_ bytes: [UInt8]) {
        buf.append(contentsOf: bytes)
    }

    /// The next complete frame, or nil when more bytes are needed.
    public mutating func next() -> [UInt8]? {
        while true {
            switch state {
            case .seekSOI:
                var i = pos
                var found = -1
                while i + 1 < buf.count {
                    if buf[i] == 0xFF && buf[i + 1] == 0xD8 { found = i; break }
                    i += 1
                }
                if found < 0 {
                    // Keep a trailing FF: it may start the next SOI.
                    let keep = (buf.last == 0xFF) ? 1 : 0
                    garbageBytes += buf.count - keep
                    buf.removeFirst(buf.count - keep)
                    pos = 0
                    return nil
                }
                if found > 0 {
                    garbageBytes += found
                    buf.removeFirst(found)
                }
                pos = 2
                state = .segments
            case .segments:
                // At a marker: FF (fill FFs) code.
                if pos >= buf.count { return checkSize() }
                if buf[pos] != 0xFF {
                    // Broken structure (a cut frame whose last segment length ran
                    // into the next one): drop it, look for the next SOI after its start.
                    brokenFrames += 1
                    dropFrame(resyncFrom: 2)
                    continue
                }
                var p = pos
                while p < buf.count && buf[p] == 0xFF { p += 1 }
                if p >= buf.count { return checkSize() }
                let code = buf[p]
                if code == 0xD9 { return emit(end: p + 1) }
                if code == 0xD8 {
                    // A new image starts before this one ended.
                    brokenFrames += 1
                    buf.removeFirst(p - 1)
                    pos = 2
                    continue
                }
                if (code >= 0xD0 && code <= 0xD7) || code == 0x01 {
                    pos = p + 1
                    continue
                }
                if code == 0x00 {
                    brokenFrames += 1
                    dropFrame(resyncFrom: 2)
                    continue
                }
                if p + 2 >= buf.count { return checkSize() }
                let len = Int(buf[p + 1]) << 8 | Int(buf[p + 2])
                if len < 2 {
                    brokenFrames += 1
                    dropFrame(resyncFrom: 2)
                    continue
                }
                let next = p + 1 + len
                if next > buf.count {
                    if next > maxFrameBytes { return oversized() }
                    return nil
                }
                pos = next
                if code == 0xDA { state = .entropy }
            case .entropy:
                var i = pos
                while i + 1 < buf.count {
                    if buf[i] == 0xFF {
                        let c = buf[i + 1]
                        if c == 0x00 || (c >= 0xD0 && c <= 0xD7) || c == 0xFF {
                            i += c == 0xFF ? 1 : 2
                            continue
                        }
                        break
                    }
                    i += 1
                }
                if i + 1 >= buf.count {
                    pos = max(pos, i)
                    return checkSize()
                }
                let c = buf[i + 1]
                if c == 0xD9 { return emit(end: i + 2) }
                // Another marker (DHT, SOS, DRI of a progressive or multi-scan JPEG).
                pos = i
                state = .segments
            }
        }
    }

    mutating func emit(end: Int) -> [UInt8] {
        let frame = Array(buf[0..<end])
        buf.removeFirst(end)
        pos = 0
        state = .seekSOI
        return frame
    }

    /// nil, or drops an over-long frame in progress.
    mutating func checkSize() -> [UInt8]? {
        if buf.count > maxFrameBytes { return oversized() }
        return nil
    }

    mutating func oversized() -> [UInt8]? {
        oversizedFrames += 1
        // Skip what we have (a frame too large to keep) and look for the next SOI after it.
        dropFrame(resyncFrom: max(2, min(pos, buf.count)))
        return next()
    }

    mutating func dropFrame(resyncFrom: Int) {
        let cut = min(max(resyncFrom, 1), buf.count)
        buf.removeFirst(cut)
        pos = 0
        state = .seekSOI
    }
}
