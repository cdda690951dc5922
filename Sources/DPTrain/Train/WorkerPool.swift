import Foundation
import Synchronization

/// A fixed team of `count` threads that run one closure together: `run { worker in ... }` calls
/// it once for each worker index in `0..<count` (index 0 on the calling thread) and returns when
/// every call has returned, with their writes visible to the caller.
///
/// A training step runs three of these back to back, so the wake-up must cost microseconds, not
/// the tens a kernel wake-up costs: an idle worker spins (yielding its core to any other runnable
/// thread) for `spinSeconds`, then sleeps on a condition until the next run, so a pool between
/// epochs costs no CPU. One caller at a time; `run` is not reentrant.
public final class WorkerPool: @unchecked Sendable {
    public let count: Int
    let spinSeconds: Double
    /// Bumped once per run; workers wait for it to move past the run they last did.
    private let generation = Atomic<Int>(0)
    /// Workers (other than 0) that have not finished the current run.
    private let pending = Atomic<Int>(0)
    /// Workers asleep on `wakeUp` (the caller signals only when there are some).
    private let sleepers = Atomic<Int>(0)
    private let wakeUp = NSCondition()
    /// The closure of the current run; written only while no worker runs.
    private var job: ((Int) -> Void)?
    private var stopping = false

    public init(count: Int, spinSeconds: Double = 0.002) {
        precondition(count >= 1)
        self.count = count
        self.spinSeconds = spinSeconds
        for index in 1..<count {
            // The thread holds the pool until `stop()` lets it return.
            let thread = Thread { self.workerLoop(index) }
            thread.name = "dptrain-worker-\(index)"
            thread.start()
        }
    }

    /// Ends the worker threads (they hold the pool; call this when done with it).
    public func stop() {
        guard count > 1, !stopping else { return }
        stopping = true
        start()
    }

    /// Calls `body(worker)` for every worker index at once; returns when all have returned.
    public func run(_ body: (Int) -> Void) {
        guard count > 1 else { return body(0) }
        precondition(!stopping, "WorkerPool.run after stop()")
        withoutActuallyEscaping(body) { body in
            job = body
            start()
            body(0)
            _ = Self.spin(until: { pending.load(ordering: .acquiring) == 0 }, seconds: .infinity)
            job = nil
        }
    }

    /// `[body(0), ..., body(count - 1)]`, computed by the workers at once.
    public func map<T>(_ body: (Int) -> T) -> [T] {
        let results = UnsafeMutableBufferPointer<T?>.allocate(capacity: count)
        results.initialize(repeating: nil)
        defer {
            _ = results.deinitialize()
            results.deallocate()
        }
        run { w in results[w] = body(w) }
        return results.map { $0! }
    }

    /// The `worker`-th of `count` near-equal slices of `0..<n`, cut at multiples of 16 floats
    /// (64-byte cache lines), so workers that write neighbouring slices share no line.
    public func slice(_ worker: Int, of n: Int) -> Range<Int> {
        func cut(_ k: Int) -> Int { k == count ? n : (n * k / count) & ~15 }
        return cut(worker)..<cut(worker + 1)
    }

    private func start() {
        pending.store(count - 1, ordering: .relaxed)
        generation.add(1, ordering: .sequentiallyConsistent)
        // Pairs with the sleeper's increment-then-check in `waitForRun`: either the sleeper sees
        // the new generation, or this load sees the sleeper and the broadcast wakes it.
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            wakeUp.lock()
            wakeUp.broadcast()
            wakeUp.unlock()
        }
    }

    private func workerLoop(_ index: Int) {
        var seen = 0
        while true {
            seen = waitForRun(after: seen)
            if stopping { return }
            job!(index)
            pending.subtract(1, ordering: .releasing)
        }
    }

    private func waitForRun(after seen: Int) -> Int {
        if Self.spin(until: { generation.load(ordering: .acquiring) != seen }, seconds: spinSeconds) {
            return generation.load(ordering: .acquiring)
        }
        wakeUp.lock()
        sleepers.add(1, ordering: .sequentiallyConsistent)
        while generation.load(ordering: .sequentiallyConsistent) == seen { wakeUp.wait() }
        sleepers.subtract(1, ordering: .sequentiallyConsistent)
        wakeUp.unlock()
        return generation.load(ordering: .acquiring)
    }

    /// Polls `done` until it is true (returns true) or `seconds` have passed (returns false),
    /// yielding the core now and then so an oversubscribed machine still makes progress.
    @inline(__always)
    private static func spin(until done: () -> Bool, seconds: Double) -> Bool {
        let deadline = seconds.isFinite ? DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9) : .max
        var polls = 0
        while !done() {
            polls += 1
            if polls & 255 == 0 {
                sched_yield()
                if DispatchTime.now().uptimeNanoseconds > deadline { return false }
            }
        }
        return true
    }
}

