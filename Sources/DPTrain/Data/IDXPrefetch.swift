import Foundation
import Synchronization

/// IDX files read, inflated and parsed on background threads before they are asked for.
///
/// A launch starts on the training set before `MPI_Init`, which takes 0.2-0.25 s under mpirun,
/// about as long as inflating MNIST's 47 MB of training images: the two overlap. A
/// single process reads the training and test files side by side. `IDXFile.read(path:)` takes a
/// file started here, waiting for it if need be, and gets what its own reading would have
/// given: the same file, or the same error, thrown at the same point. Each file is taken once,
/// then forgotten; one never taken is just memory until the process ends.
public enum IDXPrefetch {
    /// A read in progress on a background thread, then its result.
    private final class Pending: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        // Written once by the reading thread before `done` is signalled; read after waiting.
        private var result: Result<IDXFile, any Error>?

        init(path: String) {
            DispatchQueue.global().async {
                self.result = Result { try IDXFile.readFromDisk(path: path) }
                self.done.signal()
            }
        }

        func wait() -> Result<IDXFile, any Error> {
            done.wait()
            return result!
        }
    }

    private static let pending = Mutex<[String: Pending]>([:])

    /// Starts reading each of `paths` not already started.
    public static func start(paths: [String]) {
        pending.withLock { table in
            for path in paths where table[path] == nil { table[path] = Pending(path: path) }
        }
    }

    /// The result of reading `path` if `start` was asked for it (waiting until it is done), and
    /// nil otherwise; forgets it.
    static func take(path: String) -> Result<IDXFile, any Error>? {
        pending.withLock { $0.removeValue(forKey: path) }?.wait()
    }
}
