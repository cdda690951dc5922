@testable import DPTrain
import Testing

@Suite("Sharding and batching")
struct ScheduleTests {
    @Test func permutationIsDeterministicAndComplete() {
        let s = EpochSchedule(sampleCount: 1000, globalBatch: 32, seed: 4)
        let a = s.permutation(epoch: 2)
        #expect(a == s.permutation(epoch: 2))
        #expect(a != s.permutation(epoch: 3))
        #expect(Set(a).count == 1000 && a.allSatisfy { $0 >= 0 && $0 < 1000 })
        #expect(
            EpochSchedule(sampleCount: 10, globalBatch: 3, seed: 1, shuffle: false).permutation(epoch: 0)
                == Array(0..<10))
    }

    @Test(arguments: [1, 2, 3, 4, 7, 32])
    func ranksPartitionEveryBatchIncludingTheLastPartialOne(worldSize: Int) {
        let s = EpochSchedule(sampleCount: 100, globalBatch: 32, seed: 1)
        #expect(s.stepsPerEpoch == 4)  // 32 + 32 + 32 + 4: the partial batch is kept
        for step in 0..<s.stepsPerEpoch {
            let ranges = (0..<worldSize).map { s.localRange(step: step, rank: $0, worldSize: worldSize) }
            #expect(ranges.first!.lowerBound == s.batchRange(step: step).lowerBound)
            #expect(ranges.last!.upperBound == s.batchRange(step: step).upperBound)
            for (a, b) in zip(ranges, ranges.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
            #expect(ranges.allSatisfy { $0.count <= s.maxLocalBatch(worldSize: worldSize) })
        }
    }
}
