@testable import DPTrain
import CCPU
import Testing

/// What a build was compiled for against what the CPU has.
@Suite("Instruction sets")
struct InstructionSetTests {
    static func set(_ names: [String]) -> InstructionSet {
        InstructionSet(mask: names.reduce(0) { $0 | 1 << UInt32(InstructionSet.names.firstIndex(of: $1)!) })
    }
    static let avx2 = set(["AVX", "AVX2", "FMA", "BMI1", "BMI2", "F16C"])
    static let avx512 = set([
        "AVX", "AVX2", "FMA", "BMI1", "BMI2", "F16C", "AVX512F", "AVX512BW", "AVX512DQ", "AVX512VL", "AVX512CD",
    ])

    @Test func vectorWidthFollowsTheWidestLevel() {
        #expect(Self.avx512.vectorBits == 512 && Self.avx2.vectorBits == 256 && Self.set([]).vectorBits == 128)
        #expect(
            Self.set(["AVX", "AVX2"]).vectorBits == 128, "AVX2 without FMA is not the 256-bit level the kernels assume")
        #expect(Self.avx2.level == "AVX2 + FMA (256-bit vectors)")
    }

    @Test func anAVX512BuildOnAnAVX2CPUIsRefusedWithTheFix() throws {
        let message = try #require(InstructionSet.mismatch(compiled: Self.avx512, cpu: Self.avx2))
        #expect(message.contains("built for AVX-512 (512-bit vectors)"))
        #expect(message.contains("lacks AVX512F, AVX512BW, AVX512DQ, AVX512VL, AVX512CD"))
        #expect(message.contains("DPTRAIN_TARGET_CPU=haswell"))
        #expect(InstructionSet.mismatch(compiled: Self.avx2, cpu: Self.avx512) == nil)
        #expect(InstructionSet.mismatch(compiled: Self.avx2, cpu: Self.avx2) == nil)
        let portable = try #require(InstructionSet.mismatch(compiled: Self.avx2, cpu: Self.set([])))
        #expect(portable.contains("DPTRAIN_TARGET_CPU= swift build") && portable.contains("(empty: any x86-64)"))
    }

    /// This test build (debug, no -target-cpu) runs here, so the CPU has at least what it was
    /// compiled for; and the masks agree bit for bit on what the header names.
    @Test func thisBuildRunsOnThisCPU() {
        #expect(
            InstructionSet.mismatch() == nil,
            "\(InstructionSet.compiled.extensions) vs \(InstructionSet.cpu.extensions)")
        #expect(InstructionSet.names.count == 15 && DPT_AVX512IFMA == 1 << 14)
    }
}
