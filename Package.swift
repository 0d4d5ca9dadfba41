// swift-tools-version:6.0
// The line between device and host code is the folder a target lives in:
//   Sources/Device/  Embedded Swift compatible (no Foundation, no `any`, typed throws);
//                    cross-built for aarch64 by ./boards/build, which reads its module
//                    list from this manifest (`swift package dump-package`).
//   Sources/Host/    Foundation, swift-argument-parser, OpenBLAS/LAPACK allowed.
// scripts/check_modules.py checks that every import respects the line and that the
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
        device("FipsArtifact", ["CFipsSys"]),
        // -ffp-contract=off: the integer GEMM contract (docs/KERNELS.md) needs
        // every float multiply and add rounded on its own, never fused.
        device("CFipsKernels", cSettings: [.unsafeFlags(["-ffp-contract=off"])]),
        device("FipsKernels", ["CFipsKernels"]),
        device("FipsImage", ["CFipsSys", "CImageCodecs"]),
        device("FipsViT", ["CFipsSys", "CFipsKernels", "FipsArtifact", "FipsKernels"]),
        device("FipsRunner", ["CFipsSys", "CFipsKernels", "FipsArtifact", "FipsImage", "FipsKernels", "FipsViT"]),
        deviceProgram("fips-run", ["FipsRunner"]),
        // fips-profile: what the device is and how fast its kernels run (profiles/schema.json).
        device("CFipsProbe", linkerSettings: [.linkedLibrary("pthread", .when(platforms: [.linux]))]),
        device("FipsProfiler", ["CFipsProbe", "CFipsSys", "CFipsKernels", "FipsArtifact", "FipsKernels", "FipsViT", "FipsRunner"]),
        deviceProgram("fips-profile", ["FipsProfiler"]),
        // fipsd: sockets, signalfd, inotify and V4L2 in C; the event loop in Swift.
        device("CFipsDaemon"),
        device("FipsDaemon", ["CFipsDaemon", "CFipsSys", "CFipsKernels", "FipsArtifact", "FipsImage", "FipsKernels", "FipsViT", "FipsRunner"]),
        deviceProgram("fipsd", ["FipsDaemon"]),
        // ---- host ----
        .systemLibrary(name: "COpenBLAS", path: "Sources/Host/COpenBLAS"),
        .systemLibrary(name: "CZlib", path: "Sources/Host/CZlib"),
        host("FipsHostCore", ["COpenBLAS", "FipsArtifact", "FipsKernels", "FipsImage", "FipsViT"]),
        host("FipsImport", ["FipsArtifact", "FipsHostCore"]),
        host("FipsCompress", ["COpenBLAS", "FipsArtifact", "FipsHostCore"]),
        // Prices a ModelExecution from a device profile or a board's roofline figures.
        host("FipsLatency", ["FipsArtifact"]),
        host("FipsData", ["COpenBLAS", "CZlib", "FipsArtifact", "FipsHostCore", "FipsImage", "FipsViT"]),
        host("FipsQuantize", ["COpenBLAS", "FipsArtifact", "FipsHostCore", "FipsViT", "FipsData"]),
        hostProgram("fips", [
            "FipsArtifact", "FipsImage", "FipsKernels", "FipsViT", "FipsHostCore", "FipsImport", "FipsData", "FipsCompress",
            "FipsQuantize", "FipsLatency", argumentParser,
        ]),
        // Plans a model for a board: candidates, sensitivities, exact memory, knapsack.
        host("FipsPlan", [
            "COpenBLAS", "FipsArtifact", "FipsHostCore", "FipsKernels", "FipsViT", "FipsRunner", "FipsData", "FipsCompress",
            "FipsQuantize", "FipsLatency",
        ]),
        hostProgram("fips-plan", [
            "FipsArtifact", "FipsHostCore", "FipsImport", "FipsData", "FipsCompress", "FipsLatency", "FipsPlan", argumentParser,
        ]),
        // Measurements, not tests (Benchmarks/README.md): kernel, activation and preprocessing speed,
        // the RTN/GPTQ report on the real model.
        .executableTarget(name: "fips-bench", dependencies: [
            "FipsArtifact", "FipsKernels", "FipsImage", "FipsHostCore", "FipsData", "FipsQuantize",
        ], path: "Benchmarks/fips-bench"),
        // ---- tests: Tests/Device/ needs only device modules, Tests/Host/ the host ones ----
        // Paths and FIPS_REQUIRE_DATA handling shared by both test targets.
        .target(name: "FipsTestSupport", path: "Tests/Support/FipsTestSupport"),
        .testTarget(name: "FipsDeviceTests", dependencies: ["FipsTestSupport", "FipsDaemon", "FipsImage"],
                    path: "Tests/Device/FipsDeviceTests", exclude: ["Fixtures"]),
        .testTarget(name: "FipsHostTests", dependencies: [
            "FipsTestSupport", "FipsArtifact", "FipsKernels", "FipsImage", "FipsViT", "FipsRunner", "FipsHostCore", "FipsImport",
            "FipsData", "FipsCompress", "FipsQuantize", "FipsLatency", "FipsPlan",
        ], path: "Tests/Host/FipsHostTests", exclude: ["Fixtures"]),
    ],
    // Swift 5 mode: kernels hand raw pointers to worker threads by design,
    // which Swift 6's Sendable checking cannot express without wrappers.
    swiftLanguageModes: [.v5]
)
