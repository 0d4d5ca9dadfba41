import Foundation
import FipsArtifact
import FipsBLASBackend
import FipsHostModel
import FipsViT

/// What `fips eval` measures on one image set.
public struct EvaluationReport {
    public var images: Int
    /// Top-1 / top-5 of the model's own head (labelled set and a model with a head).
    public var top1: Double?
    public var top5: Double?
    /// Mean over images of the cosine between the model's and the reference's CLS output.
    public var meanClsCosine: Double?
    /// Mean over images and patch tokens of the per-token cosine.
    public var meanPatchCosine: Double?
    /// Top-1 of each extra head scored on the same CLS features, in order.
    public var extraTop1: [Double] = []
    /// Smallest per-image CLS cosine (the worst case hides in the mean).
    public var minClsCosine: Double?
    /// Wall time of the whole run, and per image.
    public var seconds: Double
    public var secondsPerImage: Double { images > 0 ? seconds / Double(images) : 0 }

    /// One JSON object on one line; absent figures are null.
    public func json(extra: [(String, String)] = []) -> String {
        func num(_ v: Double?) -> String { v.map { String(format: "%.6f", $0) } ?? "null" }
        var parts = ["\"images\": \(images)", "\"top1\": \(num(top1))", "\"top5\": \(num(top5))",
                     "\"mean_cls_cosine\": \(num(meanClsCosine))", "\"min_cls_cosine\": \(num(minClsCosine))",
                     "\"mean_patch_cosine\": \(num(meanPatchCosine))",
                     "\"seconds\": \(String(format: "%.3f", seconds))",
                     "\"ms_per_image\": \(String(format: "%.2f", 1000 * secondsPerImage))"]
        if !extraTop1.isEmpty { parts.append("\"extra_top1\": [" + extraTop1.map { num($0) }.joined(separator: ", ") + "]") }
        parts += extra.map { "\"\($0.0)\": \($0.1)" }
        return "{" + parts.joined(separator: ", ") + "}"
    }
}

