import FipsArtifact

/// Predicts the integer runtime's forward time for one image (batch 1) from
/// a device profile's measured timings, or, without one, from a board's
/// roofline figures. A block costs its four (dense MLP) or six (FiPS MLP)
/// linear layers plus everything else in it (LayerNorms, attention products,
/// softmax, GELU, residuals); the rest of the forward pass is `fixedMs`.
public struct LatencyModel {
    public enum Source {
        case profile(DeviceProfile)
        case board(BoardDescription)
    }
    public let source: Source

    public init(profile: DeviceProfile) { source = .profile(profile) }
    public init(board: BoardDescription) { source = .board(board) }

    public var sourceName: String {
        switch source {
        case .profile(let p): return "profile \(p.name)"
        case .board(let b): return "roofline \(b.name)"
        }
    }

    /// The linear layers of one block as the executor runs them:
    /// (format, sparsity, rows M, outputs N, inputs K).
    public static func linears(_ b: BlockExecution, config c: ViTConfig) -> [Linear] {
        let T = c.tokenCount, d = c.dim, m = c.mlpDim
        var l = [Linear(dtype: b.attention, sparsity: 0, m: T, n: 3 * d, k: d),
                 Linear(dtype: b.attention, sparsity: 0, m: T, n: d, k: d)]
        switch b.mlp {
        case .dense(let f):
            l += [Linear(dtype: f, sparsity: 0, m: T, n: m, k: d), Linear(dtype: f, sparsity: 0, m: T, n: d, k: m)]
        case .fips(let r, let u, let v, let s):
            l += [Linear(dtype: u, sparsity: 0, m: T, n: r, k: d),   // fc1.Ut
                  Linear(dtype: v, sparsity: s, m: T, n: m, k: r),   // fc1.Vt
                  Linear(dtype: v, sparsity: s, m: T, n: r, k: m),   // fc2.V
                  Linear(dtype: u, sparsity: 0, m: T, n: d, k: r)]   // fc2.U
        }
        return l
    }

    public struct Linear: Equatable {
        public var dtype: TensorDType
        public var sparsity: Double
        public var m, n, k: Int
        public init(dtype: TensorDType, sparsity: Double, m: Int, n: Int, k: Int) {
            self.dtype = dtype; self.sparsity = sparsity; self.m = m; self.n = n; self.k = k
        }
    }

    public func predict(_ m: ModelExecution, threads: Int) -> LatencyPrediction {
        let c = m.config, t = max(1, threads)
        let int8Attention = m.hasPackedWeights
        let other = blockOtherMs(c, int8Attention: int8Attention, integerNonlinear: m.integerNonlinear, threads: t)
        var blockMs = [Double]()
        for b in m.blocks {
            var ms = other
            for l in LatencyModel.linears(b, config: c) { ms += linearMs(l, threads: t) }
            blockMs.append(ms)
        }
        var fixed = fixedMs(c, int8Attention: int8Attention, threads: t)
        if c.hasHead { fixed += linearMs(Linear(dtype: .f32, sparsity: 0, m: 1, n: c.numClasses, k: c.headInputDim), threads: t) }
        return LatencyPrediction(fixedMs: fixed, blockMs: blockMs, source: sourceName)
    }

    // MARK: - one linear layer

    /// Milliseconds of one linear layer y[M,N] = x[M,K]·Wᵀ (activation
    /// quantisation included for the packed formats).
    public func linearMs(_ l: Linear, threads: Int) -> Double {
        switch source {
        case .profile(let p): return ProfileTable(p).linearMs(l, threads: threads)
        case .board(let b): return Roofline(b).linearMs(l, threads: threads)
        }
    }

    func blockOtherMs(_ c: ViTConfig, int8Attention: Bool, integerNonlinear: Bool, threads: Int) -> Double {
        switch source {
        case .profile(let p):
            return ProfileTable(p).vitMs(c, int8Attention: int8Attention, integerNonlinear: integerNonlinear, threads: threads).other
        case .board(let b): return Roofline(b).blockOtherMs(c, int8Attention: int8Attention, threads: threads)
        }
    }

    func fixedMs(_ c: ViTConfig, int8Attention: Bool, threads: Int) -> Double {
        switch source {
        case .profile(let p):
            return ProfileTable(p).vitMs(c, int8Attention: int8Attention, integerNonlinear: false, threads: threads).fixed
        case .board(let b): return Roofline(b).fixedMs(c, threads: threads)
        }
    }
}

