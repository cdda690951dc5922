/// The nonzero entries of up to `rowCapacity` rows of a row-major matrix of `columns` columns,
/// listed row by row (compressed sparse rows) and, after `transpose()`, column by column.
///
/// What a Dense layer multiplies instead of its input when most of the input is zero: MNIST's
/// pixels are 81% zero, so a first layer that skips them does a fifth of a dense GEMM's
/// multiply-adds. Zero entries are exactly the ones skipped (NaN and -0.0 compare as they should:
/// NaN is kept, -0.0 is dropped, as its products add nothing), so a product through these lists
/// differs from a dense one only in the order of its sums. Built into buffers allocated once.
final class SparseRows {
    let columns: Int
    let rowCapacity: Int
    /// The entries of row `r` are `rowStart[r] ..< rowStart[r + 1]` of `columnOf` and `rowValue`.
    private(set) var rows = 0
    let rowStart: UnsafeMutablePointer<Int32>
    let columnOf: UnsafeMutablePointer<Int32>
    let rowValue: UnsafeMutablePointer<Float>
    /// After `transpose()`: the entries of column `k` are `columnStart[k] ..< columnStart[k + 1]`
    /// of `rowOf` and `columnValue`, rows ascending.
    let columnStart: UnsafeMutablePointer<Int32>
    let rowOf: UnsafeMutablePointer<Int32>
    let columnValue: UnsafeMutablePointer<Float>

    init(rowCapacity: Int, columns: Int) {
        self.columns = columns
        self.rowCapacity = rowCapacity
        let entries = max(rowCapacity * columns, 1)
        rowStart = .allocate(capacity: rowCapacity + 1)
        rowStart.initialize(repeating: 0, count: rowCapacity + 1)
        columnOf = .allocate(capacity: entries)
        rowValue = .allocate(capacity: entries)
        columnStart = .allocate(capacity: columns + 1)
        columnStart.initialize(repeating: 0, count: columns + 1)
        rowOf = .allocate(capacity: entries)
        columnValue = .allocate(capacity: entries)
    }

    deinit {
        for p in [rowStart, columnOf, rowOf, columnStart] { p.deallocate() }
        rowValue.deallocate()
        columnValue.deallocate()
    }

    var entryCount: Int { Int(rowStart[rows]) }

    /// Lists the nonzero entries of the `count` rows at `x` (at most `rowCapacity`).
    func load(_ x: UnsafePointer<Float>, rows count: Int) {
        precondition(count <= rowCapacity)
        rows = count
        var n = 0
        for r in 0..<count {
            rowStart[r] = Int32(n)
            let row = x + r * columns
            var k = 0
            // Most 16-value blocks of an image are all zero; the others have a few nonzeros,
            // found as the set bits of a lane mask.
            while k + 16 <= columns {
                var mask = nonzeroLanes(UnsafeRawPointer(row + k).loadUnaligned(as: SIMD16<Float>.self))
                while mask != 0 {
                    let j = k + mask.trailingZeroBitCount
                    columnOf[n] = Int32(j)
                    rowValue[n] = row[j]
                    n += 1
                    mask &= mask - 1
                }
                k += 16
            }
            while k < columns {
                columnOf[n] = Int32(k)
                rowValue[n] = row[k]
                n += row[k] != 0 ? 1 : 0
                k += 1
            }
        }
        rowStart[count] = Int32(n)
    }

    /// Bit `i` set where lane `i` of `v` is nonzero.
    @inline(__always)
    private func nonzeroLanes(_ v: SIMD16<Float>) -> UInt32 {
        let lanes = unsafeBitCast(v .!= 0, to: SIMD16<Int32>.self) & Self.laneBits
        return UInt32(bitPattern: lanes.wrappedSum())
    }

    private static let laneBits = SIMD16<Int32>(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)

    /// Fills the column-by-column lists from the row-by-row ones (a counting sort, stable, so
    /// each column's rows stay in ascending order).
    func transpose() {
        columnStart.update(repeating: 0, count: columns + 1)
        let n = entryCount
        for e in 0..<n { columnStart[Int(columnOf[e]) + 1] += 1 }
        for k in 0..<columns { columnStart[k + 1] += columnStart[k] }
        // columnStart[k] serves as the cursor of column k, then is restored from its neighbour.
        for r in 0..<rows {
            for e in Int(rowStart[r])..<Int(rowStart[r + 1]) {
                let k = Int(columnOf[e]), slot = Int(columnStart[k])
                rowOf[slot] = Int32(r)
                columnValue[slot] = rowValue[e]
                columnStart[k] += 1
            }
        }
        for k in stride(from: columns, to: 0, by: -1) { columnStart[k] = columnStart[k - 1] }
        columnStart[0] = 0
    }

