import CCPU

/// A set of x86-64 instruction-set extensions (AVX2, FMA, AVX-512F, ...): those this build was
/// compiled for (`compiled`, fixed by `-target-cpu`, see Package.swift) and those of the CPU it
/// runs on (`cpu`). A binary compiled for an extension the CPU lacks would die of an illegal
/// instruction somewhere in training; `dptrain` compares the two first and says what to rebuild
/// with (`mismatch`). The engine's limits that depend on the vector width (Dense's sparse-input
/// limits) follow `compiled.vectorBits`. On other architectures both sets are empty.
public struct InstructionSet: Sendable, Equatable {
    /// One bit per extension, as CCPU's masks number them.
    public let mask: UInt32

    public init(mask: UInt32) { self.mask = mask }

    /// What the compiler was allowed to use in this build.
    public static let compiled = InstructionSet(mask: dpt_compiled_features())
    /// What this CPU and its operating system support.
    public static let cpu = InstructionSet(mask: dpt_cpu_features())

    /// Extension names in CCPU's bit order.
    static let names = [
        "AVX", "AVX2", "FMA", "BMI1", "BMI2", "F16C", "AVX512F", "AVX512BW", "AVX512DQ", "AVX512VL",
        "AVX512CD", "AVX512_VNNI", "AVX512_BF16", "AVX512_VBMI", "AVX512_IFMA",
    ]

    public var extensions: [String] { Self.names.indices.filter { mask & (1 << $0) != 0 }.map { Self.names[$0] } }

    func has(_ name: String) -> Bool { extensions.contains(name) }

    /// The widest vector registers these extensions give floating-point loops: 512 bits with
    /// AVX-512F, 256 with AVX2 and FMA, else 128 (SSE2, which every x86-64 CPU has).
    public var vectorBits: Int { has("AVX512F") ? 512 : has("AVX2") && has("FMA") ? 256 : 128 }

    /// "AVX-512 (512-bit vectors)", "AVX2 + FMA (256-bit vectors)" or "SSE2 (128-bit vectors)".
    public var level: String {
        switch vectorBits {
        case 512: return "AVX-512 (512-bit vectors)"
        case 256: return "AVX2 + FMA (256-bit vectors)"
        default: return "SSE2 (128-bit vectors)"
        }
    }

    /// The extensions of `self` that `other` lacks.
    public func missing(from other: InstructionSet) -> [String] { InstructionSet(mask: mask & ~other.mask).extensions }

    /// Why a binary compiled for `compiled` cannot run on `cpu`, with what to do; nil when it can.
    public static func mismatch(compiled: InstructionSet = .compiled, cpu: InstructionSet = .cpu) -> String? {
        let missing = compiled.missing(from: cpu)
        guard !missing.isEmpty else { return nil }
        let portable = cpu.vectorBits == 512 ? "skylake-avx512" : cpu.vectorBits == 256 ? "haswell" : ""
        return
            "this dptrain binary was built for \(compiled.level), but this CPU lacks \(missing.joined(separator: ", ")) "
            + "(it has \(cpu.level)). Rebuild on this machine (swift build -c release targets the CPU that builds it), or build "
            + "a binary for the oldest CPU it must run on: DPTRAIN_TARGET_CPU=\(portable) swift build -c release"
            + (portable.isEmpty ? " (empty: any x86-64)" : "")
    }
}
