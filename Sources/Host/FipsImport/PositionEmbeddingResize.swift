import FipsHostModel

/// How a position-embedding grid is resampled to another grid.
public enum PositionEmbeddingResizeMode: Equatable, Sendable {
    /// Bicubic convolution (Keys kernel with coefficient `a`), half-pixel
    /// centres, edge samples clamped, no antialiasing, scale = to / from.
    /// This is ONNX `Resize(mode=cubic, coordinate_transformation_mode=half_pixel,
    /// exclude_outside=0)` given `sizes` as onnxruntime computes it, and
    /// PyTorch `interpolate(size=..., mode="bicubic", align_corners=False)`
    /// (a = -0.75), which HF DINOv2/ViT use.
    case bicubic(a: Float)
    /// The same with an explicit coordinate scale (output = floor(from * scale)):
    /// ONNX `Resize` given `scales`, or older DINOv2 code that interpolated
    /// with `scale_factor = (to + 0.1) / from`.
    case bicubicScale(a: Float, scale: Float)

    /// The mode of HF DINOv2, HF ViT/DeiT and this ONNX export.
    public static let pytorchBicubic = PositionEmbeddingResizeMode.bicubic(a: -0.75)
}

/// Resizes a position embedding `[prefix + from*from, d]` (the rows of the
/// `prefix` tokens: CLS, and distilled DeiT's distillation token; then the
/// grid row-major) to `[prefix + to*to, d]`. The prefix rows are copied.
/// Separable: rows first, then columns, as onnxruntime does; float32 math.
public func resizePositionEmbedding(_ pos: HostTensor, from: Int, to: Int,
                                    mode: PositionEmbeddingResizeMode = .pytorchBicubic, prefix: Int = 1) -> HostTensor {
    precondition(pos.shape.count == 2 && pos.shape[0] == prefix + from * from,
                 "position embedding \(pos.shape) is not [\(prefix) + \(from)^2, d]")
    let d = pos.shape[1]
    if from == to { return pos }
    let a: Float, scale: Float
    switch mode {
    case .bicubic(let ca): a = ca; scale = Float(to) / Float(from)
    case .bicubicScale(let ca, let s): a = ca; scale = s
    }
    // Per output index: 4 source indices (clamped) and 4 weights.
    let (idx, w) = cubicTaps(from: from, to: to, scale: scale, a: a)
    var out = [Float](repeating: 0, count: (prefix + to * to) * d)
    var tmp = [Float](repeating: 0, count: to * from * d)   // [to rows][from cols][d]
    pos.data.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            tmp.withUnsafeMutableBufferPointer { t in
                for c in 0..<(prefix * d) { dst[c] = src[c] }
                let grid = src.baseAddress! + prefix * d
                // Vertical pass: tmp[oy][x] = sum_k w[oy][k] * grid[iy_k][x]
                for oy in 0..<to {
                    for x in 0..<from {
                        let o = t.baseAddress! + (oy * from + x) * d
                        for k in 0..<4 {
                            let wk = w[oy * 4 + k]
                            let s = grid + (idx[oy * 4 + k] * from + x) * d
                            for c in 0..<d { o[c] += wk * s[c] }
                        }
                    }
                }
                // Horizontal pass.
                for oy in 0..<to {
                    for ox in 0..<to {
                        let o = dst.baseAddress! + (prefix + oy * to + ox) * d
                        for k in 0..<4 {
                            let wk = w[ox * 4 + k]
                            let s = t.baseAddress! + (oy * from + idx[ox * 4 + k]) * d
                            for c in 0..<d { o[c] += wk * s[c] }
                        }
                    }
                }
            }
        }
    }
    return HostTensor(shape: [prefix + to * to, d], data: out)
}

/// Source indices and weights of the cubic kernel for each output index.
func cubicTaps(from: Int, to: Int, scale: Float, a: Float) -> ([Int], [Float]) {
    var idx = [Int](repeating: 0, count: 4 * to)
    var w = [Float](repeating: 0, count: 4 * to)
    for o in 0..<to {
        let x = (Float(o) + 0.5) / scale - 0.5
        let xi = x.rounded(.down)
        let s = x - xi
        let c0 = ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a
        let c1 = ((a + 2) * s - (a + 3)) * s * s + 1
        let c2 = ((a + 2) * (1 - s) - (a + 3)) * (1 - s) * (1 - s) + 1
        let c3 = ((a * (2 - s) - 5 * a) * (2 - s) + 8 * a) * (2 - s) - 4 * a
        let cs = [c0, c1, c2, c3]
        for k in 0..<4 {
            idx[4 * o + k] = min(max(Int(xi) - 1 + k, 0), from - 1)
            w[4 * o + k] = cs[k]
        }
    }
    return (idx, w)
}
