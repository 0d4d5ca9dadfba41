/// How `fips finetune` trains. Defaults are the best-known settings (Benchmarks/finetune_table.py).
public struct FinetuneOptions {
    public var steps = 300
    public var batch = 32
    public var learningRate: Float = 3e-5
    /// The cosine decay ends at this fraction of the peak rate.
    public var minLearningRateFraction: Float = 0.01
    /// Linear warm-up over this fraction of the steps.
    public var warmupFraction = 0.05
    public var weightDecay: Float = 0.05
    /// Quantisation-aware training: the peak learning rate of the scale
    /// multipliers (relative units: 1e-3 moves a scale by about 0.1% a step); 0 keeps the GPTQ scales.
    public var scaleLearningRate: Float = 1e-3
    public var loss: LossTerms = [.features, .cls]
    public var temperature: Float = 1
    public var threads = 2
    public var seed: UInt64 = 0
    /// Write a checkpoint every this many steps (and where).
    public var checkpointEvery = 25
    public var checkpointPath: String? = nil
    /// Continue from this checkpoint.
    public var resumePath: String? = nil
    /// Stop (after checkpointing) once this many steps are done: an interrupted run, for tests.
    public var stopAfterSteps: Int? = nil

    public init() {}

    /// Everything that changes the result: a checkpoint only resumes a run made with the same.
    var resultKey: String {
        "steps=\(steps) batch=\(batch) lr=\(learningRate) min=\(minLearningRateFraction) warmup=\(warmupFraction) "
            + "wd=\(weightDecay) slr=\(scaleLearningRate) loss=\(loss) tau=\(temperature) threads=\(threads) seed=\(seed)"
    }
}

/// One line of progress.
public struct FinetuneProgress {
    public var step: Int
    public var steps: Int
    /// Mean loss of the step's batch, and its terms by name.
    public var loss: Double
    public var terms: [(String, Double)]
    public var learningRate: Float
    public var imagesPerSecond: Double
    public var secondsLeft: Double
}

/// What a finished run reports.
public struct FinetuneReport {
    public var steps: Int
    public var resumedFrom: Int
    public var firstLoss: Double
    public var lastLoss: Double
    public var seconds: Double
    public var imagesPerSecond: Double
    public var trainedParameters: Int
}
