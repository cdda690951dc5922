import Foundation

/// Sends the gradient to the other machines while backward is still computing it, as Horovod's
/// background thread and PyTorch DDP's buckets do: the gradient is cut into buckets from its end
/// (backward computes the last layers' gradients first), and a communication thread takes each
/// bucket as soon as every worker's backward has passed it: it adds the workers' gradients over
/// the bucket in worker order, then sums the bucket over the machines (`MachineExchange`, in
/// machine order). So the sums are the bits of the serial step, bucket boundaries or not.
///
/// Per step: `begin` before the workers start, `ready(worker:from:)` from each worker's backward
/// (every parameter from that offset on has its gradient), `finish` once they are done, which
/// returns when every bucket is summed. Only the communication thread calls MPI between `begin`
/// and `finish` (MPI must grant `MPI_THREAD_SERIALIZED`).
public final class OverlappedExchange: @unchecked Sendable {
    /// The buckets, in the order they are sent (from the end of the gradient).
    public let buckets: [Range<Int>]
    private let exchange: MachineExchange
    private let bf16: Bool
    private let state = NSCondition()
    /// Guarded by `state`: the workers' gradients, how far each worker's backward has come, and
    /// how many steps were begun and finished.
    private var workers: [UnsafeMutablePointer<Float>] = []
    private var readyFrom: [Int] = []
    private var begun = 0
    private var finished = 0
    /// Seconds the communication thread spent adding and sending the last finished step's buckets
    /// (not waiting for backward): compared with the wait after backward, the share hidden.
    public private(set) var lastStepSeconds = 0.0

    /// `parameters` floats cut into buckets of `bucketFloats` (the first bucket sent is the end).
    init(exchange: MachineExchange, parameters: Int, bucketFloats: Int, bf16: Bool) {
        self.exchange = exchange
        self.bf16 = bf16
        var cuts: [Range<Int>] = []
        var end = parameters
        while end > 0 {
            cuts.append(max(end - bucketFloats, 0)..<end)
            end = cuts.last!.lowerBound
        }
        buckets = cuts
        // The thread holds this object: both live until the process ends, as the exchange's
        // communicators do.
        let thread = Thread { self.run() }
        thread.name = "dptrain-communication"
        thread.start()
    }

    /// A step begins: `gradients[w]` is worker `w`'s gradient; the sum goes into `gradients[0]`.
    public func begin(gradients: [UnsafeMutablePointer<Float>]) {
        state.lock()
        workers = gradients  // shares the caller's storage: no copy, no allocation a step
        if readyFrom.count == gradients.count {
            for w in readyFrom.indices { readyFrom[w] = .max }
        } else {
            readyFrom = Array(repeating: .max, count: gradients.count)
        }
        begun += 1
        state.broadcast()
        state.unlock()
    }

    /// Worker `worker`'s gradients are final from parameter `offset` on.
    public func ready(worker: Int, from offset: Int) {
        state.lock()
        readyFrom[worker] = min(readyFrom[worker], offset)
        state.broadcast()
        state.unlock()
    }

    /// Waits until every bucket of the step is summed over the workers and the machines.
    public func finish() {
        state.lock()
        while finished < begun { state.wait() }
        state.unlock()
    }

    private func run() {
        var step = 0
        while true {
            state.lock()
            while begun == step { state.wait() }
            step = begun
            let gradients = workers
            state.unlock()
            var busy = 0.0
            for bucket in buckets {
                state.lock()
                while readyFrom.contains(where: { $0 > bucket.lowerBound }) { state.wait() }
                state.unlock()
                let started = DispatchTime.now().uptimeNanoseconds
                defer { busy += Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9 }
                let sum = gradients[0]
                for g in gradients.dropFirst() {
                    for i in bucket { sum[i] += g[i] }
                }
                exchange.sum(
                    sum, range: bucket, bf16: bf16, padded: false, pool: nil,
                    operation: "MPI_Alltoall(bucket, machines)")
            }
            state.lock()
            finished = step
            lastStepSeconds = busy
            state.broadcast()
            state.unlock()
        }
    }
}
