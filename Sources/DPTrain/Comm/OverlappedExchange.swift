import Foundation

/// Sends the gradient to the other machines while backward is still computing it, as Horovod's
/// background thread and PyTorch DDP's buckets do, and can update each bucket's parameters as soon
/// as its sum arrives, while the next step's forward pass waits only for the layers it has
/// reached (ByteScheduler's pipeline). A communication thread takes the buckets
/// (`buckets(parameters:bucketFloats:)`) as each worker's backward passes them; with an update,
/// the one nearest the gradient's start first when every machine has several ready (each
/// exchange carries which buckets each machine had ready, so all machines pick the same): the
/// next forward pass needs it first. For each it adds the workers' gradients in worker order,
/// sums the bucket over the machines (`MachineExchange`, in machine order), then runs the step's
/// update over it. So the sums and the updates are the bits of the serial step, bucket boundaries
/// or not. The statistic slots (loss, correct count, stop requests), final before any gradient
/// is, ride with the step's first exchange in float32.
///
/// Per step: `begin` before the workers start, `ready(worker:from:)` from each worker's backward
/// (every parameter from that offset on has its gradient), `waitForStatistics` for the step's
/// statistics, and `finish` for the whole step.
/// With an update, `begin` may come before the last step has finished: the forward pass then
/// calls `waitForParameters` before each layer, which returns once the last step's buckets over
/// that layer are updated. Only the communication thread calls MPI between `begin` and `finish`
/// (MPI must grant `MPI_THREAD_SERIALIZED`).
public final class OverlappedExchange: @unchecked Sendable {
    /// The gradient's buckets, from its end (the order backward finishes them).
    public let buckets: [Range<Int>]
    /// Where the statistic slots are, after the gradient.
    private let statistics: Range<Int>
    private let exchange: MachineExchange
    private let bf16: Bool
    private let state = NSCondition()
    /// Guarded by `state`: the workers' gradients, how far each worker has come in the step after
    /// the last finished one, that step's update, whether its statistics and which of its buckets
    /// are done, and how many steps were begun and finished.
    private var workers: [UnsafeMutablePointer<Float>] = []
    private var readyFrom: [Int] = []
    private var update: ((Range<Int>) -> Void)?
    private var statisticsDone = false
    private var done: [Bool]
    private var begun = 0
    private var finished = 0
    /// Seconds worker 0's forward pass waited for parameters since `takeParameterWait`.
    private var parameterWait = 0.0
    /// Seconds the communication thread spent adding, sending and updating the last finished
    /// step's buckets (not waiting for backward): compared with what the step waited for, the
    /// share hidden.
    public private(set) var lastStepSeconds = 0.0

    /// A gradient in `buckets` (from `buckets(parameters:bucketFloats:)`), followed by the
    /// statistic slots, up to `count`.
    init(exchange: MachineExchange, buckets: [Range<Int>], count: Int, bf16: Bool) {
        self.exchange = exchange
        self.bf16 = bf16
        self.buckets = buckets
        statistics = (buckets.first?.upperBound ?? 0)..<count
        done = Array(repeating: false, count: buckets.count)
        // The thread holds this object: both live until the process ends, as the exchange's
        // communicators do.
        let thread = Thread { self.run() }
        thread.name = "dptrain-communication"
        thread.start()
    }

    /// Cuts `0..<parameters` into buckets of `bucketFloats` from its end, the order backward
    /// finishes them (the first layers' parameters are in the last, smaller one). Fewer, larger
    /// buckets pay on a link where each exchange costs a round trip: a bucket of its own for the
    /// first layers was measured slower (docs/PERFORMANCE.md).
    public static func buckets(parameters: Int, bucketFloats: Int) -> [Range<Int>] {
        var cuts: [Range<Int>] = []
        var end = parameters
        while end > 0 {
            cuts.append(max(end - bucketFloats, 0)..<end)
            end = cuts.last!.lowerBound
        }
        return cuts
    }

    /// A step begins: `gradients[w]` is worker `w`'s gradient; the sum goes into `gradients[0]`.
    /// `update`, run on the communication thread over each bucket once its sum has arrived,
    /// applies the step's update to those parameters (nil: the caller updates after `finish`).
    public func begin(gradients: [UnsafeMutablePointer<Float>], update: ((Range<Int>) -> Void)? = nil) {
        state.lock()
        workers = gradients  // shares the caller's storage: no copy, no allocation a step
        if readyFrom.count != gradients.count { readyFrom = Array(repeating: .max, count: gradients.count) }
        self.update = update
        begun += 1
        state.broadcast()
        state.unlock()
    }

    /// Worker `worker`'s floats are final from `offset` on.
    public func ready(worker: Int, from offset: Int) {
        state.lock()
        readyFrom[worker] = min(readyFrom[worker], offset)
        state.broadcast()
        state.unlock()
    }

    /// Waits until the step's statistic slots are summed over the machines (in `gradients[0]`).
    public func waitForStatistics() {
        state.lock()
        while finished < begun && !statisticsDone { state.wait() }
        state.unlock()
    }

