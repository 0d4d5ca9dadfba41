import ArgumentParser
import Foundation
import FipsArtifactWriter
import FipsData
import FipsHostModel
import FipsTrain

struct Finetune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Recover a compressed model end to end by distillation from the original fp32 model.",
        discussion: """
        Trains the whole student ViT (attention, norms, LayerScale, tokens, dense MLPs, and a
        FiPS group's shared basis U once with each layer's V, pruned entries kept at zero) to
        reproduce the teacher's final features (features, cls), the teacher's head (logits)
        or the data's labels (ce); by default features+cls+logits when both models have a
        head, features+cls otherwise. The patch embedding and the head stay as they are.
        A float student is trained through, and written with, the teacher's head (--head
        teacher, the default when the teacher has one): a head refitted by fips compress
        --refit-head stops fitting once the features move back toward the teacher's, and
        would steer the logits term toward its own decision (on the 57% FiPS model: 82.75%
        with the teacher's head and logits, 70.20% with the features alone). AdamW with
        warm-up and cosine decay, weight decay off for norms, biases and tokens. One image
        per worker thread at a time; deterministic for a seed and thread count.

        A checkpoint is written every --checkpoint-every steps (atomically, OUT.ckpt by
        default) and removed once the model is written; --resume CKPT continues an
        interrupted run to the same result. The model is written atomically at the end:
        Ctrl-C or a crash leaves no partial output.

        Both models are artifacts of the same width and depth; the teacher is fp32. A packed
        (integer) student from fips quantize, fips import --bits or fips-plan is trained with
        --qat, quantisation-aware: each step rounds its weights onto their grids (q8, q4g32,
        q3g32 and the rest, with the per-row or per-32 scales GPTQ chose) and its activations
        as the integer runtime rounds them (per token, or the calibrated scales; int8
        attention); gradients pass the roundings straight through and the weight scales are
        trained too (LSQ; --scale-lr 0 keeps them). The output is packed in the same formats
        and sizes, so the integer runtime computes what the training computed.

        EXAMPLES:
          fips finetune --model fips57.fips --teacher dinov2_s_fmnist.fips --data fashion-mnist -o fips57.ft.fips
          fips finetune --model m.fips --teacher vit.fips --data photos/ --augment --images 4096 --epochs 2 -o m.ft.fips
          fips finetune --model m.fips --teacher vit.fips --data fashion-mnist --resume m.ft.fips.ckpt -o m.ft.fips
          fips finetune --qat --model plan22.fips --teacher dinov2_s_fmnist.fips --data fashion-mnist -o plan22.qat.fips
        """)

    @Option(help: "The student: a compressed fp32 .fips (from fips compress), or with --qat a packed one.") var model: String
    @Option(help: "The teacher: the original fp32 .fips of the same width and depth.") var teacher: String
    @Option(help: "Images: 'fashion-mnist' (training images after the first 200 per class) or a folder of JPEG/PNG.")
    var data: String
    @Option(help: "Images used from --data (with --augment: inputs made from the folder).") var images = 6400
    @Option(help: "Optimisation steps (default: one pass over --images).") var steps: Int?
    @Option(help: "Passes over the images (instead of --steps).") var epochs: Double?
    @Option(help: "Images per step.") var batch = 32
    @Option(help: "Peak learning rate.") var lr: Float = FinetuneOptions().learningRate
    @Option(help: "Weight decay of the matrices.") var weightDecay: Float = FinetuneOptions().weightDecay
    @Flag(help: "Quantisation-aware training of a packed student through the integer runtime's grids.") var qat = false
    @Option(help: "With --qat: peak learning rate of the weight scales' multipliers (0: keep the GPTQ scales).")
    var scaleLr: Float = FinetuneOptions().scaleLearningRate
    @Option(help: "Loss terms joined by '+': features, cls, logits, ce (default: features+cls+logits when both models have a head, features+cls otherwise).")
    var loss: String?
    @Option(help: "Softmax temperature of the logits term.") var temperature: Float = 1
    @Option(help: ArgumentHelp("The head the student is trained through and written with: its own, or a copy of the teacher's (default: teacher when the teacher has a head and the student is float; a --qat student keeps its packed head).",
                               valueName: "student|teacher"))
    var head: String?
    @Flag(help: "Random resized crops and flips of the images (torchvision RandomResizedCrop, scale 0.25-1, and RandomHorizontalFlip).") var augment = false
    @Option(help: "Worker threads (the result depends on it).") var threads = 2
    @Option(help: "Seed of the data order and augmentation.") var seed: UInt64 = 0
    @Option(help: "Checkpoint file (default: OUTPUT.ckpt).") var checkpoint: String?
    @Option(help: "Steps between checkpoints.") var checkpointEvery = 25
    @Option(help: "Continue from this checkpoint.") var resume: String?
    @Option(name: .shortAndLong, help: "Output artifact path.") var output: String

    func validate() throws {
        if steps != nil && epochs != nil { throw ValidationError("give --steps or --epochs, not both") }
        if batch < 1 || threads < 1 || images < 1 { throw ValidationError("--batch, --threads and --images must be at least 1") }
        if lr <= 0 { throw ValidationError("--lr must be positive") }
        if scaleLr < 0 { throw ValidationError("--scale-lr must not be negative") }
        if let h = head, h != "student" && h != "teacher" { throw ValidationError("--head: '\(h)' is neither 'student' nor 'teacher'") }
        if head == "teacher" && qat { throw ValidationError("--head teacher: a packed (--qat) student keeps its packed head; give the teacher's head to the float model before quantising it") }
        _ = try trainingOptions(images: images, heads: false)
    }

    /// `heads`: both models have a head (the loss's default reads it).
    func trainingOptions(images count: Int, heads: Bool) throws -> FinetuneOptions {
        var o = FinetuneOptions()
        if let l = loss {
            do { o.loss = try LossTerms.parse(l) } catch { throw ValidationError("\(error)") }
        } else {
            o.loss = LossTerms.bestKnown(hasHead: heads)
        }
        o.batch = batch
        o.steps = steps ?? max(1, Int((Double(count) * (epochs ?? 1) / Double(batch)).rounded(.up)))
        o.learningRate = lr; o.weightDecay = weightDecay; o.temperature = temperature; o.scaleLearningRate = scaleLr
        o.threads = threads; o.seed = seed
        o.checkpointEvery = max(1, checkpointEvery)
        o.checkpointPath = checkpoint ?? output + ".ckpt"
        o.resumePath = resume
        return o
    }

    func run() throws {
        let t0 = Date()
        do {
            let quantised = qat ? try FinetuneInputs.quantisedModel(model) : nil
            var student = try quantised?.model ?? FinetuneInputs.floatModel(model, role: "student")
            let teacherModel = try FinetuneInputs.floatModel(teacher, role: "teacher")
            let headFrom = head ?? (qat || !teacherModel.config.hasHead ? "student" : "teacher")
            if headFrom == "teacher" { student = try FinetuneInputs.withTeacherHead(student, teacher: teacherModel) }
            try Finetuner.checkPair(student: student, teacher: teacherModel)
            let (set, what) = try FinetuneInputs.images(data, config: student.config, count: images, augment: augment, seed: seed)
            let o = try trainingOptions(images: set.count, heads: student.config.hasHead && teacherModel.config.hasHead)
            let tuner = try Finetuner(student: student, teacher: teacherModel, data: set, options: o, quantised: quantised)
            printError((qat ? "quantisation-aware " : "") + "fine-tuning \(tuner.layout.trainableCount) parameters for \(o.steps) steps of \(o.batch) images "
                       + "(\(what)); loss \(o.loss)\(student.config.hasHead ? ", the \(headFrom)'s head" : ""), lr \(o.learningRate), \(o.threads) threads")
            let (tuned, report) = try tuner.run { p in
                let terms = p.terms.map { String(format: "%@ %.4g", $0.0, $0.1) }.joined(separator: ", ")
                printError(String(format: "step %d/%d  loss %.5g (%@)  lr %.2e  %.2f img/s  ETA %@", p.step, p.steps, p.loss,
                                  terms, Double(p.learningRate), p.imagesPerSecond, duration(p.secondsLeft)))
            }
            try ArtifactWriter.write(tuned, precision: .f32, quantized: tuner.packedTensors() ?? [:], to: output)
            if let ck = o.checkpointPath { try? FileManager.default.removeItem(atPath: ck) }
            print(String(format: "fine-tuned %d steps (from step %d): loss %.5g -> %.5g, %.2f images/s; wrote %@ in %@",
                         report.steps, report.resumedFrom, report.firstLoss, report.lastLoss, report.imagesPerSecond,
                         output, duration(Date().timeIntervalSince(t0))))
        } catch let e as TrainingError {
            throw CommandFailure(description: e.description)
        }
    }
}

func duration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? "\(t / 3600)h\(t % 3600 / 60)m" : t >= 60 ? "\(t / 60)m\(t % 60)s" : "\(t)s"
}
