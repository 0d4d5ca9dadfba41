import COpenBLAS
import Dispatch
import Foundation
import FipsArtifact
import FipsArtifactWriter
import FipsData
import FipsHostModel

/// End-to-end fine-tuning of a (compressed) student ViT by distillation from
/// its fp32 teacher on OpenBLAS: every step, each worker thread takes its
/// share of the batch one image at a time (teacher forward, student forward,
/// loss, backward into its own gradient buffer); the buffers are summed in
/// thread order and AdamW updates the trained slots. Deterministic for a seed
/// and thread count; `--resume` replays the data order up to the checkpoint.
/// With a `QuantisedStudent` it trains quantisation-aware: each step the
/// workers see the weights rounded onto the runtime's grids and round the
/// activations as it does; the gradient reaches the shadow weights straight
/// through and the scale multipliers by LSQ.
public final class Finetuner {
    public let layout: ParameterLayout
    public private(set) var params: [Float]
    let student: ViTModel
    let teacherLayout: ParameterLayout
    let teacherParams: [Float]
    let data: any ImageSet
    let options: FinetuneOptions
    let mask: [Float]?
    let quantised: QuantisedStudent?

    /// `quantised`: train through its grids (then `student` is ignored: its model is the student).
    public init(student: ViTModel, teacher: ViTModel, data: any ImageSet, options: FinetuneOptions,
                quantised: QuantisedStudent? = nil) throws {
        let student = quantised?.model ?? student
        try Finetuner.checkPair(student: student, teacher: teacher)
        if data.count == 0 { throw TrainingError("the fine-tuning data holds no images") }
        if options.loss.contains(.logits) && !(student.config.hasHead && teacher.config.hasHead) {
            throw TrainingError("--loss logits needs a head on both models (the student has \(student.config.numClasses) classes, the teacher \(teacher.config.numClasses))")
        }
        if options.loss.contains(.ce) && (data.labels == nil || !student.config.hasHead) {
            throw TrainingError("--loss ce needs labelled data and a student with a head")
        }
        if options.steps < 1 || options.batch < 1 || options.threads < 1 {
            throw TrainingError("steps, batch and threads must be at least 1")
        }
        self.student = student
        var (layout, params) = try ParameterLayout.of(student)
        var q = quantised
        try q?.attach(to: &layout, values: &params)
        (self.layout, self.params) = (layout, params)
        self.quantised = q
        (teacherLayout, teacherParams) = try ParameterLayout.of(teacher)
        self.data = data
        self.options = options
        mask = layout.sparsityMask(params, except: q?.densePackedOffsets ?? [])
    }

    /// After `run`, with a quantised student: its packed tensors by model name.
    public func packedTensors() -> [String: QuantizedTensor]? {
        params.withUnsafeBufferPointer { p in quantised?.packed(p.baseAddress!) }
    }

    /// Refuses a pair that cannot be distilled, naming the difference.
    public static func checkPair(student s: ViTModel, teacher t: ViTModel) throws {
        let a = s.config, b = t.config
        for (what, x, y) in [("width", a.dim, b.dim), ("depth", a.depth, b.depth), ("heads", a.heads, b.heads),
                             ("patch size", a.patchSize, b.patchSize), ("image size", a.imageSize, b.imageSize)] where x != y {
            throw TrainingError("student and teacher differ in \(what): \(x) vs \(y)")
        }
        if let k = (0..<b.depth).first(where: { t.isFactorised(block: $0) }) {
            throw TrainingError("the teacher's block \(k) MLP is factorised: the teacher must be the uncompressed fp32 model")
        }
    }

    public var studentKey: UInt64 { TrainingCheckpoint.key(params.withUnsafeBytes { Array($0) } + Array(layout.signature.utf8)) }
    var optionsKey: UInt64 { TrainingCheckpoint.key(Array("\(options.resultKey) images=\(data.count)".utf8)) }