    /// Before the forward pass of a layer whose parameters are `range`: waits until the last
    /// step's buckets over `range` are updated.
    public func waitForParameters(_ range: Range<Int>, worker: Int) {
        guard !range.isEmpty else { return }
        state.lock()
        defer { state.unlock() }
        func settled() -> Bool {
            finished >= begun - 1 || buckets.indices.allSatisfy { !buckets[$0].overlaps(range) || done[$0] }
        }
        if settled() { return }
        let started = DispatchTime.now().uptimeNanoseconds
        while !settled() { state.wait() }
        if worker == 0 { parameterWait += Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9 }
    }

    /// The seconds worker 0 waited in `waitForParameters` since the last call.
    public func takeParameterWait() -> Double {
        state.lock()
        defer {
            parameterWait = 0
            state.unlock()
        }
        return parameterWait
    }

    /// Waits until every step begun is summed over the workers and the machines, and updated.
    public func finish() {
        state.lock()
        while finished < begun { state.wait() }
        state.unlock()
    }

    private func run() {
        var step = 0
        // What rides with each exchange: this machine's statistics (not with bf16, which would
        // round them: they then go first, on their own), then, with an update (only then does the
        // next forward pass start on the first layers early), which buckets it had ready when the
        // exchange left. Summed over the machines, the second part is the same on every machine,
        // so every machine picks the same bucket next, as the collectives need.
        let readinessAt = bf16 ? 0 : statistics.count  // where the readiness starts
        let riders = UnsafeMutableBufferPointer<Float>.allocate(capacity: readinessAt + buckets.count)
        var (taken, agreed) = (
            [Bool](repeating: false, count: buckets.count), [Bool](repeating: false, count: buckets.count)
        )
        var summed: [Int] = []
        summed.reserveCapacity(buckets.count)
        while true {
            state.lock()
            while begun == step { state.wait() }
            step += 1
            let (gradients, update) = (workers, self.update)
            state.unlock()
            let prioritize = update != nil
            let carried = UnsafeMutableBufferPointer(
                rebasing: riders[0..<readinessAt + (prioritize ? buckets.count : 0)])
            for i in buckets.indices { (taken[i], agreed[i]) = (false, false) }
            var busy = 0.0
            // Buckets summed whose update has not run: updates wait while another bucket is ready
            // to go, so the exchanges follow each other as closely as backward allows.
            summed.removeAll(keepingCapacity: true)
            func updateSummed() {
                for k in summed {
                    let started = DispatchTime.now().uptimeNanoseconds
                    update?(buckets[k])
                    busy += Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9
                    state.lock()
                    done[k] = true
                    if !done.contains(false) {
                        // The step is over: what the next step's workers report from now on is theirs.
                        for i in buckets.indices { done[i] = false }
                        statisticsDone = false
                        for w in readyFrom.indices { readyFrom[w] = .max }
                        finished = step
                        lastStepSeconds = busy
                    }
                    state.broadcast()
                    state.unlock()
                }
                summed.removeAll(keepingCapacity: true)
            }
            for exchanged in buckets.indices {
                // The bucket nearest the gradient's start that every machine had ready (the next
                // forward pass needs it first); else the next one backward finishes.
                let k =
                    (prioritize ? buckets.indices.last { !taken[$0] && agreed[$0] } : nil)
                    ?? buckets.indices.first { !taken[$0] }!
                taken[k] = true
                state.lock()
                let waiting = readyFrom.max()! > buckets[k].lowerBound
                state.unlock()
                if waiting { updateSummed() }
                state.lock()
                while readyFrom.max()! > buckets[k].lowerBound { state.wait() }
                let from = readyFrom.max()!
                state.unlock()
                let started = DispatchTime.now().uptimeNanoseconds
                let sum = gradients[0]
                if exchanged == 0 {
                    // The statistics are final (they are before any gradient): the workers' sum.
                    for g in gradients.dropFirst() {
                        for i in statistics { sum[i] += g[i] }
                    }
                    if bf16 {
                        exchange.sum(
                            sum, range: statistics, bf16: false, padded: false, pool: nil,
                            operation: "MPI_Alltoall(statistics, machines)")
                    } else {
                        for i in statistics.indices { riders[i - statistics.lowerBound] = sum[i] }
                    }
                }
                if prioritize {
                    for i in buckets.indices { riders[readinessAt + i] = buckets[i].lowerBound >= from ? 1 : 0 }
                }
                let bucket = buckets[k]
                for g in gradients.dropFirst() {
                    for i in bucket { sum[i] += g[i] }
                }
                exchange.sum(
                    sum, range: bucket, bf16: bf16, padded: false, pool: nil,
                    operation: "MPI_Alltoall(bucket, machines)", riders: carried.isEmpty ? nil : carried)
                if prioritize {
                    for i in buckets.indices { agreed[i] = riders[readinessAt + i] > Float(exchange.machines) - 0.5 }
                }
                if exchanged == 0 {
                    for i in 0..<readinessAt {
                        sum[statistics.lowerBound + i] = riders[i]
                        riders[i] = 0  // later exchanges carry zeros there
                    }
                    state.lock()
                    statisticsDone = true
                    state.broadcast()
                    state.unlock()
                }
                busy += Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9
                summed.append(k)
            }
            updateSummed()
        }
    }
}
