import CBLAS
import Foundation

/// Row-major single-precision matrix multiply through OpenBLAS:
/// `C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C`, where `op` transposes when asked.
/// Leading dimensions are those of the matrices as stored (row-major).
@inline(__always)
func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
           alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
}

/// OpenBLAS's thread pool size for this process, and what it achieves.
public enum BLASThreads {
    public static func set(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    public static var current: Int { Int(openblas_get_num_threads()) }

    /// Best of `repeats` square `size`^3 sgemms with the current threads, in GFLOP/s: the
    /// machine's practical peak that benchmarks report their fraction of.
    public static func measuredPeakGFLOPS(size: Int = 1024, repeats: Int = 3) -> Double {
        let a = FloatBuffer(count: size * size), b = FloatBuffer(count: size * size), c = FloatBuffer(count: size * size)
        for i in 0..<size * size { a.pointer[i] = Float(i % 7) * 0.1; b.pointer[i] = Float(i % 5) * 0.1 }
        var best = Double.infinity
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            sgemm(m: size, n: size, k: size, a: a.pointer, lda: size, b: b.pointer, ldb: size, beta: 0, c: c.pointer, ldc: size)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        return 2 * pow(Double(size), 3) / best / 1e9
    }
}
