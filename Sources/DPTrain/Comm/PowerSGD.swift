import CMPI
import Foundation

/// PowerSGD (Vogels, Karimireddy and Jaggi, 2019; PyTorch's `powerSGD_hook`) for what crosses
/// the network: each large weight matrix M (rows x cols, as the flat store holds it) of a
/// machine's gradient sum travels as two thin factors, P = M Q (rows x rank) and Q = M^T P
/// (cols x rank), instead of rows x cols floats; the other tensors (biases, anything under
/// `minimumSize` floats) travel whole, in float32. With error feedback: what the approximation
/// left out of a machine's share is added to its next step's gradient, so nothing is lost, only
/// delayed. The first `warmupSteps` steps send everything uncompressed (PyTorch's
/// `start_powerSGD_iter`). With `bf16`, those steps' gradient and the P factors (the bulk of
/// what travels once it starts) cross as bfloat16, as under PyTorch's
/// `bf16_compress_wrapper(powerSGD_hook)`; Q, the tensors sent whole and the statistics stay
/// float32 (they are few).
///
/// Every machine computes the same approximation from the same summed factors (each sum is taken
/// in machine order by `MachineExchange`), so the replicas stay identical. Q is kept from one step
/// to the next (warm start), identical on every machine and saved in checkpoints; the error
/// feedback is each machine's own, and rank 0 gathers it for checkpoints.
public final class PowerSGD {
    /// A weight matrix that is compressed: where it lies in the flat gradient, and its shape.
    struct Matrix {
        let name: String
        let offset: Int, rows: Int, cols: Int
        var count: Int { rows * cols }
    }

    public let rank: Int
    public let warmupSteps: Int
    /// Whether the warm-up steps' gradient and the P factors travel as bfloat16.
    public let bf16: Bool
    /// The global step the next `sum` is for (set by the trainer).
    public var step = 0
    let matrices: [Matrix]
    /// The ranges of the gradient that travel whole.
    let whole: [Range<Int>]
    /// Per matrix: Q (cols x rank), identical on every machine; and this machine's error feedback.
    let q: [FloatBuffer]
    let error: [FloatBuffer]
    /// What travels: first every matrix's P; then every Q, the whole tensors and the riders.
    private let packed: FloatBuffer
    private let p: [UnsafeMutablePointer<Float>]
    private let packedQ: FloatBuffer
    /// The floats of every P, and of every Q (where the whole tensors start in `packedQ`).
    private let pFloats: Int
    private let qFloats: Int
    /// Scratch: a block of rows of P Q^T, and P's columns in double precision.
    private let approximation: FloatBuffer
    private let columns: UnsafeMutablePointer<Double>

    /// The rows of a matrix that the approximation's pass takes at a time: about `blockFloats`
    /// floats, so that a block of the approximation stays in the core's L2 cache between its
    /// product and the updates of the gradient and the error feedback.
    static let blockFloats = 32_768
    static func blockRows(_ m: Matrix) -> Int { max(1, blockFloats / m.cols) }
    private var exchange: MachineExchange?

