import FipsArtifactWriter
import FipsHostModel
import FipsTrain

extension FipsPlanCommand {
    /// `fips finetune` on the plan's compressed float model, the original as teacher.
    func finetune(_ student: ViTModel, teacher: ViTModel, note: (String) -> Void) throws -> (ViTModel, FinetuneReport) {
        let spec = finetuneData ?? calib!
        let (set, what) = try FinetuneInputs.images(spec, config: student.config, count: finetuneImages, augment: false, seed: 0)
        let tuner = try Finetuner(student: student, teacher: teacher, data: set, options: finetuneOptions(teacher: teacher))
        note("fine-tuning \(tuner.layout.trainableCount) parameters for \(finetuneSteps) steps of \(finetuneBatch) images (\(what))")
        let (model, report) = try tuner.run { p in
            note(String(format: "fine-tune step %d/%d  loss %.5g  %.2f img/s", p.step, p.steps, p.loss, p.imagesPerSecond))
        }
        return (model, report)
    }

    /// `fips finetune --qat` on the plan's quantised artifact (its bytes), the
    /// original as teacher: the same formats come back, so the same bytes count.
    func finetuneQuantised(_ bytes: [UInt8], teacher: ViTModel, note: (String) -> Void) throws -> ([UInt8], FinetuneReport) {
        let spec = finetuneData ?? calib!
        let (set, what) = try FinetuneInputs.images(spec, config: teacher.config, count: finetuneImages, augment: false, seed: 0)
        note("quantisation-aware fine-tuning for \(finetuneSteps) steps of \(finetuneBatch) images (\(what))")
        let r = try QuantisedArtifactTraining.train(bytes, teacher: teacher, data: set, options: finetuneOptions(teacher: teacher)) { p in
            note(String(format: "fine-tune step %d/%d  loss %.5g  %.2f img/s", p.step, p.steps, p.loss, p.imagesPerSecond))
        }
        return (r.bytes, r.report)
    }

    func finetuneOptions(teacher: ViTModel) -> FinetuneOptions {
        var o = FinetuneOptions()
        o.steps = finetuneSteps; o.batch = finetuneBatch; o.learningRate = finetuneLr; o.threads = hostThreads
        o.loss = finetuneLossTerms(hasHead: teacher.config.hasHead)
        return o
    }

    /// --finetune-loss, or the best-known default: the head's logits as well
    /// as the features when there is a head (the plan is scored through it).
    func finetuneLossTerms(hasHead: Bool) -> LossTerms {
        if let l = finetuneLoss, let t = try? LossTerms.parse(l) { return t }
        return LossTerms.bestKnown(hasHead: hasHead)
    }

    /// plan.json's record of the fine-tuning (false when none ran).
    func finetuneJSON(_ r: FinetuneReport?, hasHead: Bool) -> Any {
        guard let r = r else { return false }
        return ["mode": finetune == "qat" ? "quantisation-aware" : "float, before quantising", "steps": r.steps, "batch": finetuneBatch, "images": finetuneImages, "data": finetuneData ?? calib!,
                "learning_rate": Double(finetuneLr), "loss": finetuneLossTerms(hasHead: hasHead).description,
                "loss_first": r.firstLoss, "loss_last": r.lastLoss, "seconds": r.seconds] as [String: Any]
    }
}

