// swift-tools-version:6.0
// The line between device and host code is the folder a target lives in:
//   Sources/Device/  Embedded Swift compatible (no Foundation, no `any`, typed throws);
//                    cross-built for aarch64 by ./boards/build, which reads its module
//                    list from this manifest (`swift package dump-package`).
//   Sources/Host/    Foundation, swift-argument-parser, OpenBLAS/LAPACK allowed.
// scripts/modules.py check checks that every import respects the line and that the
// cross build compiles exactly the device modules. docs/ARCHITECTURE.md draws the graph.
import PackageDescription

func device(_ name: String, _ deps: [Target.Dependency] = [], cSettings: [CSetting]? = nil,
            linkerSettings: [LinkerSetting]? = nil) -> Target {
    .target(name: name, dependencies: deps, path: "Sources/Device/\(name)", cSettings: cSettings,
            linkerSettings: linkerSettings)
}
func deviceProgram(_ name: String, _ deps: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: deps, path: "Sources/Device/\(name)")
}
func host(_ name: String, _ deps: [Target.Dependency] = []) -> Target {
    .target(name: name, dependencies: deps, path: "Sources/Host/\(name)")
}
func hostProgram(_ name: String, _ deps: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: deps, path: "Sources/Host/\(name)")
}
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")

let package = Package(
    name: "FipsEdgeKit",
    products: [
        .executable(name: "fips", targets: ["fips"]),
        .executable(name: "fips-run", targets: ["fips-run"]),
        .executable(name: "fips-plan", targets: ["fips-plan"]),
        .executable(name: "fips-profile", targets: ["fips-profile"]),
        .executable(name: "fipsd", targets: ["fipsd"]),
        .library(name: "fips-c", type: .dynamic, targets: ["FipsCAPI"]),   // libfips-c.so: "fips" is the host program
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // ---- device ----
        // fips_pool.c: glibc before 2.34 keeps pthreads in libpthread.
        device("CFipsSys", linkerSettings: [.linkedLibrary("pthread", .when(platforms: [.linux]))]),
        device("CImageCodecs", linkerSettings: [
            .linkedLibrary("jpeg"), .linkedLibrary("png16"), .linkedLibrary("z"),
        ]),
        device("FipsArtifact", ["CFipsSys", "FipsKernels"]),
        // -ffp-contract=off: the integer GEMM contract (docs/KERNELS.md) needs
        // every float multiply and add rounded on its own, never fused.
        device("CFipsKernels", cSettings: [.unsafeFlags(["-ffp-contract=off"])]),
        device("FipsKernels", ["CFipsKernels"]),
        device("FipsImage", ["CFipsSys", "CImageCodecs"]),
        device("FipsViT", ["CFipsSys", "CFipsKernels", "FipsArtifact", "FipsKernels"]),
        // What the three device programs share: argv entry, flag tables, JSON text,
        // --kernel, softmax/top-k, and the Classifier (decode, preprocess, run, format).
        device("FipsDeviceSupport", ["CFipsSys", "CFipsKernels", "FipsArtifact", "FipsImage", "FipsKernels", "FipsViT"]),
        device("FipsRunner", ["CFipsSys", "FipsArtifact", "FipsDeviceSupport", "FipsImage", "FipsKernels", "FipsViT"]),
        deviceProgram("fips-run", ["FipsRunner"]),
        // fips-profile: what the device is and how fast its kernels run (profiles/schema.json).
        device("CFipsProbe", linkerSettings: [.linkedLibrary("pthread", .when(platforms: [.linux]))]),
        device("FipsProfiler", ["CFipsProbe", "CFipsSys", "CFipsKernels", "FipsArtifact", "FipsDeviceSupport", "FipsKernels", "FipsViT"]),
        deviceProgram("fips-profile", ["FipsProfiler"]),
        // fipsd: sockets, signalfd, inotify and V4L2 in C; the event loop in Swift.
        device("CFipsDaemon"),
        device("FipsDaemon", ["CFipsDaemon", "CFipsSys", "FipsArtifact", "FipsDeviceSupport", "FipsImage", "FipsViT"]),
        deviceProgram("fipsd", ["FipsDaemon"]),
        // include/fips.h: the runtime as a C library (libfips.a from ./boards/build, libfips-c.so here).
        device("FipsCAPI", ["FipsArtifact", "FipsDeviceSupport", "FipsImage", "FipsViT"]),
        // ---- host ----
        .systemLibrary(name: "COpenBLAS", path: "Sources/Host/COpenBLAS"),
        .systemLibrary(name: "CZlib", path: "Sources/Host/CZlib"),
        // The host's model in memory: HostTensor, ViTModel, MLPCalibration, parameter counts, similarity figures.
        host("FipsHostModel", ["FipsArtifact"]),
        // A host model to .fips and back: ArtifactWriter, ArtifactLayout, ArtifactReaderHost, and
        // PackedWeights (the packed formats to and from logical values, through the kernels' packer).
        host("FipsArtifactWriter", ["FipsArtifact", "FipsKernels", "FipsHostModel"]),
        // The executor's ComputeBackend over OpenBLAS: the host's fp32 forward pass.
        host("FipsBLASBackend", ["COpenBLAS", "FipsArtifact", "FipsKernels", "FipsViT", "FipsHostModel"]),
        host("FipsImport", ["FipsArtifact", "FipsArtifactWriter", "FipsHostModel"]),
        host("FipsCompress", ["COpenBLAS", "FipsArtifact", "FipsHostModel"]),
        // End-to-end fine-tuning by distillation: the whole ViT's forward and backward on OpenBLAS, AdamW, checkpoints.
        host("FipsTrain", ["COpenBLAS", "CZlib", "CFipsKernels", "FipsKernels", "FipsArtifact", "FipsHostModel", "FipsArtifactWriter", "FipsData"]),
        // Prices a ModelExecution from a device profile or a board's roofline figures.
        host("FipsLatency", ["FipsArtifact"]),
        host("FipsData", ["COpenBLAS", "CZlib", "FipsArtifact", "FipsHostModel", "FipsBLASBackend", "FipsImage", "FipsViT"]),
        host("FipsQuantize", [
            "COpenBLAS", "FipsArtifact", "FipsHostModel", "FipsArtifactWriter", "FipsBLASBackend", "FipsKernels", "FipsViT",
            "FipsData",
        ]),
        // What leaves the kit: an artifact described (fips info --json) and a model as ONNX
        // (fips export), through a protobuf wire writer beside FipsImport's reader.
        host("FipsExport", ["FipsArtifact", "FipsArtifactWriter", "FipsHostModel"]),
        // fips and fips-plan's ending: the kit's exit-status table over ArgumentParser's codes.
        host("FipsCommandLine", ["FipsDeviceSupport", argumentParser]),
        hostProgram("fips", [
            "FipsArtifact", "FipsImage", "FipsKernels", "FipsViT", "FipsHostModel", "FipsArtifactWriter", "FipsBLASBackend",
            "FipsImport", "FipsData", "FipsCompress", "FipsTrain",
            "FipsQuantize", "FipsLatency", "FipsDeviceSupport", "FipsCommandLine", "FipsExport", argumentParser,
        ]),
        // Plans a model for a board: candidates, sensitivities, exact memory, knapsack.
        host("FipsPlan", [
            "COpenBLAS", "FipsArtifact", "FipsHostModel", "FipsArtifactWriter", "FipsKernels", "FipsViT",
            "FipsDeviceSupport", "FipsData", "FipsCompress",
            "FipsQuantize", "FipsLatency", "FipsImage",
        ]),
        hostProgram("fips-plan", [
            "FipsArtifact", "FipsHostModel", "FipsArtifactWriter", "FipsImport", "FipsData", "FipsCompress", "FipsKernels", "FipsLatency", "FipsPlan", "FipsTrain",
            "FipsDeviceSupport", "FipsCommandLine", argumentParser,
        ]),
        // Measurements, not tests (Benchmarks/README.md): kernel, activation and preprocessing speed,
        // the RTN/GPTQ report on the real model.
        .executableTarget(name: "fips-bench", dependencies: [
            "FipsSyntheticInputs", "FipsArtifact", "FipsArtifactWriter", "FipsKernels", "FipsImage", "FipsHostModel", "FipsData", "FipsQuantize", "FipsTrain",
        ], path: "Benchmarks/fips-bench"),
        // ---- tests: Tests/Device/ needs only device modules, Tests/Host/ the host ones ----
        // Paths and FIPS_REQUIRE_DATA handling shared by both test targets.
        .target(name: "FipsTestSupport", path: "Tests/Support/FipsTestSupport"),
        // Seeded ViT-like inputs for the kernel tests and fips-bench, which times the same kernels on them.
        .target(name: "FipsSyntheticInputs", dependencies: ["FipsHostModel", "FipsKernels"],
                path: "Tests/Support/FipsSyntheticInputs"),
        .testTarget(name: "FipsDeviceTests", dependencies: ["FipsTestSupport", "CFipsDaemon", "FipsArtifact", "FipsDaemon", "FipsDeviceSupport", "FipsImage"],
                    path: "Tests/Device/FipsDeviceTests", exclude: ["Fixtures"]),
        .testTarget(name: "FipsHostTests", dependencies: [
            "FipsTestSupport", "FipsSyntheticInputs", "FipsArtifact", "FipsKernels", "FipsImage", "FipsViT", "FipsDeviceSupport",
            "FipsHostModel", "FipsArtifactWriter", "FipsBLASBackend", "FipsImport",
            "FipsData", "FipsCompress", "FipsQuantize", "FipsLatency", "FipsPlan", "FipsTrain", "FipsExport",
        ], path: "Tests/Host/FipsHostTests", exclude: ["Fixtures"]),
    ],
    // Swift 5 mode: kernels hand raw pointers to worker threads by design,
    // which Swift 6's Sendable checking cannot express without wrappers.
    swiftLanguageModes: [.v5]
)