/// The profile format name of a tensor dtype (f32-csr and legacy i8 are
/// priced as their nearest measured format).
func profileFormat(_ d: TensorDType) -> String {
    switch d {
    case .q8: return "q8"
    case .q8sparse: return "q8-sparse"
    case .q4g32: return "q4g32"
    case .q3g32: return "q3g32"
    case .q2g32: return "q2g32"
    case .i8RowScaled: return "q8"
    case .f32, .f32CSR: return "f32"
    }
}

// MARK: - roofline

/// Time = max(compute at the board's MACs/cycle, weight bytes at its memory
/// bandwidth), with an efficiency factor for what the kernels reach in
/// practice. Used only when there is no measured profile.
struct Roofline {
    let b: BoardDescription
    init(_ b: BoardDescription) { self.b = b }

    /// Fraction of the peak MAC rate the kernels reach (int8 tiles with
    /// activation quantisation, unpacking of 4/3-bit and sparse tiles).
    static let int8Efficiency = 0.45
    static let fp32Efficiency = 0.5

    /// MACs per second of the first `threads` cores, big cluster first.
    func peakMacsPerSecond(int8: Bool, threads: Int) -> Double {
        var left = max(1, min(threads, b.cores)), total = 0.0
        for c in b.clusters where left > 0 {
            let n = min(left, c.cores)
            total += Double(n) * c.freqMHz * 1e6 * (int8 ? c.int8MacsPerCyclePerCore : c.fp32MacsPerCyclePerCore)
            left -= n
        }
        return total
    }

    func linearMs(_ l: LatencyModel.Linear, threads: Int) -> Double {
        let np = Double((l.n + 15) / 16 * 16), kp = Double((l.k + 31) / 32 * 32), m = Double(l.m)
        let int8 = l.dtype != .f32 && l.dtype != .f32CSR
        var macs = m * np * kp
        if l.dtype == .f32CSR { macs *= max(0.05, 1 - l.sparsity) * 2 }   // CSR: gathers, no vector FMA
        let compute = macs / (peakMacsPerSecond(int8: int8, threads: threads) * (int8 ? Roofline.int8Efficiency : Roofline.fp32Efficiency))
        let bits: Double
        switch l.dtype {
        case .q8, .i8RowScaled: bits = 8
        case .q8sparse: bits = 8 * (1 - l.sparsity) + 1
        case .q4g32: bits = 4 + 1
        case .q3g32: bits = 3 + 1
        case .q2g32: bits = 2 + 1
        case .f32: bits = 32
        case .f32CSR: bits = 48 * (1 - l.sparsity)
        }
        let memory = np * kp * bits / 8 / (b.memoryBandwidthGBs * 1e9)
        // Unpacking 4/3/2-bit and sparse tiles to int8, once per panel and thread.
        let unpack = (l.dtype == .q4g32 || l.dtype == .q3g32 || l.dtype == .q2g32 || l.dtype == .q8sparse)
            ? np * kp * 1.0 / (elementRate(threads: threads)) : 0
        // Activation quantisation: M·K elements.
        let quant = int8 ? m * kp / elementRate(threads: threads) : 0
        return (max(compute, memory) + unpack + quant) * 1e3
    }

    /// Float elements per second through simple vector loops (LayerNorm,
    /// GELU, softmax, quantisation): about a quarter of the fp32 FMA rate.
    func elementRate(threads: Int) -> Double { peakMacsPerSecond(int8: false, threads: threads) / 4 }

    func blockOtherMs(_ c: ViTConfig, int8Attention: Bool, threads: Int) -> Double {
        let T = Double(c.tokenCount), d = Double(c.dim), m = Double(c.mlpDim), h = Double(c.heads)
        // LN×2, residual×2, GELU (≈10 element-ops each with erf), softmax (≈4).
        let elements = T * d * 2 * 3 + T * d * 2 * 2 + T * m * 10 + h * T * T * 4
        var ms = elements / elementRate(threads: threads) * 1e3
        // Q·Kᵀ and P·V: 2·T²·d MACs, plus packing K and Vᵀ per head.
        let macs = 2 * T * T * d
        if int8Attention {
            ms += macs / (peakMacsPerSecond(int8: true, threads: threads) * Roofline.int8Efficiency) * 1e3
            ms += (T * d * 4 + h * T * T) / elementRate(threads: threads) * 1e3
        } else {
            ms += macs / (peakMacsPerSecond(int8: false, threads: threads) * Roofline.fp32Efficiency) * 1e3
        }
        return ms
    }

