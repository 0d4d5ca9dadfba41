/// An 8-bit RGB image, pixels interleaved (R, G, B, R, G, B, ...), rows
/// tightly packed: pixel (x, y) channel c is `pixels[(y * width + x) * 3 + c]`.
public struct RGBImage {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height * 3,
                     "RGBImage: pixels.count must be width*height*3")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A black image.
    public init(width: Int, height: Int) {
        precondition(width >= 0 && height >= 0)
        self.width = width
        self.height = height
        self.pixels = [UInt8](repeating: 0, count: width * height * 3)
    }

    public var pixelCount: Int { width * height }
}
