// libFuzzer target: fipsd's own parsers of untrusted bytes — the MJPEG
// stream splitter (stdin), the HTTP request-head parser and the multipart
// upload parser — on arbitrary input. Built by scripts/fuzz.sh with
// Sources/Device/FipsDaemon/{MjpegSplitter,Http,Multipart}.swift.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzStream(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    // HTTP head: whatever it says, a status is one fipsd can send.
    switch Http.parseHead(bytes, maxBody: 1 << 16) {
    case .incomplete: precondition(size < Http.maxHeadBytes)
    case .head(let h): precondition(h.headBytes <= size && h.contentLength <= 1 << 16)
    case .error(let status, let why): precondition(status >= 400 && status < 600 && !why.isEmpty)
    }
    // Multipart: the boundary is the input's first line; a part found lies inside the body.
    let raw = UnsafeRawBufferPointer(bytes)
    if let nl = raw.firstIndex(of: 10), nl > 0, nl <= 70 {
        let boundary = Array(raw[0..<nl])
        let body = UnsafeRawBufferPointer(rebasing: raw[(nl + 1)...])
        if case .success(let r) = Multipart.filePart(body, boundary: boundary) {
            precondition(r.lowerBound >= 0 && r.upperBound <= body.count && r.lowerBound <= r.upperBound)
        }
    }
    // MJPEG: fed in pieces whose sizes come from the input, every frame starts
    // with SOI and ends with EOI, and the buffer stays bounded.
    var s = MjpegSplitter(maxFrameBytes: 4096)
    var at = 0
    var step = 1
    while at < size {
        let n = min(step, size - at)
        s.append(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[at..<(at + n)]))
        at += n
        step = step * 3 % 257 + 1
        while let f = s.next() {
            precondition(f.count >= 4 && f[0] == 0xFF && f[1] == 0xD8 && f[f.count - 2] == 0xFF && f[f.count - 1] == 0xD9)
            precondition(f.count <= 4096 + 257)
        }
        precondition(s.pending <= 4096 + 2 * 257)
    }
    return 0
}
