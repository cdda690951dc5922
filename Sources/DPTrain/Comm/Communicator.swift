import Foundation

/// The collective operations data-parallel training needs, over `worldSize` ranks.
///
/// Contract: every rank calls the same collectives in the same order with the same counts.
/// Implementations never return a failure: a failed collective prints what failed on which
/// rank and stops the whole job with a non-zero exit, so no rank waits forever.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var worldSize: Int { get }
    /// The ranks on this machine (sharing its memory), this one included.
    var localSize: Int { get }
    /// A short description for logs, e.g. "OpenMPI 4.1.4, 2 ranks".
    var summary: String { get }

    /// In place: every rank ends with the element-wise sum over ranks.
    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int)
    /// In place, on bfloat16 values (`BFloat16`): every rank ends with their sum over ranks,
    /// each pairwise sum taken in float32 and rounded back.
    func allreduceSumBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int)
    /// In place, on doubles: every rank ends with the element-wise max over ranks.
    func allreduceMax(_ buffer: UnsafeMutablePointer<Double>, count: Int)
    /// `bytes` of `root` are copied into `bytes` on every other rank.
    func broadcast(_ bytes: UnsafeMutableRawPointer, count: Int, root: Int)
    /// Every rank's value, indexed by rank.
    func allgather(_ value: Int32) -> [Int32]
    /// Every rank's values (the same count on each), indexed by rank.
    func allgather(_ values: [Double]) -> [[Double]]
    /// Every rank's bytes (the same count on each), indexed by rank.
    func allgather(bytes: [UInt8]) -> [[UInt8]]
    func barrier()
    /// Ends the whole job at once with `code` (after `message` is printed by this rank).
    func abort(code: Int32, message: String) -> Never
    /// Ends communication normally; the last call.
    func finalize()
    /// What sums each step's gradient (`count` floats, the last `statistics` of them statistic
    /// slots that are never compressed; `stateBuffers`: how many parameter-sized buffers the optimizer
    /// keeps, which ranks sharing a machine may share too; `buckets`: the gradient's buckets
    /// (`OverlappedExchange.buckets`) when it may travel between machines while backward runs, nil:
    /// after it; `powerSGD`: with
    /// that compression, what compresses the machines' exchange). Collective: every rank calls it at the same point.
    func makeGradientSum(
        count: Int, statistics: Int, stateBuffers: Int, buckets: [Range<Int>]?, compression: AllreduceCompression,
        powerSGD: PowerSGD?, pool: WorkerPool, log: (String) -> Void
    ) -> any GradientSum
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    public func makeGradientSum(
        count: Int, statistics: Int, stateBuffers: Int, buckets: [Range<Int>]?, compression: AllreduceCompression,
        powerSGD: PowerSGD?, pool: WorkerPool, log: (String) -> Void
    ) -> any GradientSum {
        AllreduceGradientSum(comm: self, count: count, statistics: statistics, compression: compression, pool: pool)
    }

    public func broadcast(_ buffer: FloatBuffer, root: Int = 0) {
        broadcast(UnsafeMutableRawPointer(buffer.pointer), count: buffer.count * 4, root: root)
    }

    /// Runs `work` on every rank and agrees on the outcome: if any rank threw, every rank throws
    /// `CollectiveFailure` carrying the message of the lowest failing rank (rank 0's, if it
    /// failed), which only that rank prints. Nobody waits on a rank that already gave up.
    public func agree<T>(_ work: () throws -> T) throws -> T {
        var result: Result<T, Error>
        do { result = .success(try work()) } catch { result = .failure(error) }
        let failed = allgather(result.isFailure ? 1 : 0)
        guard let first = failed.firstIndex(of: 1) else { return try result.get() }
        if case .failure(let error) = result, rank == first {
            throw CollectiveFailure(reporter: true, underlying: error)
        }
        throw CollectiveFailure(reporter: false, underlying: nil, failedRank: first)
    }
}

/// Thrown on every rank after `agree` found a failure; `reporter` is true on the one rank that
/// should print `underlying`.
public struct CollectiveFailure: Error, CustomStringConvertible {
    public let reporter: Bool
    public let underlying: Error?
    public var failedRank: Int = 0

    public var description: String {
        underlying.map { "\($0)" } ?? "rank \(failedRank) failed (see its message)"
    }
}

extension Result {
    var isFailure: Bool { if case .failure = self { return true } else { return false } }
}
