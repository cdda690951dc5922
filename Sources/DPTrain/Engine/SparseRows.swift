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
    /// `multiply` goes `blockColumns` columns at a time (every row, then the next block), so the
    /// rows of the matrix one block reads (64 rows of 128 floats: 32 KB) stay in the L1 cache
    /// while all the listed rows use them. A multiple of 16, the width `load` lists at a time.
    static let blockColumns = 64
    let blocks: Int
    /// The rows the last `load` listed.
    private(set) var rows = 0
    /// The entries of row `r` are `rowStart[r] ..< rowStart[r + 1]` of `columnOf` and `rowValue`.
    let rowStart: UnsafeMutablePointer<Int32>
    /// The entries of row `r` in column block `b` start at `blockStart[r * (blocks + 1) + b]`
    /// (and `b == blocks` is the row's end).
    let blockStart: UnsafeMutablePointer<Int32>
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
        blocks = (columns + Self.blockColumns - 1) / Self.blockColumns
        blockStart = .allocate(capacity: rowCapacity * (blocks + 1))
        blockStart.initialize(repeating: 0, count: rowCapacity * (blocks + 1))
        columnOf = .allocate(capacity: entries)
        rowValue = .allocate(capacity: entries)
        columnStart = .allocate(capacity: columns + 1)
        columnStart.initialize(repeating: 0, count: columns + 1)
        rowOf = .allocate(capacity: entries)
        columnValue = .allocate(capacity: entries)
    }

    deinit {
        for p in [rowStart, blockStart, columnOf, rowOf, columnStart] { p.deallocate() }
        rowValue.deallocate()
        columnValue.deallocate()
    }

    var entryCount: Int { Int(rowStart[rows]) }

    /// Lists the nonzero entries of the `count` rows at `x` (at most `rowCapacity`).
    func load(_ x: UnsafePointer<Float>, rows count: Int) {
        precondition(count <= rowCapacity)
        rows = count
        Self.setLanes.withUnsafeBufferPointer { load(x, rows: count, setLanes: $0.baseAddress!) }
    }

    private func load(_ x: UnsafePointer<Float>, rows count: Int, setLanes: UnsafePointer<SIMD8<Int32>>) {
        var n = 0
        for r in 0..<count {
            rowStart[r] = Int32(n)
            let row = x + r * columns
            let starts = blockStart + r * (blocks + 1)
            var k = 0, block = 0
            // Branch-free: each half of a 16-value block writes the columns of its nonzero lanes
            // (a table lookup by its 8-bit mask) as one 8-wide store and moves on by their count.
            // The store's unused lanes land on slots that later entries overwrite, and never past
            // the row's `columns` slots, since `n` counts at most one per column.
            while k + 16 <= columns {
                if k == block * Self.blockColumns { starts[block] = Int32(n); block += 1 }
                let mask = nonzeroLanes(UnsafeRawPointer(row + k).loadUnaligned(as: SIMD16<Float>.self))
                let low = Int(mask & 255), high = Int(mask >> 8)
                UnsafeMutableRawPointer(columnOf + n).storeBytes(of: setLanes[low] &+ Int32(k), as: SIMD8<Int32>.self)
                n += low.nonzeroBitCount
                UnsafeMutableRawPointer(columnOf + n).storeBytes(
                    of: setLanes[high] &+ Int32(k + 8), as: SIMD8<Int32>.self)
                n += high.nonzeroBitCount
                k += 16
            }
            while k < columns {
                if k == block * Self.blockColumns { starts[block] = Int32(n); block += 1 }
                columnOf[n] = Int32(k)
                n += row[k] != 0 ? 1 : 0
                k += 1
            }
            starts[blocks] = Int32(n)
            for e in Int(rowStart[r])..<n { rowValue[e] = row[Int(columnOf[e])] }
        }
        rowStart[count] = Int32(n)
    }

    /// For each 8-bit mask, the numbers of its set bits in ascending order (then zeros).
    private static let setLanes: [SIMD8<Int32>] = (0..<256).map { mask in
        var lanes = SIMD8<Int32>(), n = 0
        for bit in 0..<8 where mask & (1 << bit) != 0 { lanes[n] = Int32(bit); n += 1 }
        return lanes
    }

    /// Bit `i` set where lane `i` of `v` is nonzero.
    @inline(__always)
    private func nonzeroLanes(_ v: SIMD16<Float>) -> UInt32 {
        let lanes = unsafeBitCast(v .!= 0, to: SIMD16<Int32>.self) & Self.laneBits
        return UInt32(bitPattern: lanes.wrappedSum())
    }

    private static let laneBits = SIMD16<Int32>(
        1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)

    /// `y[r, 0..<width] = sum over the entries (r, k, v) of v * matrix[k, 0..<width]` for the
    /// listed rows: the rows of `x M` (row-major, `y`'s rows `width` apart).
    func multiply(_ matrix: UnsafePointer<Float>, width: Int, into y: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            for r in 0..<rows {
                let start = Int(blockStart[r * (blocks + 1) + b]), end = Int(blockStart[r * (blocks + 1) + b + 1])
                weightedRowSum(
                    index: columnOf + start, value: rowValue + start, count: end - start,
                    matrix: matrix, stride: width, width: width, into: y + r * width, accumulate: b > 0)
            }
        }
    }

    /// `out[k, 0..<width] (+)= sum over the entries (r, k, v) of v * dz[r, 0..<width]`: `x^T dz`,
    /// added to `out` when `accumulate`, else written (every row of `out`, listed or not). Goes
    /// column by column (`transpose()` first), so each row of `out` is written once and the
    /// rows of `dz` it sums are read from the cache.
    func multiplyTransposed(
        _ dz: UnsafePointer<Float>, width: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool
    ) {
        transpose()
        for k in 0..<columns {
            let start = Int(columnStart[k]), end = Int(columnStart[k + 1])
            weightedRowSum(
                index: rowOf + start, value: columnValue + start, count: end - start,
                matrix: dz, stride: width, width: width, into: out + k * width, accumulate: accumulate)
        }
    }

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

    /// Whether at most `limit` (a fraction) of the `count` floats at `x` are nonzero. Stops
    /// reading once more are, so a dense input costs only part of a pass.
    static func isSparse(_ x: UnsafePointer<Float>, count: Int, limit: Double) -> Bool {
        let allowed = Int(limit * Double(count))
        var total = 0, i = 0
        while i + 16 <= count {
            let end = min(count, i + 1024)
            var nonzero = SIMD16<Int32>()
            while i + 16 <= end {
                let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
                nonzero &-= unsafeBitCast(v .!= 0, to: SIMD16<Int32>.self)  // a true lane is -1
                i += 16
            }
            total += Int(nonzero.wrappedSum())
            if total > allowed { return false }
        }
        while i < count { total += x[i] != 0 ? 1 : 0; i += 1 }
        return total <= allowed
    }
}

/// `out[0..<width] (+)= sum over e of value[e] * matrix[index[e] * stride ..< + width]`: a sum of
/// weighted rows of a row-major matrix, the inner loop of a sparse-times-dense product (a row of
/// `x W` from the nonzeros of a row of `x`; a row of `x^T dz` from the nonzeros of a column of
/// `x`). Sums in the order of the list into 16-wide vectors of accumulators, eight at a time
/// (then four, one, and single floats for the rest of `width`), so each listed row of the matrix
/// is read once per 128 outputs. Overwrites `out` unless `accumulate`.
@inline(__always)
func weightedRowSum(
    index: UnsafePointer<Int32>, value: UnsafePointer<Float>, count: Int,
    matrix: UnsafePointer<Float>, stride: Int, width: Int,
    into out: UnsafeMutablePointer<Float>, accumulate: Bool
) {
    typealias V = SIMD16<Float>
    @inline(__always) func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }
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
