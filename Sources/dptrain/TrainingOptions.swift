import ArgumentParser
import DPTrain
import Foundation

/// The options `train` and `bench` share: the config, the data, the overrides and the threads.
///
/// Every numeric option, here and in the commands, takes the next argument whatever it looks
/// like (`parsing: .unconditional`), so `--epochs -1` reaches the check that names the flag and
/// the rule ("--epochs must be >= 1, found -1") instead of reading `-1` as an unknown flag.
struct TrainingOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The YAML config (see Configs/).", valueName: "file"))
    var config: String = "Configs/mlp.yaml"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The data directory (default: the config's data.dir, else $DPTRAIN_DATA, else data/mnist).",
            valueName: "dir"))
    var dataDir: String?

    @Option(name: .long, parsing: .unconditional, help: "Number of epochs (overrides training.epochs).")
    var epochs: Int?

    @Option(
        name: .long, parsing: .unconditional,
        help: "Global batch size, split across ranks (overrides training.batch_size).")
    var batchSize: Int?

    @Option(
        name: .long, parsing: .unconditional,
        help: "Seed for initialisation, shuffling and dropout (overrides training.seed).")
    var seed: Int?

    @Option(
        name: .long, parsing: .unconditional, help: "Stop after this many global steps (for tests and quick looks).")
    var maxSteps: Int?

    @Option(name: .long, parsing: .unconditional, help: "Train on the first N training images only.")
    var trainLimit: Int?

    @Option(name: .long, parsing: .unconditional, help: "Evaluate on the first N test images only.")
    var testLimit: Int?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The gradients' wire format between machines: none (exact float32 sums, the default), bf16 (half the bytes, 8 significant bits; for slow links) or powersgd (low-rank factors of the large matrices with error feedback, training.powersgd: rank, warmup_steps, min_size, bf16; for the slowest links). Overrides training.allreduce_compression.",
            valueName: "format"))
    var allreduceCompression: String?

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "Worker threads per rank, each training on its share of the rank's batch with one BLAS thread (default: $OPENBLAS_NUM_THREADS, else cores / ranks on this node).",
            valueName: "n"))
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be >= 1, found \(threads)") }
    }

    /// The config file with the flags applied, and the file's text (stored in checkpoints).
    func loadConfig() throws -> (TrainConfig, String) {
        var cfg = try TrainConfig.load(path: config)
        let text = try String(contentsOfFile: config, encoding: .utf8)
        func positive(_ value: Int?, _ flag: String) throws -> Int? {
            if let value, value < 1 { throw ValidationError("\(flag) must be >= 1, found \(value)") }
            return value
        }
        cfg.epochs = try positive(epochs, "--epochs") ?? cfg.epochs
        cfg.batchSize = try positive(batchSize, "--batch-size") ?? cfg.batchSize
        if let seed {
            guard seed >= 0 else { throw ValidationError("--seed must be >= 0, found \(seed)") }
            cfg.seed = UInt64(seed)
        }
        cfg.maxSteps = try positive(maxSteps, "--max-steps") ?? cfg.maxSteps
        cfg.trainLimit = try positive(trainLimit, "--train-limit") ?? cfg.trainLimit
        cfg.testLimit = try positive(testLimit, "--test-limit") ?? cfg.testLimit
        if let allreduceCompression {
            guard let kind = AllreduceCompression(rawValue: allreduceCompression) else {
                throw ValidationError(
                    "--allreduce-compression must be none, bf16 or powersgd, found '\(allreduceCompression)'")
            }
            cfg.allreduceCompression = kind
        }
        try cfg.validate()
        return (cfg, text)
    }

    /// The communicator for this launch (MPI under mpirun/srun, else one process) and the
    /// number of worker threads per rank.
    func start() -> (any Communicator, Int) {
        // Inflating the training images (0.2 s for MNIST) overlaps MPI's start-up (0.2-0.25 s
        // under mpirun); the root rank, or a lone process, also reads the test set meanwhile.
        // (A config that does not parse is reported later, through every rank.)
        if let cfg = try? TrainConfig.load(path: config) {
            let loader = DataLoader(spec: cfg.data, directory: cfg.dataDirectory(flag: dataDir))
            let rootToo = (MPICommunicator.rankFromLauncher ?? 0) == 0
            IDXPrefetch.start(paths: loader.idxPaths(.train) + (rootToo ? loader.idxPaths(.test) : []))
        }
        let comm: any Communicator = MPICommunicator.launchedByMPI ? MPICommunicator() : SingleProcessCommunicator()
        return (comm, Launch.threadsPerRank(requested: threads))
    }
}