public enum Evaluation {
    /// Runs `model` (and `reference`, in lockstep on the same batches, so no
    /// token features have to be kept) over `images`. Top-1/top-5 need labels
    /// and a head in `model`; the cosines need a reference of the same width
    /// and token count.
    ///
    /// Instead of a reference model, `referenceOutputs` (computed once with
    /// `referenceOutputs(_:images:)`, possibly on a subset of patch tokens)
    /// can be given: a benchmark evaluating many compressed models then runs
    /// the original only once.
    public static func run(model: ViTModel, images: any ImageSet, reference: ViTModel? = nil,
                           referenceOutputs cached: ReferenceOutputs? = nil,
                           batch: Int = 8, threads: Int = 2, extraHeads: [ViTModel] = [],
                           runtimeArtifact: Artifact? = nil,
                           runtimeOptions: ExecutorOptions = ExecutorOptions()) throws -> EvaluationReport {
        let c = model.config, d = c.dim, T = c.tokenCount
        precondition(reference == nil || cached == nil, "give a reference model or cached reference outputs, not both")
        try checkReference(c, images: images.count, reference: reference?.config, cached: cached)
        let n = images.count
        guard n > 0 else { throw DataError("no images to evaluate") }
        let B = max(1, min(batch, n))
        let ex = try ViTExecutor.forDataPass(model, runtimeArtifact: runtimeArtifact, options: runtimeOptions,
                                             maxBatch: B, threads: threads)
        let refEx = try reference.map { try ViTExecutor<BLASBackend>.host($0, maxBatch: B, threads: threads) }
        let per = c.channels * c.imageSize * c.imageSize
        var input = [Float](repeating: 0, count: B * per)
        var tok = [Float](repeating: 0, count: B * T * d), refTok = tok
        let C = c.numClasses
        var logits = [Float](repeating: 0, count: n * max(1, C))
        var lb = [Float](repeating: 0, count: B * max(1, C))
        var clsSum = 0.0, clsMin = 1.0, patchSum = 0.0
        // CLS features of every image, kept only to score extra heads on the
        // same forward passes (e.g. the original head and a refitted one).
        for h in extraHeads where h.config.headPooling != .cls || h.tensors[TensorNames.headWeight]?.shape != [h.config.numClasses, d] {
            throw DataError("an extra head must be a CLS-pooled head over width \(d)")
        }
        var clsAll = [Float](repeating: 0, count: extraHeads.isEmpty ? 0 : n * d)
        let progress = ProgressLine("evaluating", total: n)
        let t0 = Date()
        var start = 0
        while start < n {
            let m = min(B, n - start)
            try input.withUnsafeMutableBufferPointer { try BatchInput.fill(images, start: start, count: m, config: c, into: $0.baseAddress!) }
            input.withUnsafeBufferPointer { inp in
                tok.withUnsafeMutableBufferPointer { t in
                    lb.withUnsafeMutableBufferPointer { l in
                        ex.forward(batch: m, images: inp.baseAddress!, features: t.baseAddress!, logits: C > 0 ? l.baseAddress! : nil)
                    }
                }
                if let r = refEx {
                    refTok.withUnsafeMutableBufferPointer { r.forward(batch: m, images: inp.baseAddress!, features: $0.baseAddress!) }
                }
            }
            if C > 0 { for i in 0..<(m * C) { logits[start * C + i] = lb[i] } }
            if !extraHeads.isEmpty {
                for i in 0..<m { for k in 0..<d { clsAll[(start + i) * d + k] = tok[i * T * d + k] } }
            }
            if let r = cached {
                addCosines(tok, against: r, start: start, count: m, tokens: T, dim: d,
                           clsSum: &clsSum, clsMin: &clsMin, patchSum: &patchSum)
            }
            if refEx != nil {
                addCosines(tok, against: refTok, count: m, tokens: T, dim: d, clsSum: &clsSum, clsMin: &clsMin, patchSum: &patchSum)
            }
            start += m
            progress.update(start)
        }
        progress.finish()
        var rep = EvaluationReport(images: n, seconds: Date().timeIntervalSince(t0))
        if let labels = images.labels, C > 0 {
            if let bad = labels.first(where: { $0 >= C }) {
                throw DataError("label \(bad) outside the model's \(C) classes")
            }
            rep.top1 = Metrics.topK(logits, classes: C, labels: labels, k: 1)
            rep.top5 = Metrics.topK(logits, classes: C, labels: labels, k: min(5, C))
        }
        if let labels = images.labels {
            rep.extraTop1 = extraHeadsTop1(extraHeads, cls: clsAll, labels: labels, images: n, dim: d)
        }
        if refEx != nil || cached != nil {
            rep.meanClsCosine = clsSum / Double(n)
            rep.minClsCosine = clsMin
            rep.meanPatchCosine = patchSum / Double(n)
        }
        return rep
    }

    /// Cached reference outputs or a reference model must match the model's
    /// width, tokens (and, for a model, image size and normalisation).
    static func checkReference(_ c: ViTConfig, images: Int, reference: ViTConfig?, cached: ReferenceOutputs?) throws {
        let d = c.dim, T = c.tokenCount
        if let r = cached {
            guard r.count == images, r.dim == d, r.tokenCount == T else {
                throw DataError("cached reference outputs (\(r.count) images, width \(r.dim), \(r.tokenCount) tokens) do not match this run (\(images) images, width \(d), \(T) tokens)")
            }
        }
        if let r = reference {
            guard r.dim == d, r.tokenCount == T, r.imageSize == c.imageSize else {
                throw DataError("reference model (width \(r.dim), \(r.tokenCount) tokens, \(r.imageSize) px) does not match the model (width \(d), \(T) tokens, \(c.imageSize) px)")
            }
            guard r.mean == c.mean, r.std == c.std else {
                throw DataError("reference model normalises inputs differently (mean/std) from the model")
            }
        }
    }

