// swift-tools-version:6.0
// The line between device and host code is the module list below:
//   device (Embedded Swift compatible, cross-built for aarch64 by ./boards/build):
//     CFipsSys, CImageCodecs, CFipsKernels, FipsArtifact, FipsKernels, FipsImage, FipsViT, FipsRunner, fips-run,
//     CFipsProbe, FipsProfiler, fips-profile,
//     CFipsDaemon, FipsDaemon, fipsd
//   host (Foundation, swift-argument-parser, OpenBLAS/LAPACK allowed):
//     COpenBLAS, CZlib, FipsHostCore, FipsImport, FipsData, FipsCompress, FipsQuantize, FipsLatency, FipsPlan, fips, fips-plan
import PackageDescription

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
        .target(name: "CFipsSys", linkerSettings: [.linkedLibrary("pthread", .when(platforms: [.linux]))]),
        .target(name: "CImageCodecs", linkerSettings: [
            .linkedLibrary("jpeg"), .linkedLibrary("png16"), .linkedLibrary("z"),
        ]),
        .target(name: "FipsArtifact", dependencies: ["CFipsSys"]),
        // -ffp-contract=off: the integer GEMM contract (docs/KERNELS.md) needs
        // every float multiply and add rounded on its own, never fused.
        .target(name: "CFipsKernels", cSettings: [.unsafeFlags(["-ffp-contract=off"])]),
        .target(name: "FipsKernels", dependencies: ["CFipsKernels"]),
        .target(name: "FipsImage", dependencies: ["CFipsSys", "CImageCodecs"]),
        .target(name: "FipsViT", dependencies: ["CFipsKernels", "FipsArtifact", "FipsKernels"]),
        .target(name: "FipsRunner", dependencies: ["CFipsSys", "FipsArtifact", "FipsImage", "FipsViT"]),
        .executableTarget(name: "fips-run", dependencies: ["FipsRunner"]),
        // fips-profile: what the device is and how fast its kernels run (profiles/schema.json).
        .target(name: "CFipsProbe", linkerSettings: [.linkedLibrary("pthread", .when(platforms: [.linux]))]),
        .target(name: "FipsProfiler", dependencies: ["CFipsProbe", "CFipsSys", "CFipsKernels", "FipsArtifact", "FipsKernels", "FipsViT", "FipsRunner"]),
        .executableTarget(name: "fips-profile", dependencies: ["FipsProfiler"]),
        // fipsd: sockets, signalfd, inotify and V4L2 in C; the event loop in Swift.
        .target(name: "CFipsDaemon"),
        .target(name: "FipsDaemon", dependencies: ["CFipsDaemon", "CFipsSys", "CFipsKernels", "FipsArtifact", "FipsImage", "FipsViT", "FipsRunner"]),
        .executableTarget(name: "fipsd", dependencies: ["FipsDaemon"]),
        // ---- host ----
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .target(name: "FipsHostCore", dependencies: ["COpenBLAS", "FipsArtifact", "FipsKernels", "FipsImage", "FipsViT"]),
        .target(name: "FipsImport", dependencies: ["FipsHostCore"]),
        .target(name: "FipsCompress", dependencies: ["FipsHostCore", "COpenBLAS"]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // Prices a ModelExecution from a device profile or a board's roofline figures.
        .target(name: "FipsLatency", dependencies: ["FipsArtifact"]),
        .target(name: "FipsData", dependencies: ["COpenBLAS", "CZlib", "FipsArtifact", "FipsHostCore", "FipsImage", "FipsViT"]),
        .target(name: "FipsQuantize", dependencies: ["COpenBLAS", "FipsArtifact", "FipsHostCore", "FipsViT", "FipsData"]),
        .executableTarget(name: "fips", dependencies: [
            "FipsHostCore", "FipsImport", "FipsData", "FipsCompress", "FipsQuantize", "FipsLatency",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Plans a model for a board: candidates, sensitivities, exact memory, knapsack.
        .target(name: "FipsPlan", dependencies: [
            "COpenBLAS", "FipsArtifact", "FipsHostCore", "FipsKernels", "FipsViT", "FipsRunner", "FipsData", "FipsCompress",
            "FipsQuantize", "FipsLatency",
        ]),
        .executableTarget(name: "fips-plan", dependencies: [
            "FipsHostCore", "FipsImport", "FipsData", "FipsCompress", "FipsLatency", "FipsPlan",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "FipsTests", dependencies: [
            "FipsArtifact", "FipsKernels", "FipsImage", "FipsViT", "FipsRunner", "FipsDaemon", "FipsHostCore", "FipsImport", "FipsData", "FipsCompress", "FipsQuantize", "FipsLatency",
            "FipsPlan",
        ], exclude: ["Fixtures"]),
    ],
    // Swift 5 mode: kernels hand raw pointers to worker threads by design,
    // which Swift 6's Sendable checking cannot express without wrappers.
    swiftLanguageModes: [.v5]
)
