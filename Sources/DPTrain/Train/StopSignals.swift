import Foundation
import Synchronization

/// Turns SIGTERM, SIGINT and SIGUSR1 into a request to stop training cleanly, the way schedulers
/// and people ask: SLURM and Kubernetes send SIGTERM before killing a job, SLURM's
/// `--signal=USR1@T` warns T seconds ahead, mpirun forwards SIGUSR1 to every rank as it is, and
/// Ctrl-C sends SIGINT.
///
/// The first signal only sets `received`: the trainer reads it into the next step's allreduce,
/// so every rank learns of it at the same step, finishes that step, and rank 0 writes a
/// checkpoint of it (see `Trainer`). A second signal ends the process at once, with the status
/// of a process killed by it (128 + the signal): a checkpoint being written is abandoned as a
/// hidden temporary file, which the next save removes, and the checkpoints before it are intact.
/// The handlers run on a dispatch queue, not in signal context.
public final class StopSignals: @unchecked Sendable {
    public static let handled: [Int32] = [SIGTERM, SIGINT, SIGUSR1]

    /// The first signal received (0: none yet), shared with the handlers.
    private final class First: Sendable {
        let number = Atomic<Int32>(0)
    }
    private let first = First()
    /// Kept alive for as long as this object: a released source stops delivering.
    private var sources: [any DispatchSourceSignal] = []

    /// Installs the handlers; `onFirst` is called (on a dispatch queue) with the first signal.
    public init(onFirst: @escaping @Sendable (Int32) -> Void) {
        let first = self.first
        // A parent may have started this process with them blocked (the mask is inherited):
        // unblocked here, they reach the handlers through any thread that does not block them.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        for number in Self.handled { sigaddset(&unblock, number) }
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        sources = Self.handled.map { number in
            signal(number, SIG_IGN)  // the dispatch source sees it; the default action would kill
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                if first.number.compareExchange(expected: 0, desired: number, ordering: .sequentiallyConsistent)
                    .exchanged
                {
                    onFirst(number)
                } else {
                    signal(number, SIG_DFL)
                    _exit(128 + number)
                }
            }
            source.resume()
            return source
        }
    }

    /// The first signal received, if any.
    public var received: Int32? {
        let n = first.number.load(ordering: .sequentiallyConsistent)
        return n == 0 ? nil : n
    }

    /// "SIGTERM", "SIGINT", "SIGUSR1" or "signal N".
    public static func name(_ number: Int32) -> String {
        switch number {
        case SIGTERM: return "SIGTERM"
        case SIGINT: return "SIGINT"
        case SIGUSR1: return "SIGUSR1"
        default: return "signal \(number)"
        }
    }
}
