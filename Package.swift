// swift-tools-version:6.0
import PackageDescription

// A release build targets the CPU of the machine that builds it (`-target-cpu native`), so the
// element-wise loops (Adam, activations, the sparse products) use its widest vectors: AVX2 or
// AVX-512. A binary for other machines names the oldest CPU it must run on, by LLVM's CPU names:
//   DPTRAIN_TARGET_CPU=haswell swift build -c release          # any AVX2 + FMA CPU (Haswell+, Zen)
//   DPTRAIN_TARGET_CPU=skylake-avx512 swift build -c release   # AVX-512 (Skylake-SP+, Zen 4)
//   DPTRAIN_TARGET_CPU= swift build -c release                 # empty: any x86-64 (SSE2)
// (Not x86-64-v3: the C importer takes CPU names only.) `dptrain --version` names the level a
// binary was built for, and a binary refuses, with that advice, a CPU that lacks it.
let targetCPU = Context.environment["DPTRAIN_TARGET_CPU"] ?? "native"
let targetCPUFlags = targetCPU.isEmpty ? [] : ["-target-cpu", targetCPU]

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
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
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
        // The instruction-set extensions compiled for and present (a header only).
        .systemLibrary(name: "CCPU", path: "Sources/CCPU"),
        // A thread's CPU affinity (a header only).
        .systemLibrary(name: "CAffinity", path: "Sources/CAffinity"),
        // ONNX's protobuf messages, generated from onnx.proto (Sources/ONNXProto/regenerate.sh).
        .target(
            name: "ONNXProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["regenerate.sh"]),
        .target(
            name: "DPTrain",
            dependencies: [
                "CMPI", "CBLAS", "CZlib", "CPrefetch", "CCPU", "CAffinity", "ONNXProto",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: [
                // Hot loops index unsafe buffers whose bounds are checked where they are built.
                .unsafeFlags(["-Ounchecked"] + targetCPUFlags, .when(configuration: .release)),
                // Float.squareRoot() goes through a C shim; with errno semantics it cannot be
                // vectorised (Adam's update ran 4x slower). Nothing here reads errno after math.
                .unsafeFlags(["-Xcc", "-fno-math-errno"]),
            ]),
        .executableTarget(
            name: "dptrain",
            dependencies: [
                "DPTrain",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Where the Dense layer's own products beat sgemm on this CPU (see its first lines).
        .executableTarget(
            name: "dptrain-kernels",
            dependencies: ["DPTrain"],
            path: "Benchmarks/Kernels"),
        .testTarget(
            name: "DPTrainTests",
            dependencies: ["DPTrain", "ONNXProto", "CAffinity"]),
    ]
)
