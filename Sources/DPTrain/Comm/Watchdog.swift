import Foundation

/// Ends this rank when one collective operation takes longer than `timeout` seconds, after
/// printing which rank, which operation and which global step. A rank that waits forever for a
/// dead or stuck peer would otherwise hang the job; its exit makes mpirun stop every rank.
///
/// `begin`/`end` bracket each collective (two uncontended lock operations); a background thread
/// checks once per `pollInterval`.
public final class Watchdog: @unchecked Sendable {
    public let timeout: Double
    public let rank: Int
    private let lock = NSLock()
    private var operation: StaticString = ""
    private var startedAt: Double?
    /// The global step in progress (-1: start-up), set by the trainer; nothing here allocates.
    private var step = -1

    public init(timeout: Double, rank: Int, pollInterval: Double = 0.5) {
        self.timeout = timeout
        self.rank = rank
        let thread = Thread { [weak self] in
            while let self {
                Thread.sleep(forTimeInterval: pollInterval)
                self.check()
            }
        }
        thread.name = "dptrain-watchdog"
        thread.start()
    }

    public func setStep(_ value: Int) {
        lock.lock(); step = value; lock.unlock()
    }

    public func begin(_ op: StaticString) {
        let now = Self.now()
        lock.lock(); operation = op; startedAt = now; lock.unlock()
    }

    public func end() {
        lock.lock(); startedAt = nil; lock.unlock()
    }

    private func check() {
        lock.lock()
        let (op, started, step) = (operation, startedAt, step)
        lock.unlock()
        guard let started, Self.now() - started > timeout else { return }
        let at = step < 0 ? "start-up" : "global step \(step + 1)"
        let message = String(format: "dptrain: error: watchdog: rank %d has waited %.0f s in %@ at %@ (timeout %.0f s): another rank is stuck or dead; stopping the job\n",
                             rank, Self.now() - started, "\(op)", at, timeout)
        FileHandle.standardError.write(Data(message.utf8))
        _exit(3)
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }
}
