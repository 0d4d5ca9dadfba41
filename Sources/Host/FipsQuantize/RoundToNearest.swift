/// Round-to-nearest quantisation: each row (8 bits) or 32-input group
/// (4/3 bits) gets its scale from `ScaleSearch`, then every weight is
/// rounded on its own. Needs no calibration data.
enum RoundToNearest {
    static func quantize(_ w: UnsafePointer<Float>, rows: Int, cols: Int, levels: QuantLevels) -> QuantizedWeight {
        let g = levels.groupSize == 0 ? cols : levels.groupSize
        let groups = (cols + g - 1) / g
        var values = [Int8](repeating: 0, count: rows * cols)
        var scales = [Float](repeating: 0, count: rows * groups)
        for r in 0..<rows {
            let row = w + r * cols
            for j in 0..<groups {
                let lo = j * g, n = min(g, cols - lo)
                let s = ScaleSearch.scale(row + lo, count: n, levels: levels)
                scales[r * groups + j] = s
                for k in lo..<(lo + n) { values[r * cols + k] = Int8(levels.level(row[k], scale: s)) }
            }
        }
        return QuantizedWeight(bits: levels.bits, rows: rows, cols: cols, groupSize: levels.groupSize,
                               values: values, scales: scales)
    }
}