    /// The fraction of nonzero values among the `count` floats at `x`.
    static func density(_ x: UnsafePointer<Float>, count: Int) -> Double {
        guard count > 0 else { return 0 }
        var nonzero = SIMD16<Int32>()
        var i = 0
        while i + 16 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            nonzero &-= unsafeBitCast(v .!= 0, to: SIMD16<Int32>.self)  // a true lane is -1
            i += 16
        }
        var total = Int(nonzero.wrappedSum())
        while i < count { total += x[i] != 0 ? 1 : 0; i += 1 }
        return Double(total) / Double(count)
    }
}

/// `out[0..<width] (+)= sum over e of value[e] * matrix[index[e] * stride ..< + width]`: a sum of
/// weighted rows of a row-major matrix, the inner loop of a sparse-times-dense product (a row of
/// `x W` from the nonzeros of a row of `x`; a row of `x^T dz` from the nonzeros of a column of
/// `x`). Sums in the order of the list, four 16-wide vectors of accumulators at a time, so each
/// row of the matrix is read once per 64 outputs. Overwrites `out` unless `accumulate`.
@inline(__always)
func weightedRowSum(index: UnsafePointer<Int32>, value: UnsafePointer<Float>, count: Int,
                    matrix: UnsafePointer<Float>, stride: Int, width: Int,
                    into out: UnsafeMutablePointer<Float>, accumulate: Bool) {
    typealias V = SIMD16<Float>
    @inline(__always) func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }
    var c = 0
    // 128 outputs in eight vectors of accumulators (a 128-unit layer's whole row in one pass
    // over the list); AVX-512 has the 32 registers for them.
    while c + 128 <= width {
        var a0 = accumulate ? load(out + c) : V(), a1 = accumulate ? load(out + c + 16) : V()
        var a2 = accumulate ? load(out + c + 32) : V(), a3 = accumulate ? load(out + c + 48) : V()
        var a4 = accumulate ? load(out + c + 64) : V(), a5 = accumulate ? load(out + c + 80) : V()
        var a6 = accumulate ? load(out + c + 96) : V(), a7 = accumulate ? load(out + c + 112) : V()
        for e in 0..<count {
            let v = V(repeating: value[e]), row = matrix + Int(index[e]) * stride + c
            a0 += v * load(row); a1 += v * load(row + 16); a2 += v * load(row + 32); a3 += v * load(row + 48)
            a4 += v * load(row + 64); a5 += v * load(row + 80); a6 += v * load(row + 96); a7 += v * load(row + 112)
        }
        store(a0, out + c); store(a1, out + c + 16); store(a2, out + c + 32); store(a3, out + c + 48)
        store(a4, out + c + 64); store(a5, out + c + 80); store(a6, out + c + 96); store(a7, out + c + 112)
        c += 128
    }
    while c + 64 <= width {
        var a0 = accumulate ? load(out + c) : V(), a1 = accumulate ? load(out + c + 16) : V()
        var a2 = accumulate ? load(out + c + 32) : V(), a3 = accumulate ? load(out + c + 48) : V()
        for e in 0..<count {
            let v = V(repeating: value[e]), row = matrix + Int(index[e]) * stride + c
            a0 += v * load(row); a1 += v * load(row + 16); a2 += v * load(row + 32); a3 += v * load(row + 48)
        }
        store(a0, out + c); store(a1, out + c + 16); store(a2, out + c + 32); store(a3, out + c + 48)
        c += 64
    }
    while c + 16 <= width {
        var a = accumulate ? load(out + c) : V()
        for e in 0..<count { a += V(repeating: value[e]) * load(matrix + Int(index[e]) * stride + c) }
        store(a, out + c)
        c += 16
    }
    while c < width {
        var a: Float = accumulate ? out[c] : 0
        for e in 0..<count { a += value[e] * matrix[Int(index[e]) * stride + c] }
        out[c] = a
        c += 1
    }
}
