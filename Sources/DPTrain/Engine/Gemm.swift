import CBLAS

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

/// `out[j] = sum over rows of m[row, j]` (bias gradients).
@inline(__always)
func columnSums(_ m: UnsafePointer<Float>, rows: Int, columns: Int, into out: UnsafeMutablePointer<Float>) {
    out.update(from: m, count: columns)
    var row = m + columns
    for _ in 1..<max(rows, 1) {
        for j in 0..<columns { out[j] += row[j] }
        row += columns
    }
}

/// OpenBLAS's thread pool size for this process.
public enum BLASThreads {
    public static func set(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    public static var current: Int { Int(openblas_get_num_threads()) }
}
