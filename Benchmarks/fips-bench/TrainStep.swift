// swift build -c release --product fips-bench && .build/release/fips-bench train-step [--model PATH] [--batch 32] [--threads 2] [--steps 5]
import Foundation
import FipsArtifactWriter
import FipsTrain

/// `fips-bench train-step`: seconds per fine-tuning step of the kit's trainer,
/// forward + backward of the student over a batch of random images (MSE of the
/// final-LayerNorm features of all tokens against zeros; patch embedding and
/// head frozen; no optimiser), as `FipsTrain.TrainingStepTimer` times it.
/// One JSON line; Benchmarks/train_step_vs_pytorch.py times PyTorch on the same shapes.
enum TrainStepBench {
    static let usage = "usage: fips-bench train-step [--model PATH] [--batch 32] [--threads 2] [--steps 5]"

    struct Options {
        var model = BenchPaths.data.appendingPathComponent("dinov2_s.fips").path
        var batch = 32
        var threads = 2
        var steps = 5
    }

    /// nil on a malformed command line.
    static func parse(_ args: [String]) -> Options? {
        var o = Options()
        var i = 0
        while i < args.count {
            guard i + 1 < args.count else { return nil }
            let v = args[i + 1]
            switch args[i] {
            case "--model": o.model = v
            case "--batch": guard let n = Int(v), n > 0 else { return nil }; o.batch = n
            case "--threads": guard let n = Int(v), n > 0 else { return nil }; o.threads = n
            case "--steps": guard let n = Int(v), n > 0 else { return nil }; o.steps = n
            default: return nil
            }
            i += 2
        }
        return o
    }

    static func run(_ o: Options) throws {
        try BenchPaths.require(o.model)
        let model = try ArtifactReaderHost.load(path: o.model)
        let seconds = try TrainingStepTimer.time(model, batch: o.batch, threads: o.threads, steps: o.steps)
        let sorted = seconds.sorted()
        let n = sorted.count
        let median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        let line: [String: Any] = [
            "model": o.model, "batch": o.batch, "threads": o.threads,
            "seconds": seconds, "median_s": median, "images_per_s": Double(o.batch) / median,
        ]
        let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys, .withoutEscapingSlashes])
        print(String(decoding: data, as: UTF8.self))
    }
}