    /// The compressed matrices of `store`: the kernels (2-D and up, the last axis the columns) of
    /// at least `minimumSize` floats whose factors are smaller than they are. Throws naming the
    /// key when `rank` exceeds one's smaller side.
    public init(
        store: ParameterStore, rank: Int, warmupSteps: Int, minimumSize: Int, bf16: Bool = false, seed: UInt64
    ) throws {
        var matrices: [Matrix] = []
        var whole: [Range<Int>] = []
        for e in store.entries {
            let cols = e.shape.last ?? 1
            let rows = e.count / max(cols, 1)
            let candidate = e.shape.count >= 2 && e.count >= minimumSize
            if candidate && rank > min(rows, cols) {
                throw ConfigError.invalid(
                    key: "training.powersgd.rank",
                    reason:
                        "is \(rank), above the smaller side of \(e.name) (\(rows) x \(cols)); use at most \(min(rows, cols))"
                )
            }
            if candidate && (rows + cols) * rank < e.count {
                matrices.append(Matrix(name: e.name, offset: e.offset, rows: rows, cols: cols))
            } else if let last = whole.last, last.upperBound == e.offset {
                whole[whole.count - 1] = last.lowerBound..<e.offset + e.count
            } else {
                whole.append(e.offset..<e.offset + e.count)
            }
        }
        (self.rank, self.warmupSteps, self.bf16, self.matrices, self.whole) = (rank, warmupSteps, bf16, matrices, whole)
        var rng = SplitMix64(seed: CounterRNG.key(seed, 0x50_5347, 0))
        q = matrices.map { m in
            let buffer = FloatBuffer(count: m.cols * rank)
            for i in 0..<buffer.count {
                buffer.pointer[i] = Float(Int64(bitPattern: rng.next()) >> 40) / Float(1 << 23)
            }
            return buffer
        }
        error = matrices.map { FloatBuffer(count: $0.count) }
        let pFloats = matrices.reduce(0) { $0 + $1.rows * rank }
        let qFloats = matrices.reduce(0) { $0 + $1.cols * rank }
        let packed = FloatBuffer(count: pFloats)
        var starts: [UnsafeMutablePointer<Float>] = []
        var offset = 0
        for m in matrices {
            starts.append(packed.pointer + offset)
            offset += m.rows * rank
        }
        (self.packed, p, self.pFloats, self.qFloats) = (packed, starts, pFloats, qFloats)
        packedQ = FloatBuffer(count: qFloats + whole.reduce(0) { $0 + $1.count } + Self.maximumRiders)
        approximation = FloatBuffer(count: matrices.map { Self.blockRows($0) * $0.cols }.max() ?? 0)
        columns = .allocate(capacity: (matrices.map(\.rows).max() ?? 0) * rank)
    }

    /// The floats that cross the network a step, against the whole gradient's.
    public var wireFloats: (compressed: Int, whole: Int) {
        let factors = matrices.reduce(0) { $0 + ($1.rows + $1.cols) * rank }
        let rest = whole.reduce(0) { $0 + $1.count }
        return (factors + rest, matrices.reduce(0) { $0 + $1.count } + rest)
    }

    /// Used by the leader of each machine (`SharedMemoryGradientSum`).
    func attach(_ exchange: MachineExchange) { self.exchange = exchange }

    /// Whether this rank compresses its machine's exchange (a leader, with other machines).
    public var isAttached: Bool { exchange != nil }

    /// Whether this step's sum is compressed (past the warm-up, with machines to send to).
    var compresses: Bool { exchange != nil && step >= warmupSteps && !matrices.isEmpty }

    /// The most floats that may ride with the first exchange (`sum`'s `riders`).
    static let maximumRiders = 16

    /// Replaces `gradient` (this machine's sum) by the sum over the machines: the matrices'
    /// PowerSGD approximation, the rest exact, and `riders` (a few floats after the parameters:
    /// the statistics) summed exactly in the same exchange.
    func sum(_ gradient: UnsafeMutablePointer<Float>, riders: Range<Int>) {
        guard let exchange else { return }
        precondition(riders.count <= Self.maximumRiders)
        // The ranges that travel whole, then the riders (no array is made: a step allocates nothing).
        func forEachWhole(_ body: (Range<Int>) -> Void) {
            for range in whole { body(range) }
            body(riders)
        }
        let r = rank
        // M = this machine's gradient + its error feedback; P = M Q, summed over the machines.
        for (k, m) in matrices.enumerated() {
            let g = gradient + m.offset, e = error[k].pointer
            for i in 0..<m.count { g[i] += e[i] }
            sgemm(m: m.rows, n: r, k: m.cols, a: g, lda: m.cols, b: q[k].pointer, ldb: r, beta: 0, c: p[k], ldc: r)
        }
        exchange.sum(
            packed.pointer, range: 0..<pFloats, bf16: bf16, padded: false, pool: nil,
            operation: "MPI_Alltoall(powersgd P, machines)")
        // Orthonormal columns of P (Gram-Schmidt); then Q = M^T P, summed over the machines with
        // the tensors that travel whole and the riders.
        var offset = 0
        let qPacked = packedQ.pointer
        for (k, m) in matrices.enumerated() {
            Self.orthonormalizeColumns(p[k], rows: m.rows, cols: r, scratch: columns)
            sgemm(
                transA: true, m: m.cols, n: r, k: m.rows, a: gradient + m.offset, lda: m.cols, b: p[k], ldb: r,
                beta: 0, c: qPacked + offset, ldc: r)
            offset += m.cols * r
        }
        forEachWhole { range in
            (qPacked + offset).update(from: gradient + range.lowerBound, count: range.count)
            offset += range.count
        }
        exchange.sum(
            qPacked, range: 0..<offset, bf16: false, padded: false, pool: nil,
            operation: "MPI_Alltoall(powersgd Q, machines)")
        offset = qFloats
        forEachWhole { range in
            (gradient + range.lowerBound).update(from: qPacked + offset, count: range.count)
            offset += range.count
        }
        // The approximation A = P Q^T of the sum replaces M; this machine keeps what its share
        // lost, M - A / machines. A block of rows at a time, A in scratch: one pass over M.
        offset = 0
        let share = 1 / Float(exchange.machines)
        let a = approximation.pointer
        for (k, m) in matrices.enumerated() {
            q[k].pointer.update(from: qPacked + offset, count: m.cols * r)
            offset += m.cols * r
            let block = Self.blockRows(m)
            for first in stride(from: 0, to: m.rows, by: block) {
                let rows = min(block, m.rows - first)
                sgemm(
                    transB: true, m: rows, n: m.cols, k: r, a: p[k] + first * r, lda: r, b: q[k].pointer, ldb: r,
                    beta: 0, c: a, ldc: m.cols)
                let g = gradient + m.offset + first * m.cols, e = error[k].pointer + first * m.cols
                for i in 0..<rows * m.cols {
                    e[i] = g[i] - share * a[i]
                    g[i] = a[i]
                }
            }
        }
    }

