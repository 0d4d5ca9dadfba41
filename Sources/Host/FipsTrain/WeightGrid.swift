import FipsArtifact
import FipsArtifactWriter
import FipsKernels

/// One packed linear weight of a quantisation-aware student, as the training
/// sees it: the float "shadow" weights live in their parameter slot, the
/// runtime's grid (format, range, one scale per output row or per row and 32
/// inputs) is kept here, and the scales are trained as multipliers m of the
/// GPTQ scales s₀ (s = s₀·m, one parameter slot of m, all 1 at the start), so
/// one learning rate suits every layer whatever its scale's magnitude.
///
/// Forward: ŵ = s·clamp(round(w/s), min, max) — the value the packed runtime
/// multiplies with. Backward (LSQ, Esser et al. 2020, without its gradient
/// scale, which Adam's normalisation makes moot): ∂ŵ/∂w = 1 inside the range
/// and 0 where clipped (straight-through); ∂ŵ/∂s = round(w/s) − w/s inside
/// and the clipped bound outside.
public struct WeightGrid {
    /// Where the runtime finds it ("blocks.3.mlp.fc1.Ut") and the model's name for it ("blocks.3.mlp.fc1.U").
    public var storedName: String
    public var floatName: String
    public var dtype: TensorDType
    /// Logical [rows = outputs, cols = inputs] as stored.
    public var rows: Int, cols: Int
    /// The model keeps this tensor transposed ([cols, rows]: a FiPS fc1's U and V).
    public var transposed: Bool
    /// The GPTQ scales the multipliers apply to: [rows] or [rows, groups].
    public var initialScales: [Float]
    /// The calibrated input scale the artifact carries (nil: per token at run time).
    public var actScale: Float?
    /// Offsets of the weight's slot and of its scale multipliers in the parameter vector.
    var weightOffset = 0, scaleOffset = 0
    /// The multipliers are trained (false for the frozen head).
    var trainsScales = true

    var format: QuantFormat { dtype.packedFormat! }
    var groupSize: Int { format.groupSize }
    var groups: Int { groupSize == 0 ? 1 : (cols + groupSize - 1) / groupSize }
    var scaleCount: Int { rows * groups }
    var count: Int { rows * cols }

    /// Index of the scale of element e of the model's tensor, and its (row, col) in stored orientation.
    @inline(__always)
    func scaleIndex(ofElement e: Int) -> Int {
        let (r, c) = transposed ? (e % rows, e / rows) : (e / cols, e % cols)
        return groupSize == 0 ? r : r * groups + c / groupSize
    }

    /// clamp(round-half-even(w / s)) as the packer rounds (QuantLevels.level's two-add trick).
    @inline(__always)
    static func level(_ w: Float, inverseScale inv: Float, min lo: Float, max hi: Float) -> Float {
        let v = Swift.min(hi, Swift.max(lo, w * inv))
        return (v + 12_582_912) - 12_582_912
    }

    /// The scales in use: s₀·m.
    func scales(_ p: UnsafePointer<Float>) -> [Float] {
        (0..<scaleCount).map { initialScales[$0] * p[scaleOffset + $0] }
    }

    /// eff[weight] = ŵ for this weight's entries.
    func fakeQuantise(_ p: UnsafePointer<Float>, into eff: UnsafeMutablePointer<Float>) {
        let s = scales(p), inv = s.map { 1 / $0 }
        let lo = Float(format.valueRange.lowerBound), hi = Float(format.valueRange.upperBound)
        let w = p + weightOffset, out = eff + weightOffset
        for e in 0..<count {
            let g = scaleIndex(ofElement: e)
            out[e] = s[g] * WeightGrid.level(w[e], inverseScale: inv[g], min: lo, max: hi)
        }
    }

    /// On entry grad[weight] holds ∂L/∂ŵ; on return ∂L/∂w (straight-through, zero where clipped)
    /// and grad[scales] ∂L/∂m (grad[scales] is overwritten; frozen multipliers get 0).
    func backward(_ p: UnsafePointer<Float>, grad: UnsafeMutablePointer<Float>) {
        let s = scales(p), inv = s.map { 1 / $0 }
        let lo = Float(format.valueRange.lowerBound), hi = Float(format.valueRange.upperBound)
        let w = p + weightOffset, g = grad + weightOffset
        var ds = [Double](repeating: 0, count: scaleCount)
        for e in 0..<count {
            let k = scaleIndex(ofElement: e)
            let v = w[e] * inv[k]  // as the forward rounds it
            let d = Double(g[e])
            if v < lo || v > hi {
                // clipped: ŵ = s·bound, no gradient to w
                ds[k] += d * Double(v < 0 ? lo : hi)
                g[e] = 0
            } else {
                ds[k] += d * Double((v + 12_582_912) - 12_582_912 - v)
            }
        }
        for k in 0..<scaleCount { grad[scaleOffset + k] = trainsScales ? Float(ds[k] * Double(initialScales[k])) : 0 }
    }

    /// The trained weight on its grid, packed as the artifact stores it; a
    /// q8-sparse weight is repacked sparse (its pruned zeros stay zero).
    func packed(_ p: UnsafePointer<Float>) -> QuantizedTensor {
        let s = scales(p), inv = s.map { 1 / $0 }
        let lo = Float(format.valueRange.lowerBound), hi = Float(format.valueRange.upperBound)
        let w = p + weightOffset
        var values = [Int8](repeating: 0, count: count)
        for e in 0..<count {
            let g = scaleIndex(ofElement: e)
            let (r, c) = transposed ? (e % rows, e / rows) : (e / cols, e % cols)
            values[r * cols + c] = Int8(WeightGrid.level(w[e], inverseScale: inv[g], min: lo, max: hi))
        }
        let logical = PackedWeights.Logical(bits: format.bits, rows: rows, cols: cols, values: values, scales: s)
        return QuantizedTensor(storedName: storedName, shape: [rows, cols], packed: PackedWeights.pack(logical, as: dtype),
                               actScale: actScale)
    }
}
