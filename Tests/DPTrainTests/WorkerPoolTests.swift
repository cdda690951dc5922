import CAffinity
@testable import DPTrain
import Foundation
import Synchronization
import Testing

@Suite("Worker threads")
struct WorkerPoolTests {
    /// Every run calls each worker exactly once and returns only after all of them: each worker
    /// bumps its own counter without atomics, so a run that returned early or called a worker
    /// twice shows up as a wrong count.
    @Test(.timeLimit(.minutes(1)), arguments: [1, 2, 3, 8])
    func runCallsEveryWorkerOnceAndWaitsForAll(count: Int) {
        let pool = WorkerPool(count: count)
        defer { pool.stop() }
        let counters = UnsafeMutableBufferPointer<Int>.allocate(capacity: count * 16)
        counters.initialize(repeating: 0)
        defer { counters.deallocate() }
        for run in 1...2000 {
            pool.run { w in counters[w * 16] += 1 }
            let seen = (0..<count).map { counters[$0 * 16] }
            if seen != [Int](repeating: run, count: count) {
                Issue.record("after run \(run): \(seen)")
                return
            }
        }
        #expect(pool.map { $0 * 10 } == (0..<count).map { $0 * 10 })
    }

    /// With no spinning, workers sleep between runs: every run must still wake them (a lost
    /// wake-up hangs here and the time limit fails the test).
    @Test(.timeLimit(.minutes(1)))
    func sleepingWorkersAreWokenForEveryRun() {
        let pool = WorkerPool(count: 3, spinSeconds: 0)
        defer { pool.stop() }
        var total = 0
        for _ in 0..<3000 { total += pool.map { $0 + 1 }.reduce(0, +) }
        #expect(total == 3000 * 6)
    }

