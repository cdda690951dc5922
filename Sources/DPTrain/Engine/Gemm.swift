import CBLAS
import Foundation

/// Row-major single-precision matrix multiply through OpenBLAS:
/// `C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C`, where `op` transposes when asked.
/// Leading dimensions are those of the matrices as stored (row-major).
///
/// With OpenBLAS's AVX-512 kernels, a product of more than `smallProductLimit` multiply-adds is
/// cut along the longer side of C into blocks under that size (multiples of 16 wide), which
/// OpenBLAS computes with its small-matrix kernels straight from the operands; a larger one it
/// first packs, and zeroes C in a separate pass. A training step's GEMMs are thin (16-64
/// samples): measured one by one on Zen 4, the cut ones take 0.6-0.9x the time, the others are
/// left whole (C cut by columns when B is transposed was 5% slower). Each element of C is still
/// one dot product over all of k.
@inline(__always)
func sgemm(
    transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    let (ta, tb) = (transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans)
    let alongRows = m >= n
    let side = alongRows ? m : n
    let width = smallProductLimit / Swift.max((alongRows ? n : m) * k, 1) / 16 * 16
    guard smallProductLimit > 0, m * n * k > smallProductLimit, width >= 16, alongRows || !transB else {
        cblas_sgemm(
            CblasRowMajor, ta, tb, blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c,
            blasint(ldc))
        return
    }
    for lo in stride(from: 0, to: side, by: width) {
        let count = Swift.min(width, side - lo)
        if alongRows {  // rows lo..<lo+count of C come from those rows of op(A)
            cblas_sgemm(
                CblasRowMajor, ta, tb, blasint(count), blasint(n), blasint(k), alpha, a + (transA ? lo : lo * lda),
                blasint(lda),
                b, blasint(ldb), beta, c + lo * ldc, blasint(ldc))
        } else {  // columns lo..<lo+count of C come from those columns of B
            cblas_sgemm(
                CblasRowMajor, ta, tb, blasint(m), blasint(count), blasint(k), alpha, a, blasint(lda),
                b + lo, blasint(ldb), beta, c + lo, blasint(ldc))
        }
    }
}

/// The size (m * n * k) up to which OpenBLAS computes a product with its small-matrix kernels,
/// straight from the operands (`sgemm_small_kernel_permit`: up to 100^3), which only its AVX-512
/// kernel sets have (SkylakeX, and Cooperlake and SapphireRapids, built on it). With other kernel
/// sets nothing is cut (0): measured with the Haswell kernels (Zen 3), cutting the step's
/// products took 0.93-1.05x the whole product's time along rows and 1.09-1.46x along columns.
let smallProductLimit =
    ["skylakex", "cooperlake", "sapphirerapids"].contains(BLASThreads.coreName.lowercased()) ? 1_000_000 : 0

/// OpenBLAS's thread pool size for this process, and what it achieves.
public enum BLASThreads {
    public static func set(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    public static var current: Int { Int(openblas_get_num_threads()) }
    /// The kernel set OpenBLAS chose for this CPU (or `OPENBLAS_CORETYPE` named), e.g. "Haswell".
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// Best of `repeats` square `size`^3 sgemms with the current threads, in GFLOP/s: the
    /// machine's practical peak that benchmarks report their fraction of.
    public static func measuredPeakGFLOPS(size: Int = 1024, repeats: Int = 3) -> Double {
        let a = FloatBuffer(count: size * size), b = FloatBuffer(count: size * size),
            c = FloatBuffer(count: size * size)
        for i in 0..<size * size { a.pointer[i] = Float(i % 7) * 0.1; b.pointer[i] = Float(i % 5) * 0.1 }
        var best = Double.infinity
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            sgemm(
                m: size, n: size, k: size, a: a.pointer, lda: size, b: b.pointer, ldb: size, beta: 0, c: c.pointer,
                ldc: size)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        return 2 * pow(Double(size), 3) / best / 1e9
    }
}
