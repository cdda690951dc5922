/// Which samples every rank computes on at every step: the world-size-invariant sharding.
///
/// Each epoch has one global permutation of the training set, drawn from `(seed, epoch)`.
/// Global batch `k` is `permutation[k*B ..< min((k+1)*B, n)]`; rank `r` of `R` computes on the
/// `r`-th of `R` near-equal contiguous slices of it. The last, partial batch is kept (as Keras
/// does) and sliced the same way; a rank whose slice is empty contributes a zero gradient, so
/// every rank runs the same number of steps for any world size up to the batch size.
public struct EpochSchedule: Sendable {
    public let sampleCount: Int
    public let globalBatch: Int
    public let seed: UInt64
    public let shuffle: Bool

    public init(sampleCount: Int, globalBatch: Int, seed: UInt64, shuffle: Bool = true) {
        precondition(sampleCount > 0 && globalBatch > 0)
        self.sampleCount = sampleCount
        self.globalBatch = globalBatch
        self.seed = seed
        self.shuffle = shuffle
    }

    public var stepsPerEpoch: Int { (sampleCount - 1) / globalBatch + 1 }

    /// The epoch's global order of sample indices (identical on every rank).
    public func permutation(epoch: Int) -> [Int32] {
        var order = (0..<Int32(sampleCount)).map { $0 }
        guard shuffle else { return order }
        var rng = SplitMix64(seed: CounterRNG.key(seed, 0x5EED_0F_E90C, UInt64(epoch)))
        // Fisher-Yates with an unbiased bounded draw.
        for i in stride(from: sampleCount - 1, to: 0, by: -1) {
            let j = Int(rng.next(below: UInt64(i + 1)))
            order.swapAt(i, j)
        }
        return order
    }

    /// Positions in the permutation that global batch `step` covers.
    public func batchRange(step: Int) -> Range<Int> {
        let start = step * globalBatch
        return start..<min(start + globalBatch, sampleCount)
    }

    /// Positions of the permutation that `rank` of `worldSize` computes on at `step`.
    public func localRange(step: Int, rank: Int, worldSize: Int) -> Range<Int> {
        let batch = batchRange(step: step)
        let (lo, hi) = Self.slice(count: batch.count, part: rank, of: worldSize)
        return batch.lowerBound + lo..<batch.lowerBound + hi
    }

    /// The `part`-th of `parts` near-equal contiguous slices of `0..<count`.
    public static func slice(count: Int, part: Int, of parts: Int) -> (Int, Int) {
        (part * count / parts, (part + 1) * count / parts)
    }

    /// The largest number of samples any rank computes on in one step (a global batch larger
    /// than the data set is the whole data set).
    public func maxLocalBatch(worldSize: Int) -> Int {
        (min(globalBatch, sampleCount) - 1) / worldSize + 1
    }
}
