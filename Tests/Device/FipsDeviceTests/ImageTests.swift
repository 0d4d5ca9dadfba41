import Foundation
import XCTest
import FipsImage
import FipsTestSupport

/// FipsImage: decoding, bad inputs, PIL-exact preprocessing, camera frames.
/// Fixtures: Tests/Device/FipsDeviceTests/Fixtures/images (scripts/fixtures/make_image_fixtures.py);
/// photos: data/photos (scripts/setup.sh, not committed).
final class ImageTests: XCTestCase {
    static let imagesDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/images")

    func fixture(_ name: String) -> String { Self.imagesDir.appendingPathComponent(name).path }

    func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture(name))))
    }

    /// The error's message, or a failure if `body` succeeds.
    func errorMessage(_ body: () throws(ImageError) -> RGBImage, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            let img = try body()
            XCTFail("expected an error, decoded \(img.width)x\(img.height)", file: file, line: line)
            return ""
        } catch {
            return error.message
        }
    }

    /// Largest absolute difference and number of differing bytes.
    func compare(_ a: [UInt8], _ b: [UInt8]) -> (maxDiff: Int, differing: Int) {
        XCTAssertEqual(a.count, b.count)
        var m = 0, n = 0
        for i in 0..<min(a.count, b.count) {
            let d = abs(Int(a[i]) - Int(b[i]))
            if d > 0 { n += 1; m = max(m, d) }
        }
        return (m, n)
    }

    // MARK: preprocessing vs PIL

    func testPreprocessingMatchesPIL() throws {
        let pre = Preprocessor.imageNet
        var worst = 0
        for name in ["chelsea", "coffee", "astronaut"] {
            let path = TestPaths.photos.appendingPathComponent(name + ".png").path
            try TestPaths.require(path)
            let img = try ImageDecoder.load(path: path)
            let out = pre.resizeAndCrop(img)
            XCTAssertEqual(out.width, 224)
            XCTAssertEqual(out.height, 224)
            let (m, n) = compare(out.pixels, try bytes(name + "_224.u8"))
            print("ImageTests: \(name).png \(img.width)x\(img.height): max |Swift - PIL| = \(m)/255, \(n) of \(out.pixels.count) bytes differ")
            XCTAssertLessThanOrEqual(m, 1, name)
            worst = max(worst, m)
        }
        print("ImageTests: preprocessing max difference vs PIL over the photos: \(worst)/255")
    }

    func testJPEGDecodeAndPreprocessMatchesPIL() throws {
        let img = try ImageDecoder.load(path: fixture("chelsea_q90.jpg"))
        XCTAssertEqual(img.width, 451)
        XCTAssertEqual(img.height, 300)
        let (m, n) = compare(Preprocessor.imageNet.resizeAndCrop(img).pixels, try bytes("chelsea_q90_224.u8"))
        print("ImageTests: chelsea_q90.jpg: max |Swift - PIL| = \(m)/255, \(n) bytes differ")
        XCTAssertLessThanOrEqual(m, 1)
    }

    func testOddGeometryMatchesPIL() throws {
        let src = RGBImage(width: 5, height: 300, pixels: try bytes("odd_5x300_src.u8"))
        let pre = Preprocessor.imageNet
        XCTAssertTrue(pre.resizedSize(width: 5, height: 300) == (256, 15360))
        let (m, n) = compare(pre.resizeAndCrop(src).pixels, try bytes("odd_5x300_224.u8"))
        print("ImageTests: random 5x300: max |Swift - PIL| = \(m)/255, \(n) bytes differ")
        XCTAssertLessThanOrEqual(m, 1)
    }

    func testTensorIsNormalisedCHW() throws {
        var px = [UInt8](repeating: 0, count: 300 * 260 * 3)
        for i in 0..<px.count { px[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 7) }
        let img = RGBImage(width: 300, height: 260, pixels: px)
        let pre = Preprocessor.imageNet
        let crop = pre.resizeAndCrop(img)
        let t = pre.tensor(img)
        XCTAssertEqual(t.count, 3 * 224 * 224)
        let mean: [Float] = [0.485, 0.456, 0.406], std: [Float] = [0.229, 0.224, 0.225]
        for (y, x) in [(0, 0), (5, 17), (223, 223), (100, 3)] {
            for c in 0..<3 {
                let v = crop.pixels[(y * 224 + x) * 3 + c]
                let expected = (Float(v) / 255 - mean[c]) / std[c]
                XCTAssertEqual(t[c * 224 * 224 + y * 224 + x], expected)
            }
        }
        var buf = [Float](repeating: .nan, count: 3 * 224 * 224)
        buf.withUnsafeMutableBufferPointer { pre.tensor(img, into: $0.baseAddress!) }
        XCTAssertEqual(buf, t)
    }

    func testResizeGeometryAndCropOffsets() {
        let pre = Preprocessor.imageNet
        XCTAssertTrue(pre.resizedSize(width: 451, height: 300) == (384, 256))   // int(256*451/300) = 384
        XCTAssertTrue(pre.resizedSize(width: 600, height: 400) == (384, 256))
        XCTAssertTrue(pre.resizedSize(width: 3, height: 700) == (256, 59733))
        XCTAssertTrue(pre.resizedSize(width: 640, height: 427) == (383, 256))
    }

    func testOddSizesDoNotCrash() {
        let pre = Preprocessor.imageNet
        for (w, h) in [(1, 1), (3, 700), (700, 3), (2, 2), (1, 500), (257, 256), (225, 9999)] {
            var px = [UInt8](repeating: 0, count: w * h * 3)
            for i in 0..<px.count { px[i] = UInt8(truncatingIfNeeded: i * 31 + 7) }
            let out = pre.resizeAndCrop(RGBImage(width: w, height: h, pixels: px))
            XCTAssertEqual(out.width, 224, "\(w)x\(h)")
            XCTAssertEqual(out.height, 224, "\(w)x\(h)")
            if w == 1 && h == 1 {
                for i in 0..<(224 * 224) {
                    XCTAssertEqual(out.pixels[i * 3], px[0]); XCTAssertEqual(out.pixels[i * 3 + 1], px[1]); XCTAssertEqual(out.pixels[i * 3 + 2], px[2])
                    if out.pixels[i * 3] != px[0] { break }
                }
            }
        }
        // Same size: no resampling pass at all.
        let img = RGBImage(width: 4, height: 3, pixels: (0..<36).map { UInt8($0 * 7) })
        XCTAssertEqual(BicubicResize.resize(img, width: 4, height: 3).pixels, img.pixels)
        // Resize smaller than the crop: zero padding, as torchvision's center_crop.
        let small = Preprocessor(resizeShorter: 8, cropSize: 12, mean: (0, 0, 0), std: (1, 1, 1))
        let padded = small.resizeAndCrop(RGBImage(width: 8, height: 16, pixels: [UInt8](repeating: 200, count: 8 * 16 * 3)))
        XCTAssertEqual(padded.width, 12)
        XCTAssertEqual(padded.pixels[0], 0)                       // left pad column
        XCTAssertEqual(padded.pixels[(0 * 12 + 2) * 3], 200)      // first image column
        XCTAssertEqual(padded.pixels[(0 * 12 + 10) * 3], 0)       // right pad column
    }

    // MARK: decoding

    func testPNGNamedJPGIsRefusedByPathButDecodesAsBytes() throws {
        let path = fixture("png_named.jpg")
        XCTAssertThrowsError(try ImageDecoder.load(path: path)) { e in
            XCTAssertEqual((e as! ImageError).message, "\(path): file is named as JPEG but holds PNG data; rename or re-encode it")
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let img = try data.withUnsafeBytes { try ImageDecoder.decode($0, name: "upload") }
        XCTAssertEqual(img.width, 32)
        XCTAssertEqual(img.height, 24)
        XCTAssertEqual(img.pixels, try bytes("png_named_rgb.u8"))
    }

    func testGreyscaleIsReplicatedToRGB() throws {
        for (file, ref) in [("grey.png", "grey_rgb.u8"), ("grey.jpg", "grey_jpg_rgb.u8")] {
            let img = try ImageDecoder.load(path: fixture(file))
            XCTAssertEqual(img.width, 8, file)
            XCTAssertEqual(img.height, 6, file)
            XCTAssertEqual(img.pixels, try bytes(ref), file)
            for i in 0..<(img.width * img.height) {
                XCTAssertEqual(img.pixels[i * 3], img.pixels[i * 3 + 1], file)
                XCTAssertEqual(img.pixels[i * 3], img.pixels[i * 3 + 2], file)
            }
        }
    }

    func testTruncatedJPEGIsRejected() {
        let msg = errorMessage { () throws(ImageError) in try ImageDecoder.load(path: fixture("truncated.jpg")) }
        XCTAssertTrue(msg.hasSuffix("truncated.jpg: truncated JPEG (premature end of data)"), msg)
    }

    func testTruncatedPNGIsRejected() throws {
        let png = try bytes("png_named.jpg")
        let half = Array(png[0..<(png.count / 2)])
        let msg = half.withUnsafeBytes { raw in
            errorMessage { () throws(ImageError) in try ImageDecoder.decode(raw, name: "half.png") }
        }
        XCTAssertEqual(msg, "half.png: truncated PNG (premature end of data)")
    }

    func testCorruptJPEGIsRejected() throws {
        var jpg = try bytes("chelsea_q90.jpg")
        // Overwrite part of the entropy-coded data with a restart marker out of place.
        let mid = jpg.count / 2
        for i in 0..<64 { jpg[mid + i] = i % 2 == 0 ? 0xFF : 0xD3 }
        let msg = jpg.withUnsafeBytes { raw in
            errorMessage { () throws(ImageError) in try ImageDecoder.decode(raw, name: "bad.jpg") }
        }
        XCTAssertTrue(msg.hasPrefix("bad.jpg: "), msg)
        XCTAssertTrue(msg.contains("JPEG"), msg)
    }

    func testEmptyFile() {
        let msg = errorMessage { () throws(ImageError) in try ImageDecoder.load(path: fixture("empty.jpg")) }
        XCTAssertTrue(msg.hasSuffix("empty.jpg: empty file (0 bytes)"), msg)
    }

    func testNotAnImage() {
        let msg = errorMessage { () throws(ImageError) in try ImageDecoder.load(path: fixture("not_an_image.jpg")) }
        XCTAssertTrue(msg.hasSuffix("not_an_image.jpg: not a JPEG or PNG image"), msg)
    }

    func testHugeHeaderFailsFastBeforeAllocating() {
        let start = Date()
        let msg = errorMessage { () throws(ImageError) in
            try ImageDecoder.load(path: fixture("huge_header.jpg"), limits: DecodeLimits(maxPixels: 50_000_000))
        }
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertTrue(msg.hasSuffix("huge_header.jpg: image is 60000x60000 = 3600000000 pixels, over the limit of 50000000"), msg)
        XCTAssertLessThan(elapsed, 1.0)
        let msg2 = errorMessage { () throws(ImageError) in try ImageDecoder.load(path: fixture("huge_header.jpg")) }
        XCTAssertTrue(msg2.contains("over the limit of 8000000"), msg2)
    }

    func testPixelLimitAppliesToPNG() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixture("png_named.jpg")))
        let msg = data.withUnsafeBytes { b in
            errorMessage { () throws(ImageError) in
                try ImageDecoder.decode(b, name: "frame.png", limits: DecodeLimits(maxPixels: 100))
            }
        }
        XCTAssertEqual(msg, "frame.png: image is 32x24 = 768 pixels, over the limit of 100")
    }

    func testDirectoryMissingAndOversizedFiles() {
        let dir = Self.imagesDir.path
        XCTAssertEqual(errorMessage { () throws(ImageError) in try ImageDecoder.load(path: dir) }, "\(dir): is a directory")
        let missing = fixture("does_not_exist.jpg")
        XCTAssertEqual(errorMessage { () throws(ImageError) in try ImageDecoder.load(path: missing) }, "\(missing): no such file")
        let big = fixture("chelsea_q90.jpg")
        let msg = errorMessage { () throws(ImageError) in try ImageDecoder.load(path: big, limits: DecodeLimits(maxFileBytes: 1000)) }
        XCTAssertEqual(msg, "\(big): file is larger than the limit of 1000 bytes")
    }

    // MARK: camera frames

    func testYUYVHandComputed() {
        // Two rows of 3 pixels (odd width: the last pair is half used), stride 16 (padded).
        // Row 0: Y0=16 U=128 Y1=235 V=128 | Y=81 U=90 Y=145 V=240
        //   (16,128,128)  -> C=0:   R=G=B=(0+128)>>8 = 0
        //   (235,128,128) -> C=219: 298*219=65262; (65262+128)>>8 = 255
        //   (81,90,240)   -> C=65 (19370), D=-38, E=112:
        //        R=(19370+45808+128)>>8=255, G=(19370+3800-23296+128)>>8=0, B=(19370-19608+128)>>8=-1 -> 0
        // Row 1: Y=126 U=128 Y=126 V=128 | Y=145 U=90 Y=0 V=240
        //   (126,128,128) -> C=110: (32780+128)>>8 = 128 -> grey 128
        //   (145,90,240)  -> C=129 (38442): R=(38442+45808+128)>>8=329->255,
        //        G=(38442+3800-23296+128)>>8=74, B=(38442-19608+128)>>8=74
        var buf = [UInt8](repeating: 0xEE, count: 32)
        let row0: [UInt8] = [16, 128, 235, 128, 81, 90, 145, 240]
        let row1: [UInt8] = [126, 128, 126, 128, 145, 90, 0, 240]
        for i in 0..<8 { buf[i] = row0[i]; buf[16 + i] = row1[i] }
        let img = buf.withUnsafeBytes { CameraFrame.fromYUYV($0, width: 3, height: 2, stride: 16) }
        XCTAssertEqual(img.width, 3)
        XCTAssertEqual(img.height, 2)
        XCTAssertEqual(img.pixels, [0, 0, 0, 255, 255, 255, 255, 0, 0,
                                    128, 128, 128, 128, 128, 128, 255, 74, 74])
    }

    func testRGB24WithStride() {
        var buf = [UInt8](repeating: 0xAA, count: 2 * 10)
        let row0: [UInt8] = [1, 2, 3, 4, 5, 6]
        let row1: [UInt8] = [7, 8, 9, 10, 11, 12]
        for i in 0..<6 { buf[i] = row0[i]; buf[10 + i] = row1[i] }
        let img = buf.withUnsafeBytes { CameraFrame.fromRGB24($0, width: 2, height: 2, stride: 10) }
        XCTAssertEqual(img.pixels, Array(1...12).map { UInt8($0) })
    }
}
