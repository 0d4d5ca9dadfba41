import XCTest
import FipsDaemon
import FipsDeviceSupport

/// fipsd's parsers of untrusted bytes (the end-to-end daemon checks are
/// Tests/Integration/check_fipsd.py; these parsers are also fuzzed by scripts/fuzz.sh).
final class DaemonTests: XCTestCase {
    /// A minimal JPEG-shaped byte string: SOI, an APP1 segment holding `app1`,
    /// SOS with a 2-byte header, entropy data, EOI.
    func jpeg(app1: [UInt8] = [], entropy: [UInt8] = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56]) -> [UInt8] {
        var b: [UInt8] = [0xFF, 0xD8]
        let n = app1.count + 2
        b += [0xFF, 0xE1, UInt8(n >> 8), UInt8(n & 0xFF)] + app1
        b += [0xFF, 0xDA, 0x00, 0x02] + entropy
        b += [0xFF, 0xD9]
        return b
    }

    func frames(_ stream: [UInt8], chunk: Int, max: Int = 1 << 20) -> ([[UInt8]], MjpegSplitter) {
        var s = MjpegSplitter(maxFrameBytes: max)
        var out = [[UInt8]]()
        var at = 0
        while at < stream.count {
            let n = min(chunk, stream.count - at)
            s.append(Array(stream[at..<(at + n)]))
            at += n
            while let f = s.next() { out.append(f) }
        }
        return (out, s)
    }

    func testSplitterFindsWholeFramesWhateverTheChunking() {
        // An EXIF thumbnail (a whole JPEG inside APP1) must not end the frame early.
        let a = jpeg(app1: Array("Exif".utf8) + jpeg())
        let b = jpeg(entropy: [1, 2, 3])
        for chunk in [1, 2, 3, 7, 64, 100_000] {
            let (f, s) = frames(a + b + a, chunk: chunk)
            XCTAssertEqual(f, [a, b, a], "chunk \(chunk)")
            XCTAssertEqual(s.brokenFrames, 0)
            XCTAssertEqual(s.garbageBytes, 0)
            XCTAssertEqual(s.pending, 0)
        }
    }

    func testSplitterSkipsJunkAndCutFrames() {
        let a = jpeg(app1: [1, 2, 3, 4, 5, 6, 7, 8])
        // Junk, then a frame cut inside its APP1 segment, then a whole one.
        let (f, s) = frames(Array("junk".utf8) + Array(a.prefix(9)) + a, chunk: 5)
        XCTAssertEqual(f, [a])
        // Skipped: the junk, and the cut frame's 7 bytes after its SOI.
        XCTAssertEqual(s.garbageBytes, 4 + 7)
        XCTAssertEqual(s.brokenFrames, 1)
    }

    func testSplitterDropsOversizedFrames() {
        let big = jpeg(app1: [UInt8](repeating: 7, count: 5000))
        let small = jpeg()
        let (f, s) = frames(big + small, chunk: 512, max: 1000)
        XCTAssertEqual(f, [small])
        XCTAssertEqual(s.oversizedFrames, 1)
    }

    func parse(_ text: String, maxBody: Int = 1000) -> HttpParse {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { Http.parseHead($0, maxBody: maxBody) }
    }

    func status(_ p: HttpParse) -> Int {
        switch p {
        case .incomplete: return 0
        case .head: return 200
        case .error(let s, _): return s
        }
    }

    func testHttpHeads() {
        guard case .head(let h) = parse("POST /classify HTTP/1.1\r\nHost: x\r\ncontent-length:  12 \r\nExpect: 100-continue\r\n\r\nbody") else {
            return XCTFail("POST not parsed")
        }
        XCTAssertEqual(h.method, "POST")
        XCTAssertEqual(h.path, "/classify")
        XCTAssertEqual(h.contentLength, 12)
        XCTAssertTrue(h.expectContinue)
        XCTAssertEqual(h.headBytes, 25 + 9 + 22 + 22 + 2)
        XCTAssertEqual(status(parse("GET /metrics HTTP/1.0\n\n")), 200)
        XCTAssertEqual(status(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n")), 0)
        XCTAssertEqual(status(parse("GARBAGE\r\n\r\n")), 400)
        XCTAssertEqual(status(parse("POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n")), 413)
        XCTAssertEqual(status(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")), 411)
        XCTAssertEqual(status(parse("POST / HTTP/1.1\r\n\r\n")), 411)
        XCTAssertEqual(status(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")), 400)
        XCTAssertEqual(status(parse("GET / HTTP/2.0\r\n\r\n")), 505)
        XCTAssertEqual(status(parse("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 9000))), 431)
    }

    func testListenDefaultsToLoopback() {
        XCTAssertTrue(parseListen("8080")! == ("127.0.0.1", 8080))
        XCTAssertTrue(parseListen("0.0.0.0:80")! == ("0.0.0.0", 80))
        XCTAssertTrue(parseListen("[::1]:9000")! == ("::1", 9000))
        XCTAssertNil(parseListen("host:"))
        XCTAssertNil(parseListen(":80"))
        XCTAssertNil(parseListen("70000"))
    }

    /// The device programs' flag-table parser: values, ranges, switches,
    /// arguments, a lone "-", unknown options, --help and the final check.
    func testFlagTable() {
        struct Opts { var n = 0; var verbose = false; var args: [String] = [] }
        let table = FlagTable<Opts>(
            defaults: Opts(),
            flags: [
                .integer("--n", in: 1...9, error: "--n needs 1 to 9") { o, k in o.n = k },
                .set("--verbose", "-v") { $0.verbose = true },
            ],
            loneDashIsArgument: true,
            argument: { o, a in o.args.append(a); return nil },
            finish: { o in o.args.isEmpty ? "no arguments" : nil })
        func outcome(_ args: [String]) -> String {
            switch table.parse(args) {
            case .help: return "help"
            case .version: return "version"
            case .failure(let m): return m
            case .run(let o): return "n=\(o.n) verbose=\(o.verbose) " + o.args.joined(separator: ",")
            }
        }
        XCTAssertEqual(outcome(["--n", "3", "-v", "x", "-"]), "n=3 verbose=true x,-")
        XCTAssertEqual(outcome(["x", "--n"]), "--n needs 1 to 9")
        XCTAssertEqual(outcome(["--n", "10", "x"]), "--n needs 1 to 9")
        XCTAssertEqual(outcome(["-q", "x"]), "unknown option -q")
        XCTAssertEqual(outcome(["x", "-h", "--n"]), "help")
        XCTAssertEqual(outcome(["--version", "--n"]), "version")
        // getopt_long's grammar: --opt=value, "--" before arguments, bundles, abbreviations.
        XCTAssertEqual(outcome(["--n=3", "x", "--", "-v", "--n"]), "n=3 verbose=false x,-v,--n")
        XCTAssertEqual(outcome(["-vv", "x"]), "n=0 verbose=true x")
        XCTAssertEqual(outcome(["--verb", "--n", "4", "x"]), "n=4 verbose=true x")
        XCTAssertEqual(outcome(["-v", "--n="]), "--n needs 1 to 9")
        XCTAssertEqual(outcome(["--bogus=1", "x"]), "unknown option --bogus=1")
        XCTAssertEqual(outcome(["-vq", "x"]), "unknown option -q")
        XCTAssertEqual(outcome([]), "no arguments")
    }
}
