import XCTest
import FipsDaemon

/// POST /classify's bodies: multipart/form-data uploads (curl -F, browsers,
/// requests' files=) and the metrics histogram's buckets.
final class DaemonHttpTests: XCTestCase {
    func head(_ text: String) -> HttpRequestHead? {
        let bytes = Array(text.utf8)
        let parsed = bytes.withUnsafeBufferPointer { Http.parseHead($0, maxBody: 1 << 20) }
        if case .head(let h) = parsed { return h }
        return nil
    }

    func part(_ body: String, _ boundary: String) -> String {
        let b = Array(body.utf8)
        switch b.withUnsafeBytes({ Multipart.filePart($0, boundary: Array(boundary.utf8)) }) {
        case .success(let r): return String(decoding: b[r], as: UTF8.self)
        case .failure(let e): return "error: " + e.message
        }
    }

    func testMultipartBoundaryFromTheHeader() {
        let h = head("POST /classify HTTP/1.1\r\nContent-Length: 10\r\nContent-Type: multipart/form-data; boundary=------abc123\r\n\r\n")
        XCTAssertEqual(h?.multipartBoundary, Array("------abc123".utf8))
        let q = head("POST /classify HTTP/1.1\r\nContent-Length: 10\r\ncontent-type: Multipart/Form-Data; BOUNDARY=\"x y\"; charset=utf-8\r\n\r\n")
        XCTAssertEqual(q?.multipartBoundary, Array("x y".utf8))
        XCTAssertNil(head("POST /classify HTTP/1.1\r\nContent-Length: 1\r\nContent-Type: image/jpeg\r\n\r\n")?.multipartBoundary)
        let missing = Array("POST /classify HTTP/1.1\r\nContent-Length: 1\r\nContent-Type: multipart/form-data\r\n\r\n".utf8)
        guard case .error(400, _) = missing.withUnsafeBufferPointer({ Http.parseHead($0, maxBody: 100) }) else {
            return XCTFail("multipart without a boundary must be a 400")
        }
    }

    func testFilePartIsTheFirstWithAFilename() {
        // As curl -F 'note=hi' -F 'image=@cat.jpg' sends it: the field first, then the file.
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n"
            + "--XyZ\r\nContent-Disposition: form-data; name=\"image\"; FILENAME=\"cat.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
            + "JPEG\r\nbytes--XyZ-not-a-delimiter\r\n--XyZ--\r\n"
        XCTAssertEqual(part(body, "XyZ"), "JPEG\r\nbytes--XyZ-not-a-delimiter")
        // No part says filename: the first part; a preamble before the first delimiter is skipped.
        XCTAssertEqual(part("preamble\r\n--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nAAA\r\n--b--", "b"), "AAA")
        // A part without headers.
        XCTAssertEqual(part("--b\r\n\r\nraw\r\n--b--\r\n", "b"), "raw")
    }

    func testBrokenMultipartBodiesAreRefusedByName() {
        XCTAssertEqual(part("no delimiter at all", "b"), "error: multipart body without its boundary")
        XCTAssertEqual(part("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\ncut off", "b"), "error: multipart body ends inside a part")
        XCTAssertEqual(part("--b--\r\n", "b"), "error: multipart body without a part")
        XCTAssertEqual(part("--b", "b"), "error: multipart body ends inside a part")
    }

    func testHistogramBucketsAroundTheMeasuredTime() {
        var h = Histogram(around: 0.0123456, factors: [0.5, 1, 2, 2.0001])
        XCTAssertEqual(h.bounds, [0.00617, 0.0123, 0.0247])   // three significant digits; equal bounds merged
        h.observe(0.01)
        h.observe(0.02)
        h.observe(9)
        XCTAssertEqual(h.bounds.count, 3)
    }
}
