import ArgumentParser
import DPTrain
import Foundation

/// The `dptrain` command line: data-parallel training on MNIST-format data over MPI.
struct DPTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dptrain",
        abstract: "Data-parallel neural-network training on MNIST over MPI, with a BLAS engine.",
        discussion: """
            Run under mpirun for several processes (`mpirun -np 2 dptrain train --config Configs/mlp.yaml`) \
            or alone for one process that uses every core: its threads split each batch as ranks would \
            (--threads), with the same result as that many ranks. Launch/train.sh does the set-up and \
            picks the layout for you.
            """,
        version: BuildInfo.description,
        subcommands: [
            TrainCommand.self, EvalCommand.self, PredictCommand.self, BenchCommand.self, InspectCommand.self,
            PlotCommand.self, DataCommand.self, ExportCommand.self,
        ])
}

// Before anything else runs code compiled for this build's instruction set.
if let mismatch = InstructionSet.mismatch() {
    FileHandle.standardError.write(Data("dptrain: error: \(mismatch)\n".utf8))
    exit(1)
}
DPTrainCommand.main()
