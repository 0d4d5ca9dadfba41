/// A row-major matrix view: `rows` × `cols`, consecutive rows `stride`
/// elements apart. Kernels take explicit shapes and strides so attention can
/// read Q, K and V straight out of the fused QKV buffer.
public struct MatrixRef<Element> {
    public var base: UnsafePointer<Element>
    public var rows: Int
    public var cols: Int
    public var stride: Int

    public init(_ base: UnsafePointer<Element>, rows: Int, cols: Int, stride: Int? = nil) {
        self.base = base
        self.rows = rows
        self.cols = cols
        self.stride = stride ?? cols
    }
    @inline(__always) public func row(_ r: Int) -> UnsafePointer<Element> { base + r * stride }
}

public struct MutableMatrixRef<Element> {
    public var base: UnsafeMutablePointer<Element>
    public var rows: Int
    public var cols: Int
    public var stride: Int

    public init(_ base: UnsafeMutablePointer<Element>, rows: Int, cols: Int, stride: Int? = nil) {
        self.base = base
        self.rows = rows
        self.cols = cols
        self.stride = stride ?? cols
    }
    @inline(__always) public func row(_ r: Int) -> UnsafeMutablePointer<Element> { base + r * stride }
}