    /// Adds the batch's CLS cosines and mean patch cosines against cached
    /// reference outputs (images start..<start+m, their sampled patch tokens).
    static func addCosines(_ tok: [Float], against r: ReferenceOutputs, start: Int, count m: Int, tokens T: Int, dim d: Int,
                           clsSum: inout Double, clsMin: inout Double, patchSum: inout Double) {
        tok.withUnsafeBufferPointer { a in
            r.cls.withUnsafeBufferPointer { rc in
                r.patches.withUnsafeBufferPointer { rp in
                    let k = r.patchesPerImage
                    for i in 0..<m {
                        let g = start + i
                        let cc = Similarity.cosine(UnsafeBufferPointer(rebasing: a[(i * T * d)..<((i * T + 1) * d)]),
                                                   UnsafeBufferPointer(rebasing: rc[(g * d)..<((g + 1) * d)]))
                        clsSum += cc
                        clsMin = min(clsMin, cc)
                        var ps = 0.0
                        for (j, t) in r.patchIndices(image: g).enumerated() {
                            ps += Similarity.cosine(UnsafeBufferPointer(rebasing: a[((i * T + t) * d)..<((i * T + t + 1) * d)]),
                                                    UnsafeBufferPointer(rebasing: rp[((g * k + j) * d)..<((g * k + j + 1) * d)]))
                        }
                        patchSum += ps / Double(k)
                    }
                }
            }
        }
    }

    /// The same against a reference model's token features of the same batch (every patch token).
    static func addCosines(_ tok: [Float], against refTok: [Float], count m: Int, tokens T: Int, dim d: Int,
                           clsSum: inout Double, clsMin: inout Double, patchSum: inout Double) {
        tok.withUnsafeBufferPointer { a in
            refTok.withUnsafeBufferPointer { b in
                for i in 0..<m {
                    func row(_ p: UnsafeBufferPointer<Float>, _ t: Int) -> UnsafeBufferPointer<Float> {
                        UnsafeBufferPointer(rebasing: p[((i * T + t) * d)..<((i * T + t + 1) * d)])
                    }
                    let cc = Similarity.cosine(row(a, 0), row(b, 0))
                    clsSum += cc
                    clsMin = min(clsMin, cc)
                    var ps = 0.0
                    for t in 1..<T { ps += Similarity.cosine(row(a, t), row(b, t)) }
                    patchSum += ps / Double(T - 1)
                }
            }
        }
    }

    /// Top-1 of each extra (CLS-pooled) head on the images' CLS features [n, d].
    static func extraHeadsTop1(_ heads: [ViTModel], cls clsAll: [Float], labels: [Int], images n: Int, dim d: Int) -> [Double] {
        var out = [Double]()
        for h in heads {
            let hc = h.config.numClasses
            let w = h.tensors[TensorNames.headWeight]!.data, b = h.tensors[TensorNames.headBias]!.data
            var l = [Float](repeating: 0, count: n * hc)
            for i in 0..<n { for j in 0..<hc {
                var acc = b[j]
                for k in 0..<d { acc += clsAll[i * d + k] * w[j * d + k] }
                l[i * hc + j] = acc
            } }
            out.append(Metrics.topK(l, classes: hc, labels: labels, k: 1))
        }
        return out
    }
}

/// The reference model's outputs on an image set, kept for comparing many
/// models against it: the CLS token of every image and `patchesPerImage`
/// patch tokens per image (all of them, or a seeded subset chosen as the
/// calibration recorder chooses tokens; a mean over thousands of sampled
/// tokens estimates the all-token mean closely at a fraction of the memory:
/// 2,000 images · 256 tokens · 384 floats would be 790 MB).
public struct ReferenceOutputs {
    public var count: Int
    public var dim: Int
    public var tokenCount: Int
    public var patchesPerImage: Int
    public var seed: UInt64
    /// [count, dim]
    public var cls: [Float]
    /// [count, patchesPerImage, dim], in the order of `patchIndices(image:)`.
    public var patches: [Float]

    /// Token indices (1..<tokenCount) of the stored patch tokens of an image.
    public func patchIndices(image: Int) -> [Int] {
        if patchesPerImage >= tokenCount - 1 { return Array(1..<tokenCount) }
        return Array(CalibrationRecorder.tokens(image: image, tokenCount: tokenCount, keep: patchesPerImage + 1, seed: seed).dropFirst())
    }

    static let magic = Array("FIPSREF1".utf8)

