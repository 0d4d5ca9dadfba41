// fips-bench: the measurements that used to sit in the test suite behind environment flags.
// They print numbers and assert nothing, so they are programs, not tests.
//
//   swift build -c release --product fips-bench
//   .build/release/fips-bench kernels              GMAC/s of every integer GEMM kernel and format, ViT-S shapes (~15 s)
//   .build/release/fips-bench activations          ns/element: softmax, GELU, LayerNorm, float vs integer
//   .build/release/fips-bench preprocess           µs per 640x480 frame to a 224x224 tensor
//   .build/release/fips-bench quantization [FMNIST]  RTN vs GPTQ per layer type on data/dinov2_s.fips, with
//                                                  FMNIST Fashion-MNIST calibration images (default 58; minutes)
//   .build/release/fips-bench train-step [--model PATH] [--batch 32] [--threads 2] [--steps 5]
//                                                  s per fine-tuning step (forward + backward) of FipsTrain, one JSON line
import Foundation
import FipsHostModel  // SplitMix64

/// data/ of this checkout (the real model, photos), found from this file as the tests find it.
enum BenchPaths {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let data = packageRoot.appendingPathComponent("data")
    static var photos: URL { data.appendingPathComponent("photos") }

    struct Missing: Error, CustomStringConvertible {
        let path: String
        var description: String { "\(path) is missing; run scripts/setup.sh" }
    }

    static func require(_ path: String) throws {
        if !FileManager.default.fileExists(atPath: path) { throw Missing(path: path) }
    }
}

/// The tests' randomFloats (Tests/Host/FipsHostTests/TinyModels.swift), for the same inputs.
func randomFloats(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) * scale }
}

let usage = "usage: fips-bench kernels | activations | preprocess | quantization [FASHION_MNIST_IMAGES]\n"
    + "       | train-step [--model PATH] [--batch 32] [--threads 2] [--steps 5]"
let args = Array(CommandLine.arguments.dropFirst())
do {
    switch args.first {
    case "kernels" where args.count == 1: KernelBench.run()
    case "activations" where args.count == 1: ActivationBench.run()
    case "preprocess" where args.count == 1: PreprocessBench.run()
    case "quantization" where args.count <= 2:
        guard let fm = args.count == 2 ? Int(args[1]) : 58, fm >= 0 else {
            FileHandle.standardError.write(Data((usage + "\n").utf8)); exit(2)
        }
        try QuantizationBench.run(fashionMNIST: fm)
    case "train-step":
        guard let o = TrainStepBench.parse(Array(args.dropFirst())) else {
            FileHandle.standardError.write(Data((TrainStepBench.usage + "\n").utf8)); exit(2)
        }
        try TrainStepBench.run(o)
    default:
        FileHandle.standardError.write(Data((usage + "\n").utf8)); exit(2)
    }
} catch {
    FileHandle.standardError.write(Data("fips-bench: \(error)\n".utf8)); exit(1)
}
