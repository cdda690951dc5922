import ArgumentParser
import DPTrain
import Foundation
import Logging

/// `dptrain train`: trains the model a config describes, data-parallel over the MPI ranks.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model described by a YAML config.",
        discussion: """
            Every rank holds a full replica; each step, rank r computes the gradient of the r-th slice of \
            the global batch, the ranks sum the gradients and take the same optimizer step. Ranks of a \
            machine sum in one shared-memory segment (MPI_Win_allocate_shared, in /dev/shm), each a \
            slice, in rank order; the first rank of each machine exchanges the machine's sum with the \
            other machines. The ranks of a machine share one copy of the parameters and optimizer \
            state in that segment, each updating the slice it summed (DPTRAIN_GRADIENT_SUM=shared-sum: \
            each updates a copy of its own). Where the segment cannot be made, or with \
            DPTRAIN_GRADIENT_SUM=allreduce, one MPI_Allreduce sums them instead. Where other cores \
            read the new parameters (threads, or ranks sharing them), the update writes them with \
            plain or with streaming stores, whichever a trial of 40 steps in every 2000 measures \
            faster (DPTRAIN_PARAMETER_STORES=cached or streamed sets it; the values are the same). \
            With one rank a machine, a communication thread sends the gradient to the other machines in buckets \
            (training.bucket_mb, default 1) while backward runs (training.overlap_communication: \
            false sends it after, as does a gradient of one bucket), with the same sums; \
            training.pipelined_update: true also updates each bucket as its sum arrives and sends \
            the first layers' first, while the next forward pass waits layer by layer. Rank 0 \
            evaluates on the test set after each epoch (with a thread for each thread of its \
            machine's other ranks, on their cores, while they wait) and prints one line per epoch to \
            stderr. The global batch (training.batch_size) does not depend on the number of ranks, and \
            neither does the result, up to float rounding.

            Data directory: --data-dir, else $DPTRAIN_DATA, else data/mnist. It holds the four MNIST \
            IDX files, raw or .gz.

            SIGTERM, SIGINT or SIGUSR1 (to any rank, or SIGUSR1 to mpirun, which forwards it) stops the \
            run cleanly: every rank finishes the step in progress, rank 0 writes a checkpoint of it, and \
            the job exits 75. A second signal stops at once (the checkpoints already written are intact). \
            mpirun answers SIGTERM by killing its ranks a second later and exiting 1: Launch/train.sh and \
            Launch/cluster.sh turn SIGTERM and Ctrl-C into SIGUSR1 for it.

            Exit status: 0 done; 1 an error (the message names the file, key or flag); 3 the watchdog \
            stopped a rank stuck in a collective (training.collective_timeout); 64 a bad command line; \
            75 stopped by a signal, checkpoint written (continue with --resume); 128+N stopped by signal \
            N with no checkpoint directory.
            """)

    @OptionGroup var options: TrainingOptions

    @Option(name: .long, help: ArgumentHelp("Write metrics as JSON Lines to this file (rank 0).", valueName: "file"))
    var metricsFile: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Write TensorBoard event files (scalars: losses, accuracies, learning rate, samples/s, allreduce time) to this directory (rank 0).",
            valueName: "dir"))
    var tensorboard: String?

    @Option(
        name: .long, parsing: .unconditional,
        help: "Write a step event to the metrics file every N steps (overrides training.log_every; 0: never).")
    var logEvery: Int?

    @Option(
        name: .long,
        help: ArgumentHelp("Write checkpoints here (overrides checkpoint.dir); rank 0 only.", valueName: "dir"))
    var checkpointDir: String?

    @Flag(
        name: .long,
        help:
            "Continue from the newest valid checkpoint in the checkpoint directory (a corrupt newest file is reported and skipped)."
    )
    var resume = false

    @Option(name: .long, help: ArgumentHelp("Continue from this checkpoint file.", valueName: "file"))
    var resumeFrom: String?

    @Flag(name: .long, help: "Print only errors (same as --log-level error).")
    var quiet = false

    @Flag(name: .long, help: "Also print what every rank does (same as --log-level debug).")
    var verbose = false

    @Option(
        name: .long,
        help:
            "trace, debug, info, notice, warning, error or critical (default info; rank 0 prints info, other ranks warnings, unless debug or trace)."
    )
    var logLevel: String?

    @Flag(name: .long, inversion: .prefixedNo, help: "A progress bar per epoch when stderr is a terminal (default on).")
    var progress = true

    func validate() throws {
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError(
                "--log-level must be one of trace, debug, info, notice, warning, error, critical; found '\(logLevel)'")
        }
    }

    func run() throws {
        let started = DispatchTime.now()
        let (comm, threads) = options.start()
        let level = quiet ? .error : verbose ? .debug : logLevel.flatMap { Logger.Level(rawValue: $0) } ?? .info
        let logger = Console.logger(rank: comm.rank, worldSize: comm.worldSize, level: level)
        var activeBar: ProgressBar?  // set below when stderr is a terminal
        let say: (String) -> Void = { line in  // rank 0's human lines
            guard comm.isRoot else { return }
            activeBar?.clear()
            if line.hasPrefix("warning: ") || line.hasPrefix("dptrain: warning: ") {
                logger.warning(
                    "\(line.replacingOccurrences(of: "dptrain: warning: ", with: "").replacingOccurrences(of: "warning: ", with: ""))"
                )
            } else {
                logger.info("\(line)")
            }
        }
        do {
            let trainer = try comm.agree { () throws -> Trainer in
                var (cfg, configText) = try options.loadConfig()
                if let logEvery {
                    guard logEvery >= 0 else { throw ValidationError("--log-every must be >= 0, found \(logEvery)") }
                    cfg.logEvery = logEvery
                }
                if let checkpointDir { cfg.checkpointDirectory = checkpointDir }
                let dir = cfg.dataDirectory(flag: options.dataDir)
                let train = try cfg.loadDataset(directory: dir, split: .train, digest: comm.isRoot)!
                let test =
                    comm.isRoot
                    ? try cfg.loadDataset(directory: dir, split: .test, classes: train.classes, digest: true) : nil
                var sinks: [any MetricsSink] = []
                if comm.isRoot {
                    if let metricsFile { sinks.append(try JSONLinesSink(path: metricsFile)) }
                    if let tensorboard { sinks.append(try TensorBoardWriter(directory: tensorboard)) }
                }
                let metrics: (any MetricsSink)? = sinks.isEmpty ? nil : MetricsFanout(sinks)
                let checkpointer = cfg.checkpointDirectory.map { Checkpointer(directory: $0, keep: cfg.checkpointKeep) }
                let trainer = try Trainer(
                    config: cfg, configText: configText, comm: comm, threads: threads, train: train, test: test,
                    metrics: metrics, checkpointer: checkpointer, log: say)
                if let mpi = comm as? MPICommunicator, comm.worldSize > 1 {
                    let watchdog = Watchdog(timeout: cfg.collectiveTimeout, rank: comm.rank)
                    mpi.watchdog = watchdog
                    trainer.watchdog = watchdog
                }
                let (isRoot, rank, saves, watchdog) = (
                    comm.isRoot, comm.rank, cfg.checkpointDirectory != nil, trainer.watchdog
                )
                trainer.stopSignals = StopSignals { number in
                    // Stuck in a collective: say where and who is missing while there is time.
                    watchdog?.reportIfWaiting()
                    let line =
                        "received \(StopSignals.name(number)): finishing the step in progress, then "
                        + (saves ? "writing a checkpoint" : "stopping (no checkpoint directory to save to)")
                        + "; a second signal stops at once"
                    if isRoot { logger.notice("\(line)") } else { logger.debug("rank \(rank): \(line)") }
                }
                if comm.isRoot, resume || resumeFrom != nil {
                    try restore(trainer, checkpointer: checkpointer, say: say)
                }
                let s = trainer.schedule
                say(
                    "dptrain: \(comm.summary) x \(threads) thread\(threads == 1 ? "" : "s"), built for \(InstructionSet.compiled.level); model \(trainer.model.parameterCount) parameters; "
                        + "global batch \(cfg.batchSize) (\(s.maxLocalBatch(worldSize: comm.worldSize)) per rank), \(s.stepsPerEpoch) steps/epoch, "
                        + (cfg.data.resolvedFormat == .idx
                            ? "\(train.count) training images from \(dir) (\(Self.provenance(train, test, directory: dir, say: say)))"
                            : "\(train.count) training samples from \(train.source) (\(cfg.data.resolvedFormat.rawValue)"
                                + (train.buffer.isMapped ? ", mapped" : "") + ", \(train.numClasses) classes"
                                + (train.origin.map { ", \($0)" } ?? "") + ")"))
                say(trainer.model.summary)
                if let origin = train.origin { logger.debug("rank \(comm.rank): \(train.source): \(origin)") }
                logger.debug(
                    "rank \(comm.rank): \(train.count) training images, up to \(s.maxLocalBatch(worldSize: comm.worldSize)) per step, \(threads) worker thread\(threads == 1 ? "" : "s")"
                )
                if comm.isRoot && progress && level <= .info && Console.stderrIsTerminal {
                    let progressBar = ProgressBar(stepsPerEpoch: s.stepsPerEpoch)
                    activeBar = progressBar
                    trainer.onStep = { position, elapsed in progressBar.update(position, elapsed: elapsed) }
                }
                return trainer
            }
            // Every rank got here (the set-up agreed): exchange the addresses the watchdog probes.
            trainer.watchdog?.probe = PeerProbe(comm: comm)
            if comm.isRoot && ProcessInfo.processInfo.environment["DPTRAIN_ANNOUNCE_FIRST_STEP"] == "1" {
                announceFirstStep(trainer, since: started, clearing: activeBar)
            }
            let summary = try trainer.run()
            if summary.stoppedBySignal {
                let directory = trainer.config.checkpointDirectory
                say(
                    "dptrain: stopped by a signal after global step \(summary.steps) (epoch \(trainer.position.epoch + 1))"
                        + (directory.map {
                            "; checkpoint \(Checkpointer(directory: $0).path(step: summary.steps)) written: continue with --resume"
                        }
                            ?? "; no checkpoint directory, nothing was saved"))
                comm.finalize()
                Foundation.exit(
                    directory == nil
                        ? ExitStatus.stoppedWithoutCheckpoint(signal: trainer.stopSignals?.received ?? SIGTERM)
                        : ExitStatus.stoppedWithCheckpoint)
            }
            if let acc = summary.testAccuracy, let loss = summary.testLoss {
                say(
                    String(
                        format:
                            "dptrain: done: test accuracy %.4f, test loss %.4f, %d steps, %.0f samples/s, %d rank%@",
                        acc, loss, summary.steps, summary.samplesPerSecond, summary.worldSize,
                        summary.worldSize == 1 ? "" : "s"))
            }
            comm.finalize()
        } catch {
            Launch.fail(error, comm: comm)
        }
    }

    /// Rank 0: prints `dptrain: first step done ...` once, after the first step of this run, whatever
    /// the log level. Launch/common.sh sets DPTRAIN_ANNOUNCE_FIRST_STEP=1 and watches mpirun's output
    /// for this line to enforce its start-up limit (DPTRAIN_STARTUP_TIMEOUT): a job whose machines
    /// never all start is ended instead of waiting forever.
    func announceFirstStep(_ trainer: Trainer, since started: DispatchTime, clearing bar: ProgressBar?) {
        let next = trainer.onStep
        var announced = false
        trainer.onStep = { position, elapsed in
            if !announced {
                announced = true
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) * 1e-9
                bar?.clear()
                FileHandle.standardError.write(
                    Data(
                        String(
                            format: "dptrain: first step done, global step %d, %.2f s after start\n", position.step,
                            seconds
                        )
                        .utf8))
            }
            next?(position, elapsed)
        }
    }

    /// Rank 0: which data set the files are, checked against the published SHA-256 sums; files
    /// that differ from the set the others match are reported as a warning.
    static func provenance(_ train: Dataset, _ test: Dataset?, directory: String, say: (String) -> Void) -> String {
        let digests = train.sourceDigests.merging(test?.sourceDigests ?? [:]) { a, _ in a }
        switch KnownDataset.identify(digests) {
        case .verified(let set):
            return "\(set.displayName), SHA-256 of \(digests.count) files verified"
        case .modified(let set, let files):
            for stem in files {
                say(
                    "dptrain: warning: \(directory)/\(stem): SHA-256 \(digests[stem]!) differs from \(set.displayName)'s \(set.sha256[stem]!); "
                        + "the file was modified or is another data set (see dptrain data verify)")
            }
            return "\(set.displayName) with \(files.count) modified file\(files.count == 1 ? "" : "s")"
        case .unknown:
            return "not a data set dptrain knows: checksums not checked"
        }
    }

    /// Rank 0: loads `--resume-from`, or the newest valid checkpoint for `--resume`, into `trainer`.
    func restore(_ trainer: Trainer, checkpointer: Checkpointer?, say: (String) -> Void) throws {
        let (checkpoint, path): (Checkpoint, String)
        if let resumeFrom {
            (checkpoint, path) = (try Checkpoint.read(path: resumeFrom), resumeFrom)
        } else {
            guard let checkpointer else {
                throw ValidationError(
                    "--resume needs a checkpoint directory: pass --checkpoint-dir or set checkpoint.dir")
            }
            (checkpoint, path) = try checkpointer.newestValid { say("dptrain: warning: \($0)") }
        }
        try trainer.restore(from: checkpoint, path: path)
        let p = trainer.position
        say(
            "dptrain: resuming from \(path) at global step \(p.step) (epoch \(p.epoch + 1), step \(p.stepInEpoch) of it), "
                + "saved by \(checkpoint.metadata["world_size"] ?? "?") rank(s)")
    }
}
