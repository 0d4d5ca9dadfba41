/// multipart/form-data bodies (RFC 7578), as `curl -F`, browsers and
/// `requests.post(files=...)` send an upload: POST /classify takes the first
/// part that is a file (has a filename), or the first part when none says so.
public enum Multipart {
    /// The boundary parameter of a Content-Type value (quoted or not), or nil.
    public static func boundary(contentType: [UInt8]) -> [UInt8]? {
        let key = Array("boundary=".utf8)
        var i = 0
        while i + key.count <= contentType.count {
            var match = true
            for k in 0..<key.count where lower(contentType[i + k]) != key[k] { match = false; break }
            if match {
                var v = Array(contentType[(i + key.count)...])
                if let semi = v.firstIndex(of: 59) { v = Array(v[..<semi]) }   // ';'
                while let l = v.last, l == 32 || l == 9 { v.removeLast() }
                if v.count >= 2 && v[0] == 34 && v[v.count - 1] == 34 { v = Array(v[1..<(v.count - 1)]) }
                return v.isEmpty || v.count > 70 ? nil : v
            }
            i += 1
        }
        return nil
    }

    /// The byte range of the uploaded file's content in `body`, or why not.
    public static func filePart(_ body: UnsafeRawBufferPointer, boundary: [UInt8]) -> Result<Range<Int>, MultipartError> {
        let delimiter = Array("--".utf8) + boundary
        var parts: [(headers: Range<Int>, content: Range<Int>)] = []
        guard var at = find(delimiter, in: body, from: 0) else { return .failure(.noBoundary) }
        while true {
            at += delimiter.count
            // "--" after a delimiter ends the body.
            if at + 1 < body.count && body[at] == 45 && body[at + 1] == 45 { break }
            guard let headStart = lineEnd(body, at) else { return .failure(.truncated) }
            guard let blank = find(Array("\r\n\r\n".utf8), in: body, from: headStart - 2) else { return .failure(.truncated) }
            let contentStart = blank + 4
            guard let next = find(Array("\r\n".utf8) + delimiter, in: body, from: contentStart) else {
                return .failure(.truncated)
            }
            parts.append((headers: headStart..<max(headStart, blank), content: contentStart..<next))
            at = next + 2
        }
        guard !parts.isEmpty else { return .failure(.noParts) }
        for p in parts where hasFilename(body, p.headers) { return .success(p.content) }
        return .success(parts[0].content)
    }

    static func hasFilename(_ body: UnsafeRawBufferPointer, _ r: Range<Int>) -> Bool {
        find(Array("filename=".utf8), in: body, from: r.lowerBound, lowercased: true).map { $0 < r.upperBound } ?? false
    }

    /// The index just past the CRLF that ends the line starting at `i`.
    static func lineEnd(_ b: UnsafeRawBufferPointer, _ i: Int) -> Int? {
        find(Array("\r\n".utf8), in: b, from: i).map { $0 + 2 }
    }

    static func find(_ needle: [UInt8], in b: UnsafeRawBufferPointer, from: Int, lowercased: Bool = false) -> Int? {
        guard !needle.isEmpty, needle.count <= b.count else { return nil }
        var i = max(0, from)
        while i + needle.count <= b.count {
            var k = 0
            while k < needle.count && (lowercased ? lower(b[i + k]) : b[i + k]) == needle[k] { k += 1 }
            if k == needle.count { return i }
            i += 1
        }
        return nil
    }

    static func lower(_ c: UInt8) -> UInt8 { c >= 65 && c <= 90 ? c + 32 : c }
}

public enum MultipartError: Error {
    case noBoundary, truncated, noParts

    public var message: String {
        switch self {
        case .noBoundary: return "multipart body without its boundary"
        case .truncated: return "multipart body ends inside a part"
        case .noParts: return "multipart body without a part"
        }
    }
}
