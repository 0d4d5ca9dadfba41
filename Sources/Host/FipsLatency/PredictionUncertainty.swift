import FipsArtifact

/// How far a latency prediction may be off, derived from how well the latency
/// model reproduces the measurements it has (not a guess):
///
/// - from a profile: every GEMM timing of the formats and thread count the
///   model uses is predicted from the profile with that timing left out
///   (leave-one-out), and the 90th percentile of |predicted / measured − 1|
///   is the uncertainty. It measures the interpolation between shapes, which
///   is what a model's linear layers rely on when their exact shape was not
///   measured; the measured noise of each timing and the block's non-GEMM
///   work are not in it.
/// - from a board's roofline: the same model priced by the roofline of each
///   board that also has a measured profile, against that profile's
///   prediction; the largest |roofline / profile − 1| is the uncertainty.
///   Without such a pair there is nothing to derive it from, and it is nil.
public struct PredictionUncertainty: Equatable {
    /// Relative half-width: the prediction is ± this fraction of itself.
    public var fraction: Double
    /// How it was derived, in words (printed beside it).
    public var basis: String
}

extension LatencyModel {
    /// - measuredPairs: for a roofline, (board, its measured profile) pairs to
    ///   check the roofline against; ignored for a profile.
    public func uncertainty(_ m: ModelExecution, threads: Int,
                            measuredPairs: [(board: BoardDescription, profile: DeviceProfile)] = []) -> PredictionUncertainty? {
        switch source {
        case .profile(let p):
            if p.functionalOnly { return nil }
            let formats = Set(m.blocks.flatMap { LatencyModel.linears($0, config: m.config) }.map { profileFormat($0.dtype) })
            let errors = ProfileTable(p).leaveOneOutErrors(formats: formats, threads: max(1, threads))
            guard !errors.isEmpty else { return nil }
            let p90 = errors.sorted()[min(errors.count - 1, Int((0.9 * Double(errors.count)).rounded(.up)) - 1)]
            return PredictionUncertainty(
                fraction: p90,
                basis: "90th percentile of the leave-one-out error over \(errors.count) measured GEMM timings of " +
                       formats.sorted().joined(separator: "/"))
        case .board:
            var worst: (ratio: Double, name: String)? = nil
            for pair in measuredPairs where !pair.profile.functionalOnly {
                let roof = LatencyModel(board: pair.board).predict(m, threads: threads).totalMs
                let measured = LatencyModel(profile: pair.profile).predict(m, threads: threads).totalMs
                guard measured > 0 else { continue }
                let r = roof / measured
                if worst == nil || abs(r - 1) > abs(worst!.ratio - 1) { worst = (r, pair.board.name) }
            }
            guard let w = worst else { return nil }
            return PredictionUncertainty(
                fraction: abs(w.ratio - 1),
                basis: "the roofline against the measured profile of \(w.name) on this model: ratio " + String(format: "%.2f", w.ratio))
        }
    }
}

extension ProfileTable {
    /// |predicted / measured − 1| of each GEMM timing of `formats` at the
    /// thread count `linearMs` would use, predicted from the other timings of
    /// its format, thread count and sparsity.
    func leaveOneOutErrors(formats: Set<String>, threads: Int) -> [Double] {
        var errors = [Double]()
        for fmt in formats.sorted() {
            let rows = p.gemm.filter { $0.format == fmt }
            guard !rows.isEmpty else { continue }
            let t = measuredThreads(threads, among: rows.map { $0.threads })
            let byT = rows.filter { $0.threads == t }
            for (i, g) in byT.enumerated() where g.ms > 0 {
                let others = byT.enumerated().filter { $0.offset != i && $0.element.sparsity == g.sparsity }.map { $0.element }
                guard !others.isEmpty else { continue }
                let l = LatencyModel.Linear(dtype: .q8, sparsity: g.sparsity, m: g.m, n: g.n, k: g.k)
                errors.append(abs(shapeMs(others, l) / g.ms - 1))
            }
        }
        return errors
    }
}