    /// Makes the columns of the row-major `rows x cols` matrix orthonormal (modified Gram-Schmidt,
    /// a column of zeros stays zero), in double precision: each column is copied to `scratch`
    /// (`rows x cols` doubles), where the products run over contiguous memory.
    static func orthonormalizeColumns(
        _ a: UnsafeMutablePointer<Float>, rows: Int, cols: Int, scratch: UnsafeMutablePointer<Double>
    ) {
        for j in 0..<cols {
            for row in 0..<rows { scratch[j * rows + row] = Double(a[row * cols + j]) }
        }
        for j in 0..<cols {
            let column = scratch + j * rows
            for i in 0..<j {
                let other = scratch + i * rows
                let d = dot(other, column, count: rows)
                for row in 0..<rows { column[row] -= d * other[row] }
            }
            let norm = dot(column, column, count: rows)
            let scale = norm > 0 ? 1 / norm.squareRoot() : 0
            for row in 0..<rows { column[row] *= scale }
        }
        for j in 0..<cols {
            for row in 0..<rows { a[row * cols + j] = Float(scratch[j * rows + row]) }
        }
    }

    /// The dot product of `count` doubles, in eight lanes and then lane by lane: the same order,
    /// and so the same bits, on every CPU (every machine orthonormalises the same P).
    static func dot(_ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>, count: Int) -> Double {
        typealias V = SIMD8<Double>
        var lanes = V()
        var i = 0
        while i + 8 <= count {
            lanes +=
                UnsafeRawPointer(x + i).loadUnaligned(as: V.self) * UnsafeRawPointer(y + i).loadUnaligned(as: V.self)
            i += 8
        }
        var sum = 0.0
        for k in 0..<8 { sum += lanes[k] }
        while i < count {
            sum += x[i] * y[i]
            i += 1
        }
        return sum
    }

    // MARK: checkpoints

    /// The state a checkpoint keeps: every Q (the same everywhere) and each machine's error
    /// feedback (`errors[machine][matrix]`, gathered to rank 0 by `gatherErrors`).
    func tensors(errors: [[Float]]) -> [SafeTensors.Tensor] {
        var out: [SafeTensors.Tensor] = []
        for (k, m) in matrices.enumerated() {
            out.append(.init(name: "powersgd.q.\(m.name)", shape: [m.cols, rank], values: q[k].array))
        }
        for (machine, flat) in errors.enumerated() {
            var offset = 0
            for m in matrices {
                out.append(
                    .init(
                        name: "powersgd.error.\(machine).\(m.name)", shape: [m.rows, m.cols],
                        values: Array(flat[offset..<offset + m.count])))
                offset += m.count
            }
        }
        return out
    }

