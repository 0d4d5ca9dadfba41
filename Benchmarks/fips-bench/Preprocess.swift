// swift build -c release --product fips-bench && .build/release/fips-bench preprocess
import Foundation
import FipsImage

/// `fips-bench preprocess`: one 640x480 frame to a 224x224 tensor. Moved from ImageTests.testPreprocessSpeed.
enum PreprocessBench {
    static func run() {
        var px = [UInt8](repeating: 0, count: 640 * 480 * 3)
        for i in 0..<px.count { px[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 9) }
        let img = RGBImage(width: 640, height: 480, pixels: px)
        let pre = Preprocessor.imageNet
        var t = [Float](repeating: 0, count: 3 * 224 * 224)
        let start = Date()
        let n = 5
        for _ in 0..<n { t.withUnsafeMutableBufferPointer { pre.tensor(img, into: $0.baseAddress!) } }
        let us = Date().timeIntervalSince(start) * 1_000_000 / Double(n)
        print("ImageTests: 640x480 -> 224x224 tensor: \(Int(us)) µs per frame (this build configuration)")
    }
}