    /// `cpus` is where the pool's own threads run, the caller keeping its own: how rank 0
    /// evaluates on the cores its machine's other ranks lend it, when mpirun bound it to one.
    @Test(.timeLimit(.minutes(1)))
    func workerThreadsRunOnTheCPUsGiven() {
        func affinity() -> [UInt8] {
            var mask = cpu_set_t()
            #expect(dptrain_get_affinity(&mask, UInt(MemoryLayout<cpu_set_t>.size)) == 0)
            return withUnsafeBytes(of: mask) { Array($0) }
        }
        func listed(_ mask: [UInt8]) -> [Int] { (0..<mask.count * 8).filter { mask[$0 / 8] & (1 << ($0 % 8)) != 0 } }
        let caller = affinity()
        // The caller's lowest CPU alone (on a machine of one CPU, the caller's own set).
        var lowest = [UInt8](repeating: 0, count: caller.count)
        let byte = caller.firstIndex { $0 != 0 }!
        lowest[byte] = caller[byte] & (~caller[byte] &+ 1)
        let cpus = lowest.withUnsafeBytes { $0.load(as: cpu_set_t.self) }
        let pool = WorkerPool(count: 2, cpus: cpus)
        defer { pool.stop() }
        // Each task waits for the other to start, so each thread takes one.
        let started = Atomic<Int>(0)
        let seen = pool.map { _ -> [UInt8] in
            started.add(1, ordering: .relaxed)
            while started.load(ordering: .relaxed) < 2 { sched_yield() }
            return affinity()
        }
        #expect(
            Set(seen.map(listed)) == [listed(caller), listed(lowest)],
            "CPUs seen \(seen.map(listed)): the caller keeps \(listed(caller)), the worker runs on \(listed(lowest))")
    }

    @Test func slicesCoverTheRangeInOrderAtCacheLineBoundaries() {
        for count in 1...5 {
            let pool = WorkerPool(count: count, spinSeconds: 0)
            defer { pool.stop() }
            for n in [0, 1, 15, 16, 17, 1000, 101_772] {
                let slices = (0..<count).map { pool.slice($0, of: n) }
                #expect(slices.first?.lowerBound == 0 && slices.last?.upperBound == n)
                for (a, b) in zip(slices, slices.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
                #expect(slices.allSatisfy { $0.lowerBound % 16 == 0 }, "\(count) workers, \(n) floats: \(slices)")
            }
        }
    }

    /// An optimizer update split into the pool's slices and written to another buffer gives bit for
    /// bit the update done in place in one call.
    @Test(arguments: ["adam", "amsgrad", "adamw", "sgd", "nesterov"])
    func slicedUpdateEqualsOneUpdate(kind: String) {
        let n = 1_000
        func make() -> any Optimizer {
            switch kind {
            case "amsgrad": return Adam(parameterCount: n, amsgrad: true)
            case "adamw": return Adam(parameterCount: n, weightDecay: 0.01)
            case "sgd": return SGD(parameterCount: n, momentum: 0.9)
            case "nesterov": return SGD(parameterCount: n, momentum: 0.9, nesterov: true)
            default: return Adam(parameterCount: n)
            }
        }
        let (whole, sliced) = (make(), make())
        let (a, g) = (FloatBuffer(count: n), FloatBuffer(count: n))
        // The sliced updates go out of place, alternating between two buffers, as a trainer with
        // several workers runs them.
        var (b, spare) = (FloatBuffer(count: n), FloatBuffer(count: n))
        for i in 0..<n { a.pointer[i] = sin(Float(i)); b.pointer[i] = a.pointer[i] }
        let pool = WorkerPool(count: 3)
        defer { pool.stop() }
        for step in 0..<4 {
            for i in 0..<n { g.pointer[i] = cos(Float(i * (step + 1))) * 0.1 }
            #expect(whole.step(parameters: a.pointer, gradients: g.pointer, count: n, learningRate: 0.01))
            sliced.iterations += 1
            let finite = pool.map { w in
                sliced.update(
                    parameters: b.pointer, into: spare.pointer, gradients: g.pointer, range: pool.slice(w, of: n),
                    learningRate: 0.01)
            }
            #expect(finite == [true, true, true])
            (b, spare) = (spare, b)
        }
        #expect(a.array == b.array)
        #expect(zip(whole.state, sliced.state).allSatisfy { $0.buffer.array == $1.buffer.array })
    }

    /// Workers evaluating parts of a data set add up to the evaluation of the whole by one model.
    /// The one model takes the samples in chunks of 10, the workers in chunks of 7 from other
    /// offsets: each chunk is an sgemm call, and a BLAS may round a row differently depending on
    /// its place in a call (OpenBLAS's AVX2 kernels do), so the summed loss agrees to float
    /// rounding (1e-6 relative; measured 2.5e-9 with those kernels, 0 with SSE/AVX ones), while
    /// the predictions, hence accuracy and confusion matrix, are the same. A sample counted twice
    /// or left out moves the loss by about 1%.
    @Test func evaluationSplitAcrossWorkersMatchesOneModel() throws {
        let specs: [LayerSpec] = [
            .flatten, .dense(units: 8, activation: .relu, l2: 0), .dense(units: 3, activation: .softmax, l2: 0),
        ]
        let count = 103
        var rng = SplitMix64(seed: 5)
        let images = (0..<count * 16).map { _ in UInt8(rng.next() % 256) }
        let labels = (0..<count).map { _ in UInt8(rng.next() % 3) }
        let data = Dataset(images: images, labels: labels, imageShape: [4, 4, 1], numClasses: 3)
        let one = try Model(specs: specs, inputShape: [4, 4, 1], loss: .sparseCategoricalCrossentropy, capacity: 10)
        one.initialize(seed: 2)
        let replicas =
            try [one]
            + (1..<3).map { _ in
                try Model(
                    specs: specs, inputShape: [4, 4, 1], loss: .sparseCategoricalCrossentropy, capacity: 7,
                    sharingParametersOf: one)
            }
        let pool = WorkerPool(count: 3)
        defer { pool.stop() }
        let (whole, split) = (Evaluator.evaluate(one, on: data), Evaluator.evaluate(replicas, on: data, pool: pool))
        #expect(split.count == count && split.accuracy == whole.accuracy && split.confusion == whole.confusion)
        #expect(abs(split.loss - whole.loss) <= 1e-6 * whole.loss, "split \(split.loss), whole \(whole.loss)")
        #expect(whole.confusion.joined().reduce(0, +) == count)
    }
}