    private var errorFloats: Int { matrices.reduce(0) { $0 + $1.count } }

    /// Collective over the machines' leaders (others return []): rank 0 gets every machine's error
    /// feedback, by machine; the other leaders [].
    func gatherErrors() -> [[Float]] {
        guard let exchange, let leaders = exchange.leaders else { return [] }
        let n = errorFloats
        var mine = [Float](repeating: 0, count: n)
        var offset = 0
        for (k, m) in matrices.enumerated() {
            mine.withUnsafeMutableBufferPointer {
                (($0.baseAddress! + offset)).update(from: error[k].pointer, count: m.count)
            }
            offset += m.count
        }
        let root = exchange.machine == 0
        var all = [Float](repeating: 0, count: root ? n * exchange.machines : 0)
        exchange.comm.call("MPI_Gather(powersgd error feedback, machines)") {
            mine.withUnsafeBufferPointer { m in
                all.withUnsafeMutableBufferPointer { a in
                    MPI_Gather(m.baseAddress, Int32(n), dpt_float(), a.baseAddress, Int32(n), dpt_float(), 0, leaders)
                }
            }
        }
        return root ? (0..<exchange.machines).map { Array(all[$0 * n..<($0 + 1) * n]) } : []
    }

    /// Rank 0: the PowerSGD tensors of the checkpoint resumed from, until `restore` hands them out.
    private var pending: Checkpoint?

    /// Rank 0: keeps `checkpoint`'s PowerSGD state for `restore`.
    func read(_ checkpoint: Checkpoint) { pending = checkpoint }

    /// Collective over every rank: every rank takes the Q factors, and each machine's leader its
    /// error feedback, from the checkpoint rank 0 read (when it was written by as many machines;
    /// otherwise the error feedback starts at zero). Returns, on rank 0, what it did, for the log.
    func restore(comm: any Communicator) -> String? {
        var message: String?
        var have: Int32 = 0, exact: Int32 = 0
        var errors: [Float] = []
        if let checkpoint = pending, !matrices.isEmpty {
            let byName = Dictionary(checkpoint.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            let qs: [[Float]?] = matrices.map { m in
                guard let t = byName["powersgd.q.\(m.name)"], t.values.count == m.cols * rank else { return nil }
                return t.values
            }
            if qs.allSatisfy({ $0 != nil }) {
                have = 1
                for (k, values) in qs.enumerated() { q[k].pointer.update(from: values!, count: q[k].count) }
                let machines = exchange?.machines ?? 1
                let saved = checkpoint.metadata["powersgd_machines"].flatMap { Int($0) } ?? 0
                for machine in 0..<machines {
                    for m in matrices {
                        if let t = byName["powersgd.error.\(machine).\(m.name)"], t.values.count == m.count {
                            errors += t.values
                        }
                    }
                }
                exact = saved == machines && errors.count == machines * errorFloats ? 1 : 0
                if exact == 0 {
                    message =
                        "the checkpoint's PowerSGD error feedback is of \(saved) machine(s) and this run has \(machines): "
                        + "it starts at zero (the Q factors are kept)"
                }
            } else {
                message = "the checkpoint has no PowerSGD state for these matrices: it starts afresh"
            }
        }
        pending = nil
        comm.broadcast(&have, count: 4, root: 0)
        guard have == 1 else { return message }
        for buffer in q { comm.broadcast(buffer, root: 0) }
        comm.broadcast(&exact, count: 4, root: 0)
        guard exact == 1, let exchange, let leaders = exchange.leaders else { return message }
        let n = errorFloats
        var mine = [Float](repeating: 0, count: n)
        exchange.comm.call("MPI_Scatter(powersgd error feedback, machines)") {
            errors.withUnsafeBufferPointer { a in
                mine.withUnsafeMutableBufferPointer { m in
                    MPI_Scatter(a.baseAddress, Int32(n), dpt_float(), m.baseAddress, Int32(n), dpt_float(), 0, leaders)
                }
            }
        }
        var offset = 0
        for (k, m) in matrices.enumerated() {
            mine.withUnsafeBufferPointer { error[k].pointer.update(from: $0.baseAddress! + offset, count: m.count) }
            offset += m.count
        }
        return message
    }
}