    func fixedMs(_ c: ViTConfig, threads: Int) -> Double {
        let P = Double(c.patchCount), d = Double(c.dim), pl = Double(c.channels * c.patchSize * c.patchSize)
        let gemm = P * d * pl / (peakMacsPerSecond(int8: false, threads: threads) * Roofline.fp32Efficiency)
        let elements = P * pl + Double(c.tokenCount) * d * 4
        return (gemm + elements / elementRate(threads: threads)) * 1e3
    }
}

// MARK: - profile

/// Looks measured timings up and interpolates between them.
struct ProfileTable {
    let p: DeviceProfile
    init(_ p: DeviceProfile) { self.p = p }

    /// The measured thread count to use for `t`: itself if measured, else the
    /// largest measured below it (more threads than measured cannot be
    /// priced better), else the smallest.
    func measuredThreads(_ t: Int, among counts: [Int]) -> Int {
        let s = Set(counts).sorted()
        if s.contains(t) { return t }
        return s.last(where: { $0 < t }) ?? s.first ?? 1
    }

    func linearMs(_ l: LatencyModel.Linear, threads: Int) -> Double {
        let fmt = profileFormat(l.dtype)
        let rows = p.gemm.filter { $0.format == fmt }
        guard !rows.isEmpty else {
            // Format not measured (a profile older than q2g32): q2g32 unpacks
            // like q3g32 with fewer bytes, so it is priced as q3g32 when that
            // was measured; anything else as q8.
            var stand = LatencyModel.Linear(dtype: .q8, sparsity: 0, m: l.m, n: l.n, k: l.k)
            if l.dtype == .q2g32 && p.gemm.contains(where: { $0.format == "q3g32" }) { stand.dtype = .q3g32 }
            return linearMs(stand, threads: threads)
        }
        let t = measuredThreads(threads, among: rows.map { $0.threads })
        var ms: Double
        let byT = rows.filter { $0.threads == t }
        if fmt == "q8-sparse" {
            // Interpolate in sparsity between the measured levels.
            let levels = Set(byT.map { $0.sparsity }).sorted()
            let s = l.sparsity
            let lo = levels.last(where: { $0 <= s }) ?? levels.first!
            let hi = levels.first(where: { $0 >= s }) ?? levels.last!
            let a = shapeMs(byT.filter { $0.sparsity == lo }, l)
            let b = shapeMs(byT.filter { $0.sparsity == hi }, l)
            if hi == lo { ms = a } else { ms = a + (b - a) * (s - lo) / (hi - lo) }
            // Beyond the measured range: the stored bytes shrink with 1 − s.
            if s > levels.last! { ms = b * (0.3 + 0.7 * (1 - s) / (1 - levels.last!)) }
        } else {
            ms = shapeMs(byT, l)
        }
        if l.dtype == .f32CSR { ms *= max(0.1, 1 - l.sparsity) * 2 }
        if threads > t { ms *= Double(t) / Double(min(threads, max(t, p.system.usableCpus))) }
        return ms
    }

    /// Interpolates one format's timings (one thread count, one sparsity)
    /// at shape (M, N, K).
    func shapeMs(_ rows: [DeviceProfile.GemmTiming], _ l: LatencyModel.Linear) -> Double {
        if rows.isEmpty { return 0 }
        func pad16(_ x: Int) -> Double { Double((x + 15) / 16 * 16) }
        func pad32(_ x: Int) -> Double { Double((x + 31) / 32 * 32) }
        // Nearest measured M (prefer one measured at this N and K).
        let ms = Set(rows.map { $0.m }).sorted { abs($0 - l.m) < abs($1 - l.m) }
        var mRef = ms[0]
        if let exact = rows.first(where: { $0.n == l.n && $0.k == l.k && $0.m == l.m }) { return exact.ms }
        if let sameNK = rows.filter({ $0.n == l.n && $0.k == l.k }).min(by: { abs($0.m - l.m) < abs($1.m - l.m) }) {
            return sameNK.ms * Double(l.m) / Double(sameNK.m)
        }
        let atM = rows.filter { $0.m == mRef }
        let scaleM = Double(l.m) / Double(mRef)
        // Same K: interpolate in padded N; same N: in padded K.
        let sameK = atM.filter { $0.k == l.k }
        if sameK.count >= 2 { return interpolate(sameK.map { (pad16($0.n), $0.ms) }, at: pad16(l.n)) * scaleM }
        let sameN = atM.filter { $0.n == l.n }
        if sameN.count >= 2 { return interpolate(sameN.map { (pad32($0.k), $0.ms) }, at: pad32(l.k)) * scaleM }
        // Otherwise: the nearest shape (in log N and log K), scaled by the MAC count.
        func dist(_ g: DeviceProfile.GemmTiming) -> Double {
            let a = log2(pad16(g.n) / pad16(l.n)), b = log2(pad32(g.k) / pad32(l.k))
            return a * a + b * b
        }
        mRef = atM.isEmpty ? mRef : mRef
        let near = (atM.isEmpty ? rows : atM).min { dist($0) < dist($1) }!
        return near.ms * Double(l.m) / Double(near.m) * (pad16(l.n) * pad32(l.k)) / (pad16(near.n) * pad32(near.k))
    }

