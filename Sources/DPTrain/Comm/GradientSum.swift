import Foundation

/// How each step's gradient, with the statistics riding behind it, becomes the sum over every
/// worker of every rank, and which part of the parameters this rank then updates.
///
/// Contract: every rank calls `sum` once a step, with `local` holding its workers' sum (already
/// in worker order) of `count` floats: the gradient, then the statistic slots. It returns the
/// sum over ranks, the same bits on every rank: its statistics are final, and so is its gradient
/// in `updateRange`, to which `finish` has been applied (`finish(sum, updateRange)`); the rest of
/// the gradient is final for every rank after the next `agree`. This rank updates the parameters
/// in `updateRange`, then calls `agree` once, which every rank calls at the same point; nothing
/// writes to the sum until the next call of `sum`. The sum over ranks is taken in rank order
/// wherever ranks meet in memory, so that N ranks on one machine and N machines of one rank
/// compute the same bits (see `SharedMemoryGradientSum`).
public protocol GradientSum: AnyObject {
    /// The floats summed: the gradient and the statistic slots.
    var count: Int { get }
    /// The buffer the rank's workers should leave their sum in (at least `count` floats), or nil
    /// to keep their own: in a segment the ranks of the machine share, so no copy is made.
    var localBuffer: FloatBuffer? { get }
    /// The parameters (indices into the gradient) this rank updates: all of them, or, where the
    /// ranks of a machine share their parameters (`share`), this rank's part.
    var updateRange: Range<Int> { get }
    /// What the summation crosses, for the start-up line.
    var description: String { get }
    /// Where the gradient travels while backward runs: the trainer tells it each worker's
    /// progress, and the workers do not add their gradients or statistics themselves.
    var overlap: OverlappedExchange? { get }
    /// Sums `local` (`count` floats) over the ranks; see the contract above.
    func sum(
        _ local: UnsafeMutablePointer<Float>, finish: (UnsafeMutablePointer<Float>, Range<Int>) -> Void
    )
        -> SummedGradient
    /// Where the ranks of a machine can share one copy of the parameters and optimizer state:
    /// copies `values` and `state` (the same on every rank) there and returns the shared buffers,
    /// which each rank then updates in `updateRange` only; nil where each rank keeps its own.
    /// Collective.
    func share(values: FloatBuffer, state: [FloatBuffer]) -> SharedParameters?
    /// True when every rank that shares this rank's parameters passed true (just `ok` where none
    /// does). With shared parameters it is also the point after which each rank sees the others'
    /// updates and sums: every rank calls it after updating, and may call it once before.
    func agree(_ ok: Bool) -> Bool
    /// Runs `work` on rank 0 alone while the other ranks of its machine wait, without spinning,
    /// until it returns: `work` may use their cores (`LentCores`; rank 0 evaluates with them).
    /// Every rank calls it at the same point; the other ranks of rank 0's machine return after
    /// `work` has, the ranks of other machines at once.
    func lendCoresToRoot(_ work: (LentCores) throws -> Void) rethrows
}

/// What the other ranks of rank 0's machine lend it while they wait (`GradientSum.lendCoresToRoot`).
public struct LentCores: Sendable {
    /// How many ranks wait.
    public let ranks: Int
    /// The CPUs that rank 0 and the waiting ranks may run on (the union of their affinity masks,
    /// as `sched_getaffinity` gave them at start-up), for the threads rank 0 starts on their
    /// cores: a rank that mpirun binds to one core would otherwise keep them all on its own.
    public let cpus: cpu_set_t?

    public static let none = LentCores(ranks: 0, cpus: nil)
}

/// The parameters and optimizer state the ranks of a machine share (`GradientSum.share`): every
/// rank writes its slice of each update into `spare`, and after `agree` all switch to it, in step.
public struct SharedParameters {
    public let values: FloatBuffer
    public let spare: FloatBuffer
    public let state: [FloatBuffer]
}

/// A step's sum over ranks (see `GradientSum`): the gradient, valid until the next sum, and the
/// statistic slots that rode with it.
public struct SummedGradient {
    public let gradient: UnsafeMutablePointer<Float>
    public let statistics: UnsafePointer<Float>
}

/// The sum as one `MPI_Allreduce` of the whole buffer, in place (the gradient as bfloat16 with
/// compression, the statistics as float32). MPI chooses the order of the sum. Used with one rank,
/// and wherever the shared segment cannot be made.
public final class AllreduceGradientSum: GradientSum {
    public let count: Int
    public var localBuffer: FloatBuffer? { nil }
    public var updateRange: Range<Int> { 0..<count - statisticSlots }
    public var overlap: OverlappedExchange? { nil }
    let comm: any Communicator
    let pool: WorkerPool
    private let statisticSlots: Int
    /// With bf16 compression and several ranks: the gradient as it travels (`BFloat16`).
    private let compressed: UnsafeMutableBufferPointer<UInt16>?

    /// `count` floats, of which the last `statistics` are never compressed.
    public init(
        comm: any Communicator, count: Int, statistics: Int, compression: AllreduceCompression, pool: WorkerPool
    ) {
        self.comm = comm
        self.count = count
        self.pool = pool
        let n = count - statistics
        compressed = compression == .bf16 && comm.worldSize > 1 ? .allocate(capacity: n) : nil
        statisticSlots = statistics
    }

    deinit { compressed?.deallocate() }

    public var description: String {
        comm.worldSize == 1 ? "one rank" : "MPI_Allreduce" + (compressed == nil ? "" : " as bfloat16")
    }

    public func sum(
        _ local: UnsafeMutablePointer<Float>, finish: (UnsafeMutablePointer<Float>, Range<Int>) -> Void
    )
        -> SummedGradient
    {
        let n = count - statisticSlots
        if let compressed {
            let halves = compressed.baseAddress!
            pool.run { w in BFloat16.compress(local, into: halves, range: pool.slice(w, of: n)) }
            comm.allreduceSumBF16(halves, count: n)
            pool.run { w in BFloat16.decompress(halves, into: local, range: pool.slice(w, of: n)) }
            comm.allreduceSum(local + n, count: statisticSlots)
        } else if comm.worldSize > 1 {
            comm.allreduceSum(local, count: count)
        }
        finish(local, 0..<n)
        return SummedGradient(gradient: local, statistics: local + n)
    }

    public func share(values: FloatBuffer, state: [FloatBuffer]) -> SharedParameters? { nil }

    /// Every rank holds the whole sum, so every rank reaches the same verdict without asking.
    public func agree(_ ok: Bool) -> Bool { ok }

    /// No rank lends its cores: ranks here may not share a machine's memory.
    public func lendCoresToRoot(_ work: (LentCores) throws -> Void) rethrows {
        if comm.isRoot { try work(.none) }
    }
}
