import CAffinity
import Foundation
import Synchronization

/// A fixed team of `count` threads that run one closure together: `run { task in ... }` calls
/// it once for each task index in `0..<count` and returns when every call has returned, with
/// their writes visible to the caller.
///
/// A task is a worker's share (its replica, its slice of a buffer), not a thread: the threads,
/// the caller among them, claim the tasks of a run one by one, so a task whose thread has lost
/// its core to another process is taken by a thread that has one, instead of every thread waiting
/// for it (on a busy 2-core host, a second thread then costs nothing: measured, one competing
/// process made a 1 x 2 MLP epoch 2-4x slower when each thread waited for its own task). Which
/// thread runs a task changes no result.
///
/// A training step runs three of these back to back, so starting one must cost microseconds,
/// not the tens a kernel wake-up costs: an idle thread spins (yielding its core to any other
/// runnable thread) for `spinSeconds`, then sleeps on a condition until the next run, so a pool
/// between epochs costs no CPU. One caller at a time; `run` is not reentrant.
public final class WorkerPool: @unchecked Sendable {
    public let count: Int
    let spinSeconds: Double
    /// The run (high 32 bits, bumped once per run) and its next unclaimed task (low 32 bits):
    /// a claim is a compare-and-swap on both, so a thread late for a run can never claim a task
    /// of the next one with the closure of the last.
    private let state = Atomic<Int>(0)
    /// Tasks of the current run not finished yet.
    private let pending = Atomic<Int>(0)
    /// Threads asleep on `wakeUp` (the caller signals only when there are some).
    private let sleepers = Atomic<Int>(0)
    private let wakeUp = NSCondition()
    /// The closure of the current run; written only while no task of it can be claimed.
    private var job: ((Int) -> Void)?
    private var stopping = false

    /// `cpus`: where the threads other than the caller may run (their affinity), when not where
    /// the caller may.
    public init(count: Int, spinSeconds: Double = 0.002, cpus: cpu_set_t? = nil) {
        precondition(count >= 1 && count < 1 << 31)
        self.count = count
        self.spinSeconds = spinSeconds
        for index in 1..<count {
            // The thread holds the pool until `stop()` lets it return.
            let thread = Thread {
                if var cpus {
                    // Refused (a CPU outside this job's cgroup): the thread stays where it was.
                    _ = dptrain_set_affinity(&cpus, UInt(MemoryLayout<cpu_set_t>.size))
                }
                self.workerLoop()
            }
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

    /// Calls `body(task)` for every task index at once; returns when all have returned.
    public func run(_ body: (Int) -> Void) {
        guard count > 1 else { return body(0) }
        precondition(!stopping, "WorkerPool.run after stop()")
        withoutActuallyEscaping(body) { body in
            job = body
            let run = start()
            claimTasks(of: run)
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
    /// (64-byte cache lines), so tasks that write neighbouring slices share no line.
    public func slice(_ worker: Int, of n: Int) -> Range<Int> {
        func cut(_ k: Int) -> Int { k == count ? n : (n * k / count) & ~15 }
        return cut(worker)..<cut(worker + 1)
    }

    /// Opens a new run with every task unclaimed and wakes sleeping threads; returns the run's number.
    @discardableResult
    private func start() -> Int {
        pending.store(count, ordering: .relaxed)
        let run = (state.load(ordering: .relaxed) >> 32) &+ 1
        state.store(run << 32, ordering: .sequentiallyConsistent)
        // Pairs with the sleeper's increment-then-check in `waitForRun`: either the sleeper sees
        // the new run, or this load sees the sleeper and the broadcast wakes it.
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            wakeUp.lock()
            wakeUp.broadcast()
            wakeUp.unlock()
        }
        return run
    }

    /// Claims and runs tasks of run `run` until none is left unclaimed.
    private func claimTasks(of run: Int) {
        while true {
            let current = state.load(ordering: .acquiring)
            guard current >> 32 == run, current & 0xFFFF_FFFF < count else { return }
            guard
                state.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
                    .exchanged
            else { continue }
            // A claimed task keeps the run open (pending > 0), so `job` is this run's closure.
            job!(current & 0xFFFF_FFFF)
            pending.subtract(1, ordering: .releasing)
        }
    }

    private func workerLoop() {
        var seen = 0
        while true {
            seen = waitForRun(after: seen)
            if stopping { return }
            claimTasks(of: seen)
        }
    }

    /// Waits for a run after run `seen`; returns its number.
    private func waitForRun(after seen: Int) -> Int {
        func run() -> Int { state.load(ordering: .acquiring) >> 32 }
        if Self.spin(until: { run() != seen }, seconds: spinSeconds) { return run() }
        wakeUp.lock()
        sleepers.add(1, ordering: .sequentiallyConsistent)
        while state.load(ordering: .sequentiallyConsistent) >> 32 == seen { wakeUp.wait() }
        sleepers.subtract(1, ordering: .sequentiallyConsistent)
        wakeUp.unlock()
        return run()
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
