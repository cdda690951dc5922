/// How each step's gradient, with the statistics riding behind it, becomes the sum over every
/// worker of every rank.
///
/// Contract: every rank calls `sum` once a step, with `local` holding its workers' sum (already
/// in worker order) of `count` floats: the gradient, then the statistic slots. It returns the sum
/// over ranks, the same bits on every rank, valid until the next call; `finish` has been applied
/// to every element of it once (each rank is handed a part: `finish(sum, range)`), and nothing
/// else writes to it until the next call. The sum over ranks is taken in rank order wherever
/// ranks meet in memory, so that N ranks on one machine and N machines of one rank compute the
/// same bits (see `SharedMemoryGradientSum`).
public protocol GradientSum: AnyObject {
    /// The floats summed: the gradient and the statistic slots.
    var count: Int { get }
    /// The buffer the rank's workers should leave their sum in (at least `count` floats), or nil
    /// to keep their own: in a segment the ranks of the machine share, so no copy is made.
    var localBuffer: FloatBuffer? { get }
    /// What the summation crosses, for the start-up line.
    var description: String { get }
    /// Sums `local` (`count` floats) over the ranks; see the contract above.
    func sum(
        _ local: UnsafeMutablePointer<Float>, finish: (UnsafeMutablePointer<Float>, Range<Int>) -> Void
    ) -> UnsafeMutablePointer<Float>
}

/// The sum as one `MPI_Allreduce` of the whole buffer, in place (the gradient as bfloat16 with
/// compression, the statistics as float32). MPI chooses the order of the sum. Used with one rank,
/// and wherever the shared segment cannot be made.
public final class AllreduceGradientSum: GradientSum {
    public let count: Int
    public var localBuffer: FloatBuffer? { nil }
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
    ) -> UnsafeMutablePointer<Float> {
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
        finish(local, 0..<count)
        return local
    }
}
