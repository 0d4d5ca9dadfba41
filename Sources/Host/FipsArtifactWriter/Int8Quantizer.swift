import FipsHostModel

/// Symmetric per-output-row int8 quantisation: q = round(w / s), s = max|w_row| / 127.
/// Round-to-nearest; data-aware rounding belongs to the runtime issue.
public enum Int8Quantizer {
    public struct Rows {
        public var values: [Int8]
        public var scales: [Float]
    }

    public static func quantizeRows(_ t: HostTensor) -> Rows {
        let rows = t.shape[0], cols = t.count / rows
        var q = [Int8](repeating: 0, count: t.count)
        var scales = [Float](repeating: 1, count: rows)
        for r in 0..<rows {
            var amax: Float = 0
            for c in 0..<cols { amax = max(amax, abs(t.data[r * cols + c])) }
            let s: Float = amax > 0 ? amax / 127 : 1
            scales[r] = s
            for c in 0..<cols {
                q[r * cols + c] = Int8(max(-127, min(127, (t.data[r * cols + c] / s).rounded(.toNearestOrEven))))
            }
        }
        return Rows(values: q, scales: scales)
    }
}
