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
        guard let report = diagnosis(waitingLongerThan: timeout, probeTimeout: 2) else { return }
        FileHandle.standardError.write(
            Data("dptrain: error: watchdog: \(report) (timeout \(Int(timeout)) s); stopping the job\n".utf8))
        _exit(ExitStatus.collectiveTimeout)
    }

    /// Printed when the job is being stopped (a signal) while this rank waits in a collective:
    /// mpirun ends a job this way when it loses a machine, before the timeout. Prints nothing
    /// when no collective has been waiting for a second.
    public func reportIfWaiting() {
        guard let report = diagnosis(waitingLongerThan: 1, probeTimeout: 0.5) else { return }
        FileHandle.standardError.write(Data("dptrain: error: stopped while \(report)\n".utf8))
    }

    /// "rank 0 on dpt-h1 has waited 16 s in MPI_Allreduce(sum) at global step 202; rank 2 on
    /// dpt-h3 does not answer on the network: ...", if a collective has waited longer than `seconds`.
    private func diagnosis(waitingLongerThan seconds: Double, probeTimeout: Double) -> String? {
        lock.lock()
        let (op, started, step) = (operation, startedAt, step)
        lock.unlock()
        guard let started, Self.now() - started > seconds else { return nil }
        let at = step < 0 ? "start-up" : "global step \(step + 1)"
        let host = probe.map { " on \($0.peers[rank].host)" } ?? ""
        var message = "rank \(rank)\(host) has waited \(Int(Self.now() - started)) s in \(op) at \(at); "
        if let probe {
            let silent = probe.unreachable(timeout: probeTimeout)
            message +=
                silent.isEmpty
                ? "every other rank's machine answers, so one of them is stuck"
                : (silent.map { "rank \($0.rank) on \($0.host)" }.joined(separator: ", ")
                    + (silent.count == 1 ? " does" : " do")
                    + " not answer on the network: its machine or link is down, or its process died")
        } else {
            message += "another rank is stuck or dead"
        }
        return message
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }
}
