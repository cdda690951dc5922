// swift-tools-version:6.0
import PackageDescription

// DPTRAIN_TARGET_CPU=native (Launch/common.sh sets it) lets the compiler use this machine's
// vector units (AVX2/AVX-512) for the element-wise loops; Adam's update runs ~1.6x faster.
// Leave it unset for a binary that must run on older CPUs than the one that built it.
let targetCPU: [String] = Context.environment["DPTRAIN_TARGET_CPU"].map { $0.isEmpty ? [] : ["-target-cpu", $0] } ?? []
// Tells the code it was built for the host's vector width (Dense's sparse-input limit depends on it).
let targetCPUDefines: [SwiftSetting] = targetCPU.isEmpty ? [] : [.define("DPTRAIN_TARGET_CPU", .when(configuration: .release))]

let package = Package(
    name: "dptrain",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "dptrain", targets: ["dptrain"]),
        .library(name: "DPTrain", targets: ["DPTrain"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.11.0"),  // LogEvent
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // OpenMPI, with inline C shims for the handle macros Swift cannot import.
        .systemLibrary(
            name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        // OpenBLAS's CBLAS interface.
        .systemLibrary(
            name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        // zlib, for reading .gz IDX files.
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),
        // The prefetch hint (a header only).
        .systemLibrary(name: "CPrefetch", path: "Sources/CPrefetch"),
        .target(
            name: "DPTrain",
            dependencies: [
                "CMPI", "CBLAS", "CZlib", "CPrefetch",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: [
                // Hot loops index unsafe buffers whose bounds are checked where they are built.
                .unsafeFlags(["-Ounchecked"] + targetCPU, .when(configuration: .release)),
                // Float.squareRoot() goes through a C shim; with errno semantics it cannot be
                // vectorised (Adam's update ran 4x slower). Nothing here reads errno after math.
                .unsafeFlags(["-Xcc", "-fno-math-errno"]),
            ] + targetCPUDefines),
        .executableTarget(
            name: "dptrain",
            dependencies: [
                "DPTrain",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "DPTrainTests",
            dependencies: ["DPTrain"]),
    ]
)