    /// Trains; returns the fine-tuned student.
    public func run(progress: (FinetuneProgress) -> Void = { _ in }) throws -> (ViTModel, FinetuneReport) {
        let o = options, B = o.batch, T = min(o.threads, B), n = layout.count
        openblas_set_num_threads(1)
        var m = [Float](repeating: 0, count: n), v = [Float](repeating: 0, count: n)
        var start = 0
        let studentKey = self.studentKey, optionsKey = self.optionsKey
        if let r = o.resumePath {
            let ck = try TrainingCheckpoint.read(r, studentKey: studentKey, optionsKey: optionsKey, count: n)
            guard ck.step <= o.steps else { throw TrainingError("\(r): checkpoint is at step \(ck.step), past --steps \(o.steps)") }
            params = ck.params; m = ck.m; v = ck.v; start = ck.step
        }
        let opt = AdamW(learningRate: o.learningRate, minLearningRate: o.learningRate * o.minLearningRateFraction,
                        warmupSteps: max(1, Int(o.warmupFraction * Double(o.steps))), totalSteps: o.steps,
                        weightDecay: o.weightDecay)
        let scaleRate = o.scaleLearningRate / o.learningRate
        let scaleSlots = Set(quantised?.scaleRanges.map { $0.0.lowerBound } ?? [])
        let ranges = layout.slots.filter { $0.trains && (scaleRate > 0 || !scaleSlots.contains($0.offset)) }.map {
            ($0.offset..<($0.offset + $0.count), decays: $0.decays, rate: scaleSlots.contains($0.offset) ? scaleRate : Float(1))
        }
        var sampler = BatchSampler(count: data.count, seed: o.seed)
        for _ in 0..<start { _ = sampler.next(B) }

        let c = layout.config, inputLen = c.channels * c.imageSize * c.imageSize
        let workers = (0..<T).map { _ in
            Worker(layout: layout, teacher: teacherLayout, inputLength: inputLen, parameters: n, grids: quantised?.activations)
        }
        // the weights the workers see: the parameters, or (quantisation-aware) their rounded values
        var rounded = quantised == nil ? [] : [Float](repeating: 0, count: n)
        let images = UnsafeMutablePointer<Float>.allocate(capacity: B * inputLen)
        let termSums = UnsafeMutablePointer<Double>.allocate(capacity: B * LossTerms.names.count)
        defer { images.deallocate(); termSums.deallocate() }
        let loss = DistillationLoss(terms: o.loss, temperature: o.temperature)
        let labels = data.labels
        let t0 = Date()
        var first = Double.nan, last = Double.nan
        let stopAt = min(o.steps, o.stopAfterSteps ?? o.steps)
        var step = start
        while step < stopAt {
            let idx = sampler.next(B)
            // inputs: written by the workers in parallel (decode/resize is per image)
            var failure: Error? = nil
            let lock = NSLock()
            DispatchQueue.concurrentPerform(iterations: T) { t in
                for j in Worker.share(t, of: B, threads: T) {
                    do { try data.write(idx[j], config: c, into: images + j * inputLen) }
                    catch { lock.lock(); failure = failure ?? error; lock.unlock() }
                }
            }
            if let e = failure { throw e }
            let weight = 1 / Float(B)
            if let q = quantised {
                params.withUnsafeBufferPointer { p in
                    rounded.withUnsafeMutableBufferPointer { q.fakeQuantise(p.baseAddress!, into: $0.baseAddress!, count: n) }
                }
            }
            (quantised == nil ? params : rounded).withUnsafeBufferPointer { p in
                teacherParams.withUnsafeBufferPointer { tp in
                    DispatchQueue.concurrentPerform(iterations: T) { t in
                        workers[t].run(images: images, indices: Worker.share(t, of: B, threads: T), inputLength: inputLen,
                                       student: p.baseAddress!, teacher: tp.baseAddress!, loss: loss,
                                       labels: labels.map { l in idx.map { l[$0] } }, weight: weight, terms: termSums)
                    }
                }
            }
            Worker.reduce(workers.map { $0.grad }, count: n)
            params.withUnsafeBufferPointer { quantised?.backward($0.baseAddress!, grad: workers[0].grad) }
            params.withUnsafeMutableBufferPointer { p in
                m.withUnsafeMutableBufferPointer { mm in
                    v.withUnsafeMutableBufferPointer { vv in
                        (mask ?? []).withUnsafeBufferPointer { mk in
                            opt.step(step, params: p.baseAddress!, grad: workers[0].grad, m: mm.baseAddress!, v: vv.baseAddress!,
                                     ranges: ranges, mask: mask == nil ? nil : mk.baseAddress, threads: T)
                        }
                    }
                }
                quantised?.clampScales(p.baseAddress!)
            }
            let nt = LossTerms.names.count
            var terms = [Double](repeating: 0, count: nt)
            for j in 0..<B { for k in 0..<nt { terms[k] += termSums[j * nt + k] / Double(B) } }
            let total = zip(LossTerms.names, terms).filter { o.loss.contains($0.0.1) }.reduce(0) { $0 + $1.1 }
            if first.isNaN { first = total }
            last = total
            step += 1
            let el = Date().timeIntervalSince(t0), done = Double(step - start)
            progress(FinetuneProgress(step: step, steps: o.steps, loss: total,
                                      terms: LossTerms.names.enumerated().filter { o.loss.contains($0.1.1) }.map { ($0.1.0, terms[$0.0]) },
                                      learningRate: opt.rate(at: step - 1), imagesPerSecond: done * Double(B) / el,
                                      secondsLeft: el / done * Double(o.steps - step)))
            if !total.isFinite { throw TrainingError("the loss became \(total) at step \(step): lower --lr") }
            if let path = o.checkpointPath, step % o.checkpointEvery == 0 || step == stopAt {
                try TrainingCheckpoint(studentKey: studentKey, optionsKey: optionsKey, step: step, params: params, m: m, v: v)
                    .write(to: path)
            }
        }
        let el = Date().timeIntervalSince(t0)
        let report = FinetuneReport(steps: step, resumedFrom: start, firstLoss: first, lastLoss: last, seconds: el,
                                    imagesPerSecond: Double((step - start) * B) / max(el, 1e-9),
                                    trainedParameters: layout.trainableCount)
        return (layout.model(params, base: student), report)
    }
}

/// Epoch-wise permutations of the data indices drawn with SplitMix64.
struct BatchSampler {
    var rng: SplitMix64
    var perm: [Int]
    var cursor: Int

    init(count: Int, seed: UInt64) {
        rng = SplitMix64(seed: seed ^ 0x5EED_F1E7_0000_0000)
        perm = Array(0..<count)
        cursor = count
    }

    mutating func next(_ k: Int) -> [Int] {
        var out = [Int]()
        out.reserveCapacity(k)
        while out.count < k {
            if cursor == perm.count {
                for i in stride(from: perm.count - 1, to: 0, by: -1) { perm.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
                cursor = 0
            }
            out.append(perm[cursor]); cursor += 1
        }
        return out
    }
}
