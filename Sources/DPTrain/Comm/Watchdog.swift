import Foundation

/// Ends this rank when one collective operation takes longer than `timeout` seconds, after
/// printing which rank, which operation and which global step, and, with a `probe`, which other
/// ranks no longer answer on the network (a machine or link that went down). A rank that waits
/// forever for a dead, stuck or unreachable peer would otherwise hang the job; its exit
/// (`ExitStatus.collectiveTimeout`) makes mpirun stop every rank.
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
    /// Asked, on a timeout, which ranks do not answer (set once at start-up).
    public var probe: PeerProbe?

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
        let host = probe.map { " on \($0.peers[rank].host)" } ?? ""
        var message = String(format: "dptrain: error: watchdog: rank %d%@ has waited %.0f s in %@ at %@ (timeout %.0f s); ",
                             rank, host, Self.now() - started, "\(op)", at, timeout)
        if let probe {
            let silent = probe.unreachable()
            message += silent.isEmpty
                ? "every other rank's machine answers, so one of them is stuck"
                : (silent.map { "rank \($0.rank) on \($0.host)" }.joined(separator: ", ")
                   + (silent.count == 1 ? " does" : " do") + " not answer on the network: its machine or link is down, or its process died")
        } else {
            message += "another rank is stuck or dead"
        }
        message += "; stopping the job\n"
        FileHandle.standardError.write(Data(message.utf8))
        _exit(ExitStatus.collectiveTimeout)
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }
}
