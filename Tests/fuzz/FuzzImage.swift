// libFuzzer target: the device image path (ImageDecoder.decode through
// libjpeg/libpng, then Preprocessor: bicubic resize, centre crop, normalise),
// on arbitrary bytes, as fipsd feeds it HTTP bodies and stdin frames.
// Built by scripts/fuzz.sh together with Sources/Device/FipsImage/*.swift.

let fuzzPre = Preprocessor(resizeShorter: 36, cropSize: 32, mean: (0.485, 0.456, 0.406), std: (0.229, 0.224, 0.225))
let fuzzOut = UnsafeMutablePointer<Float>.allocate(capacity: 3 * 32 * 32)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    // Keep decoded images small enough that the fuzzer explores rather than waits.
    // The input's length picks the full-size decode or the reduced one (fips-run's and
    // fipsd's, the shorter side kept at least the resize size) so both paths are fuzzed.
    let limits = DecodeLimits(maxPixels: 1 << 20, maxFileBytes: 1 << 20, minShorterSide: size % 2 == 0 ? 0 : 36)
    let bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(data), count: size)
    do {
        let img = try ImageDecoder.decode(bytes, name: "fuzz", limits: limits)
        precondition(img.width > 0 && img.height > 0 && img.pixels.count == img.width * img.height * 3)
        fuzzPre.tensor(img, into: fuzzOut)
        for i in 0..<(3 * 32 * 32) { precondition(fuzzOut[i].isFinite) }
    } catch {
        precondition(!error.message.isEmpty)
    }
    return 0
}