    /// Writes a cache file: magic, a key line (what it was computed from),
    /// five little-endian UInt64 (count, dim, tokenCount, patchesPerImage, seed), floats.
    public func save(to path: String, key: String) throws {
        var out = ReferenceOutputs.magic
        let k = Array(key.utf8)
        for v in [UInt64(k.count)] { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        out += k
        for v in [UInt64(count), UInt64(dim), UInt64(tokenCount), UInt64(patchesPerImage), seed] {
            withUnsafeBytes(of: v.littleEndian) { out += $0 }
        }
        cls.withUnsafeBytes { out += $0 }
        patches.withUnsafeBytes { out += $0 }
        do { try Data(out).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw DataError("\(path): cannot write reference cache: \(error.localizedDescription)")
        }
    }

    /// Loads a cache file; nil when it is missing or was computed from another `key`.
    public static func load(from path: String, key: String) -> ReferenceOutputs? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let b = [UInt8](data)
        var o = 0
        func u64() -> UInt64? {
            guard o + 8 <= b.count else { return nil }
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(b[o + i]) << (8 * UInt64(i)) }
            o += 8
            return v
        }
        guard b.count > 8, Array(b[0..<8]) == magic else { return nil }
        o = 8
        guard let kl = u64(), o + Int(kl) <= b.count, String(decoding: b[o..<(o + Int(kl))], as: UTF8.self) == key else { return nil }
        o += Int(kl)
        guard let n = u64(), let d = u64(), let t = u64(), let p = u64(), let seed = u64() else { return nil }
        let nc = Int(n) * Int(d), np = Int(n) * Int(p) * Int(d)
        guard b.count - o == 4 * (nc + np) else { return nil }
        var cls = [Float](repeating: 0, count: nc), patches = [Float](repeating: 0, count: np)
        cls.withUnsafeMutableBytes { $0.copyBytes(from: b[o..<(o + 4 * nc)]) }
        o += 4 * nc
        patches.withUnsafeMutableBytes { $0.copyBytes(from: b[o...]) }
        return ReferenceOutputs(count: Int(n), dim: Int(d), tokenCount: Int(t), patchesPerImage: Int(p), seed: seed,
                                cls: cls, patches: patches)
    }
}

extension Evaluation {
    /// Runs `reference` once over `images` and keeps what `run` compares
    /// against: every CLS token and `patchesPerImage` patch tokens per image
    /// (0 or ≥ tokenCount − 1: all).
    public static func referenceOutputs(_ reference: ViTModel, images: any ImageSet, patchesPerImage: Int = 32,
                                        seed: UInt64 = 0, batch: Int = 8, threads: Int = 2) throws -> ReferenceOutputs {
        let c = reference.config, d = c.dim, T = c.tokenCount, n = images.count
        guard n > 0 else { throw DataError("no images for the reference") }
        let k = patchesPerImage <= 0 || patchesPerImage >= T - 1 ? T - 1 : patchesPerImage
        var r = ReferenceOutputs(count: n, dim: d, tokenCount: T, patchesPerImage: k, seed: seed,
                                 cls: [Float](repeating: 0, count: n * d), patches: [Float](repeating: 0, count: n * k * d))
        let B = max(1, min(batch, n))
        let ex = try ViTExecutor<BLASBackend>.host(reference, maxBatch: B, threads: threads)
        let per = c.channels * c.imageSize * c.imageSize
        var input = [Float](repeating: 0, count: B * per)
        var tok = [Float](repeating: 0, count: B * T * d)
        let progress = ProgressLine("reference", total: n)
        var start = 0
        while start < n {
            let m = min(B, n - start)
            try input.withUnsafeMutableBufferPointer { try BatchInput.fill(images, start: start, count: m, config: c, into: $0.baseAddress!) }
            input.withUnsafeBufferPointer { inp in
                tok.withUnsafeMutableBufferPointer { ex.forward(batch: m, images: inp.baseAddress!, features: $0.baseAddress!) }
            }
            for i in 0..<m {
                let g = start + i
                for q in 0..<d { r.cls[g * d + q] = tok[i * T * d + q] }
                for (j, t) in r.patchIndices(image: g).enumerated() {
                    for q in 0..<d { r.patches[(g * k + j) * d + q] = tok[(i * T + t) * d + q] }
                }
            }
            start += m
            progress.update(start)
        }
        progress.finish()
        return r
    }
}
