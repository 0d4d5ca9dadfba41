/// A head without training, for few-shot use (`fips head --prototypes`): the
/// nearest class mean. Euclidean nearest mean is exactly a linear layer,
///   argmin_c ‖x − μ_c‖² = argmax_c (2 μ_c·x − ‖μ_c‖²),
/// so it is stored as the same head.weight/head.bias a trained head uses and
/// runs on the board unchanged. The logits are scaled by τ = 1 / (mean squared
/// distance of the examples to their class mean), so that the softmax scores
/// are spread like distances within a class rather than saturated at 1.
public enum PrototypeHead {
    /// Class means of `features` [count, dim] (raw, as the executor feeds the head);
    /// every class in 0..<classes needs at least one example.
    public static func fit(features: [Float], count n: Int, dim d: Int, labels: [Int], classes C: Int) -> LogisticHead {
        precondition(features.count == n * d && labels.count == n && n > 0)
        var mean = [Double](repeating: 0, count: C * d), members = [Int](repeating: 0, count: C)
        for i in 0..<n {
            members[labels[i]] += 1
            for k in 0..<d { mean[labels[i] * d + k] += Double(features[i * d + k]) }
        }
        precondition(members.allSatisfy { $0 > 0 }, "a class without examples")
        for c in 0..<C { for k in 0..<d { mean[c * d + k] /= Double(members[c]) } }
        var spread = 0.0
        for i in 0..<n {
            for k in 0..<d { let e = Double(features[i * d + k]) - mean[labels[i] * d + k]; spread += e * e }
        }
        spread /= Double(n)
        let tau = spread > 1e-12 ? 1 / spread : 1   // one example per class: no spread to scale by
        var w = [Float](repeating: 0, count: C * d), b = [Float](repeating: 0, count: C)
        for c in 0..<C {
            var norm2 = 0.0
            for k in 0..<d {
                let m = mean[c * d + k]
                w[c * d + k] = Float(2 * tau * m)
                norm2 += m * m
            }
            b[c] = Float(-tau * norm2)
        }
        return LogisticHead(classes: C, dim: d, weight: w, bias: b)
    }
}
