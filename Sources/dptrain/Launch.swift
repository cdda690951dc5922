import DPTrain
import Foundation

/// Process-level decisions shared by the subcommands: where data lives, how many BLAS
/// threads a rank gets, and how a failed run ends.
enum Launch {
    /// `--data-dir`, else `$DPTRAIN_DATA`, else `data/mnist`.
    static func dataDirectory(flag: String?) -> String {
        flag ?? ProcessInfo.processInfo.environment["DPTRAIN_DATA"] ?? "data/mnist"
    }

    /// `--threads`, else `$OPENBLAS_NUM_THREADS`, else the cores of this node divided among the
    /// ranks on it, so ranks x threads = cores.
    static func blasThreads(requested: Int?) -> Int {
        let env = ProcessInfo.processInfo.environment
        if let requested, requested >= 1 { return requested }
        if let s = env["OPENBLAS_NUM_THREADS"], let n = Int(s), n >= 1 { return n }
        let localRanks = env["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) } ?? 1
        return max(1, ProcessInfo.processInfo.activeProcessorCount / max(localRanks, 1))
    }

    /// Prints the error (once, from the rank that should) and ends every rank with exit code 1.
    static func fail(_ error: Error, comm: any Communicator) -> Never {
        if let failure = error as? CollectiveFailure {
            if failure.reporter, let underlying = failure.underlying {
                FileHandle.standardError.write(Data("dptrain: error\(comm.worldSize > 1 ? " (rank \(comm.rank))" : ""): \(underlying)\n".utf8))
            }
        } else {
            FileHandle.standardError.write(Data("dptrain: error: \(error)\n".utf8))
        }
        comm.finalize()
        exit(1)
    }
}
