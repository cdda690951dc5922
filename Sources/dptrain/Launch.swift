import DPTrain
import Foundation

/// Process-level decisions shared by the subcommands: where data lives, how many threads a
/// rank gets, and how a failed run ends.
enum Launch {
    /// `--data-dir`, else `$DPTRAIN_DATA`, else `data/mnist`.
    static func dataDirectory(flag: String?) -> String {
        flag ?? ProcessInfo.processInfo.environment["DPTRAIN_DATA"] ?? "data/mnist"
    }

    /// `--threads`, else `$OPENBLAS_NUM_THREADS` (which the Launch/ scripts set), else the cores
    /// of this node divided among the ranks on it, so ranks x threads = cores.
    static func threadsPerRank(requested: Int?) -> Int {
        let env = ProcessInfo.processInfo.environment
        if let requested { return requested }  // validated >= 1 by TrainingOptions
        if let s = env["OPENBLAS_NUM_THREADS"], let n = Int(s), n >= 1 { return n }
        let localRanks = env["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) } ?? 1
        return max(1, ProcessInfo.processInfo.activeProcessorCount / max(localRanks, 1))
    }

    /// Prints the error (once, from the rank that should) and ends every rank with exit code 1.
    ///
    /// Errors every rank meets together (set-up agreed through `Communicator.agree`, and
    /// `TrainingError`s, which follow from allreduced values) end with a normal MPI_Finalize. Any
    /// other error may have struck one rank alone, while the others wait in a collective: that
    /// rank aborts the whole job (MPI_Abort), so nobody hangs.
    static func fail(_ error: Error, comm: any Communicator) -> Never {
        let rank = comm.worldSize > 1 ? " (rank \(comm.rank))" : ""
        switch error {
        case let failure as CollectiveFailure:
            if failure.reporter, let underlying = failure.underlying {
                FileHandle.standardError.write(Data("dptrain: error\(rank): \(underlying)\n".utf8))
            }
        case is TrainingError:
            if comm.isRoot { FileHandle.standardError.write(Data("dptrain: error: \(error)\n".utf8)) }
        default:
            if comm.worldSize > 1 { comm.abort(code: 1, message: "error\(rank): \(error)") }
            FileHandle.standardError.write(Data("dptrain: error: \(error)\n".utf8))
        }
        comm.finalize()
        exit(1)
    }
}
