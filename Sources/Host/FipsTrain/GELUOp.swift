import FipsHostModel

/// GELU, exact (erf, DINOv2) or tanh (ViT/DeiT exports), with its derivative
/// kept from the forward for the backward.
enum GELUOp {
    /// g = GELU(a); dgelu = GELU'(a).
    static func forward(_ a: UnsafePointer<Float>, count: Int, tanh: Bool, into g: UnsafeMutablePointer<Float>,
                        derivative: UnsafeMutablePointer<Float>?) {
        if !tanh {
            for i in 0..<count {
                let x = a[i]
                let (c, p) = GELU.cdfPdf(x)
                g[i] = x * c
                derivative?[i] = c + x * p
            }
            return
        }
        // 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³)
        let k: Float = 0.7978845608028654
        for i in 0..<count {
            let x = a[i]
            let u = k * (x + 0.044715 * x * x * x)
            let t = Float.tanh(u)
            g[i] = 0.5 * x * (1 + t)
            derivative?[i] = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x)
        }
    }
}

extension Float {
    @inline(__always) static func tanh(_ x: Float) -> Float {
        // tanh(x) = 1 − 2/(e^{2x} + 1), with e^{-2|x|} from GELU.expNeg (x ≤ 0 there)
        let e = GELU.expNeg(-2 * abs(x))
        let t = (1 - e) / (1 + e)
        return x < 0 ? -t : t
    }
}
