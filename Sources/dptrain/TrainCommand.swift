import ArgumentParser
import DPTrain
import Foundation

/// `dptrain train`: trains the model a config describes, data-parallel over the MPI ranks.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model described by a YAML config.",
        discussion: """
            Every rank holds a full replica; each step, rank r computes the gradient of the r-th slice of \
            the global batch, the ranks sum gradients in one MPI_Allreduce and take the same optimizer \
            step. Rank 0 evaluates on the test set after each epoch and prints one line per epoch to \
            stderr. The global batch (training.batch_size) does not depend on the number of ranks, and \
            neither does the result, up to float rounding.

            Data directory: --data-dir, else $DPTRAIN_DATA, else data/mnist. It holds the four MNIST \
            IDX files, raw or .gz.
            """)

    @OptionGroup var options: TrainingOptions

    @Option(name: .long, help: ArgumentHelp("Write metrics as JSON Lines to this file (rank 0).", valueName: "file"))
    var metricsFile: String?

    @Option(name: .long, help: "Write a step event to the metrics file every N steps (overrides training.log_every; 0: never).")
    var logEvery: Int?

    @Option(name: .long, help: ArgumentHelp("Write checkpoints here (overrides checkpoint.dir); rank 0 only.", valueName: "dir"))
    var checkpointDir: String?

    @Flag(name: .long, help: "Continue from the newest valid checkpoint in the checkpoint directory (a corrupt newest file is reported and skipped).")
    var resume = false

    @Option(name: .long, help: ArgumentHelp("Continue from this checkpoint file.", valueName: "file"))
    var resumeFrom: String?

    @Flag(name: .long, help: "Print only errors.")
    var quiet = false

    func run() throws {
        let (comm, threads) = options.start()
        let say: (String) -> Void = { line in
            if comm.isRoot && !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        }
        do {
            let trainer = try comm.agree { () throws -> Trainer in
                var (cfg, configText) = try options.loadConfig()
                if let logEvery {
                    guard logEvery >= 0 else { throw ValidationError("--log-every must be >= 0, found \(logEvery)") }
                    cfg.logEvery = logEvery
                }
                if let checkpointDir { cfg.checkpointDirectory = checkpointDir }
                let dir = options.dataDirectory
                let train = try cfg.loadDataset(directory: dir, split: .train)
                let test = comm.isRoot ? try cfg.loadDataset(directory: dir, split: .test) : nil
                let metrics = comm.isRoot ? try metricsFile.map { try MetricsSink(path: $0) } : nil
                let checkpointer = cfg.checkpointDirectory.map { Checkpointer(directory: $0, keep: cfg.checkpointKeep) }
                let trainer = try Trainer(config: cfg, configText: configText, comm: comm, train: train, test: test,
                                          metrics: metrics, checkpointer: checkpointer, log: say)
                if let mpi = comm as? MPICommunicator, comm.worldSize > 1 {
                    let watchdog = Watchdog(timeout: cfg.collectiveTimeout, rank: comm.rank)
                    mpi.watchdog = watchdog
                    trainer.watchdog = watchdog
                }
                if comm.isRoot, resume || resumeFrom != nil {
                    try restore(trainer, checkpointer: checkpointer, say: say)
                }
                let s = trainer.schedule
                say("dptrain: \(comm.summary) x \(threads) BLAS thread\(threads == 1 ? "" : "s"); model \(trainer.model.parameterCount) parameters; "
                    + "global batch \(cfg.batchSize) (\(s.maxLocalBatch(worldSize: comm.worldSize)) per rank), \(s.stepsPerEpoch) steps/epoch, "
                    + "\(train.count) training images from \(dir)")
                say(trainer.model.summary)
                return trainer
            }
            let summary = try trainer.run()
            if let acc = summary.testAccuracy, let loss = summary.testLoss {
                say(String(format: "dptrain: done: test accuracy %.4f, test loss %.4f, %d steps, %.0f samples/s, %d rank%@",
                           acc, loss, summary.steps, summary.samplesPerSecond, summary.worldSize, summary.worldSize == 1 ? "" : "s"))
            }
            comm.finalize()
        } catch {
            Launch.fail(error, comm: comm)
        }
    }

    /// Rank 0: loads `--resume-from`, or the newest valid checkpoint for `--resume`, into `trainer`.
    func restore(_ trainer: Trainer, checkpointer: Checkpointer?, say: (String) -> Void) throws {
        let (checkpoint, path): (Checkpoint, String)
        if let resumeFrom {
            (checkpoint, path) = (try Checkpoint.read(path: resumeFrom), resumeFrom)
        } else {
            guard let checkpointer else {
                throw ValidationError("--resume needs a checkpoint directory: pass --checkpoint-dir or set checkpoint.dir")
            }
            (checkpoint, path) = try checkpointer.newestValid { say("dptrain: warning: \($0)") }
        }
        try trainer.restore(from: checkpoint, path: path)
        let p = trainer.position
        say("dptrain: resuming from \(path) at global step \(p.step) (epoch \(p.epoch + 1), step \(p.stepInEpoch) of it), "
            + "saved by \(checkpoint.metadata["world_size"] ?? "?") rank(s)")
    }
}
