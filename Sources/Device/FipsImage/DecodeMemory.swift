/// The most memory one image takes between its encoded bytes and the model's
/// input, for given limits. fips-plan reserves it in the budget and fips-run
/// prints it, so this is the one place the two agree on.
///
/// Peak while decoding (`ImageDecoder.load` / `decode`):
///   encoded bytes            maxInputBytes (a read file, an HTTP body, a stdin frame)
///   the codec's RGB buffer   3 * maxPixels
///   then either the multi-scan JPEG coefficient buffer (refused above
///   3 * maxPixels) or the RGBImage copy of the RGB buffer: 3 * maxPixels
///   libjpeg / libpng state   codecWorkingBytes
/// Peak while resizing (`Preprocessor.resizeAndCrop`), after the above is freed:
///   the RGBImage 3 * maxPixels, the horizontal pass's rows (at most the
///   shorter side plus the filter taps, times the crop width) and the crop.
public enum DecodeMemory {
    /// libjpeg's and libpng's own allocations beside the pixel buffers: the
    /// decompressor state, Huffman tables, one MCU row of sample buffers and the
    /// scaling buffers at 1/8..1/1 output, or zlib's window and two rows. A
    /// bound taken with margin over what Tests/Integration/check_plan_memory.py
    /// measures (peak RSS less the process baseline, the model and the image).
    public static let codecWorkingBytes = 256 << 10

    public static func worstCaseBytes(maxPixels: Int, maxInputBytes: Int, cropSize: Int) -> Int {
        let p = max(0, maxPixels), c = cropSize
        let decoding = maxInputBytes + 3 * p + 3 * p + codecWorkingBytes
        let shorter = Int(Double(p).squareRoot())
        let resizing = 3 * p + 3 * c * (shorter + 16) + 3 * c * c
        return max(decoding, resizing)
    }

    /// The bytes an HTTP request head may take (fipsd's `Http.maxHeadBytes`)
    /// and fipsd's read chunk: what a connection holds beside its body.
    public static let connectionBytes = 8192 + 65536

    /// The inputs' share of a process serving a planned model: fips-run holds
    /// one encoded image while decoding it; fipsd holds up to `maxConnections`
    /// request bodies, one of which is being decoded.
    public static func processWorstCaseBytes(maxPixels: Int, maxInputBytes: Int, maxConnections: Int, cropSize: Int) -> Int {
        let c = max(1, maxConnections)
        return worstCaseBytes(maxPixels: maxPixels, maxInputBytes: maxInputBytes, cropSize: cropSize)
            + (c - 1) * maxInputBytes + c * connectionBytes
    }
}