    /// Piecewise-linear through (x, y); beyond the ends, proportional to x
    /// from the nearest end point's slope through the last two points.
    func interpolate(_ pts: [(Double, Double)], at x: Double) -> Double {
        var s = pts.sorted { $0.0 < $1.0 }
        // Duplicated x (equal padded sizes): keep the mean.
        var merged = [(Double, Double)]()
        for q in s {
            if let last = merged.last, last.0 == q.0 { merged[merged.count - 1].1 = (last.1 + q.1) / 2 } else { merged.append(q) }
        }
        s = merged
        if s.count == 1 { return s[0].1 * x / s[0].0 }
        var i = 0
        if x <= s[0].0 { i = 0 } else if x >= s[s.count - 1].0 { i = s.count - 2 } else {
            while !(x >= s[i].0 && x <= s[i + 1].0) { i += 1 }
        }
        let (x0, y0) = s[i], (x1, y1) = s[i + 1]
        let y = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        // Never extrapolate below zero or faster than proportional shrinkage.
        if x < x0 { return max(y, y0 * x / x0) }
        return max(y, 0)
    }

    /// (block-other, fixed) for a ViT shape: the measured shape itself, or
    /// the nearest one scaled by the work of each part.
    func vitMs(_ c: ViTConfig, int8Attention: Bool, integerNonlinear: Bool, threads: Int) -> (other: Double, fixed: Double) {
        let attn = int8Attention ? "int8" : "f32"
        var rows = p.vit.filter { $0.attention == attn && $0.integerNonlinear == integerNonlinear }
        if rows.isEmpty { rows = p.vit.filter { $0.attention == attn } }
        if rows.isEmpty { rows = p.vit }
        guard !rows.isEmpty else { return (0, 0) }
        let t = measuredThreads(threads, among: rows.map { $0.threads })
        let byT = rows.filter { $0.threads == t }
        func otherWork(_ T: Int, _ d: Int, _ m: Int, _ h: Int) -> Double {
            let T = Double(T), d = Double(d), m = Double(m)
            return T * d * 10 + T * m * 6 + T * T * d * 0.5 + Double(h) * T * T * 4
        }
        func fixedWork(_ T: Int, _ d: Int, _ patch: Int) -> Double {
            Double(T) * Double(d) * (Double(3 * patch * patch) / 4 + 8)
        }
        let ref = byT.min { a, b in
            func dd(_ v: DeviceProfile.ViTTiming) -> Double {
                abs(log(Double(v.tokens) / Double(c.tokenCount))) + abs(log(Double(v.dim) / Double(c.dim)))
                    + abs(log(Double(v.mlpDim) / Double(c.mlpDim))) + abs(log(Double(v.heads) / Double(c.heads)))
                    + abs(log(Double(v.patchSize) / Double(c.patchSize)))
            }
            return dd(a) < dd(b)
        }!
        var other = ref.blockOtherMs * otherWork(c.tokenCount, c.dim, c.mlpDim, c.heads) / otherWork(ref.tokens, ref.dim, ref.mlpDim, ref.heads)
        var fixed = ref.fixedMs * fixedWork(c.tokenCount, c.dim, c.patchSize) / fixedWork(ref.tokens, ref.dim, ref.patchSize)
        if threads > t {
            let f = Double(t) / Double(min(threads, max(t, p.system.usableCpus)))
            other *= f; fixed *= f
        }
        return (other, fixed)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
