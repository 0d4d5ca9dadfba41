import Foundation
import XCTest
import FipsImage

/// The bounded decode of fips-run and fipsd: a JPEG decoded at 1/2, 1/4 or 1/8
/// in the DCT domain (`DecodeLimits.minShorterSide`), against PIL's
/// `Image.draft` at the same scale followed by the reference resize and crop.
/// Fixtures: Tests/Device/FipsDeviceTests/Fixtures/images/reduced
/// (scripts/fixtures/make_reduced_decode_fixtures.py, Pillow 11.3.0).
final class ReducedDecodeTests: XCTestCase {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images/reduced")

    func path(_ name: String) -> String { Self.dir.appendingPathComponent(name).path }

    static let small = Preprocessor(resizeShorter: 64, cropSize: 56, mean: (0, 0, 0), std: (1, 1, 1))

    /// name, the preprocessing, the size the kit must decode at.
    static let cases: [(String, Preprocessor, Int, Int)] = [
        ("r2_444", small, 90, 75),
        ("r4_420", small, 75, 68),
        ("r8_edge", small, 65, 64),
        ("r4_grey", small, 65, 83),
        ("r2_progressive", small, 100, 70),
        ("full_127", small, 120, 127),
        ("r2_imagenet", .imageNet, 300, 260),
    ]

    /// Measured: every case byte-identical to PIL (max difference 0/255, 0
    /// bytes differ); Pillow 11.3.0's bundled libjpeg-turbo and the system's
    /// libjpeg-turbo 2.1.5 give the same scaled IDCT and upsampling output.
    /// The limit of 1/255 is the one the unreduced golden tests use (PIL's
    /// resize and ours may round a value differently).
    func testReducedDecodeMatchesPILDraft() throws {
        var worst = 0
        for (name, pre, w, h) in Self.cases {
            let limits = DecodeLimits(minShorterSide: pre.resizeShorter)
            let img = try ImageDecoder.load(path: path(name + ".jpg"), limits: limits)
            XCTAssertEqual(img.width, w, name)
            XCTAssertEqual(img.height, h, name)
            let out = pre.resizeAndCrop(img)
            let ref = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path("\(name)_\(pre.cropSize).u8"))))
            XCTAssertEqual(out.pixels.count, ref.count, name)
            var m = 0, n = 0
            for i in 0..<min(ref.count, out.pixels.count) {
                let d = abs(Int(out.pixels[i]) - Int(ref[i]))
                if d > 0 { n += 1; m = max(m, d) }
            }
            print("ReducedDecodeTests: \(name).jpg decoded \(img.width)x\(img.height): max |Swift - PIL draft| = \(m)/255, \(n) bytes differ")
            XCTAssertLessThanOrEqual(m, 1, name)
            worst = max(worst, m)
        }
        print("ReducedDecodeTests: max difference over the reduced decodes: \(worst)/255")
    }

    /// Without a resize size (the host's loaders, the old behaviour) nothing is reduced.
    func testNoMinimumMeansFullSize() throws {
        let img = try ImageDecoder.load(path: path("r8_edge.jpg"))
        XCTAssertEqual(img.width, 515)
        XCTAssertEqual(img.height, 505)
    }

    /// The limit counts the reduced size: a JPEG over it at full size decodes
    /// when its reduced size fits, and is refused, with both sizes, when not.
    func testPixelLimitCountsTheReducedSize() throws {
        let file = path("r8_edge.jpg")
        let img = try ImageDecoder.load(path: file, limits: DecodeLimits(maxPixels: 65 * 64, minShorterSide: 64))
        XCTAssertEqual(img.pixelCount, 65 * 64)
        do {
            let i = try ImageDecoder.load(path: file, limits: DecodeLimits(maxPixels: 65 * 64 - 1, minShorterSide: 64))
            XCTFail("decoded \(i.width)x\(i.height) over the limit")
        } catch {
            XCTAssertEqual(error.message, "\(file): image is 515x505 = 260075 pixels; decoded at 1/8 it is 65x64 = 4160 pixels, over the limit of 4159")
        }
    }

    /// A header claiming 60000x60000 is still 7500x7500 at 1/8: refused before
    /// anything is allocated, naming both sizes.
    func testLyingHeaderIsRefusedAtTheReducedSize() {
        let file = Self.dir.deletingLastPathComponent().appendingPathComponent("huge_header.jpg").path
        do {
            let i = try ImageDecoder.load(path: file, limits: DecodeLimits(minShorterSide: 256))
            XCTFail("decoded \(i.width)x\(i.height)")
        } catch {
            XCTAssertEqual(error.message, "\(file): image is 60000x60000 = 3600000000 pixels; decoded at 1/8 it is 7500x7500 = 56250000 pixels, over the limit of 8000000")
        }
    }

    /// A progressive JPEG keeps its full-size coefficients whatever the scale:
    /// 200x140 in 4:2:0 is 25x18 luma blocks (rounded up to 2x2 MCUs: 26x18)
    /// and 13x9 per chroma plane, 128 bytes a block: (468 + 2 * 117) * 128 =
    /// 89856 bytes, over 3 bytes per allowed pixel when the limit is 29951.
    func testProgressiveJPEGNeedsItsCoefficientMemory() throws {
        let file = path("r2_progressive.jpg")
        let ok = try ImageDecoder.load(path: file, limits: DecodeLimits(maxPixels: 29952, minShorterSide: 64))
        XCTAssertEqual(ok.width, 100)
        do {
            let i = try ImageDecoder.load(path: file, limits: DecodeLimits(maxPixels: 29951, minShorterSide: 64))
            XCTFail("decoded \(i.width)x\(i.height)")
        } catch {
            XCTAssertEqual(error.message, "\(file): progressive JPEG of 200x140 needs 89856 bytes of decoder memory at any scale, over the limit of 89853 (3 bytes per allowed pixel)")
        }
    }
}
