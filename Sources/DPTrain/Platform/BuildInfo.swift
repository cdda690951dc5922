/// Which dptrain this is: its version (recorded in checkpoints) and what this build was compiled
/// for, as `dptrain --version` and the start-up line print it.
public enum BuildInfo {
    public static let version = "0.4.0"

    /// "dptrain 0.4.0, built for AVX2 + FMA (256-bit vectors); OpenBLAS kernels Haswell".
    public static var description: String {
        "dptrain \(version), built for \(InstructionSet.compiled.level); OpenBLAS kernels \(BLASThreads.coreName)"
    }
}
