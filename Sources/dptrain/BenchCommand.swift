import ArgumentParser
import DPTrain
import Foundation

/// `dptrain bench`: times a fixed number of training steps, phase by phase, across ranks.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark training steps of a config: per phase, across ranks.",
        discussion: """
            Runs --warmup untimed steps, then --steps timed ones, then one evaluation of the test set on rank 0 \
            (with a thread for each thread of its machine's other ranks, on their cores, while they wait). \
            Prints per-phase times (batch gather, forward and backward of the first worker; allreduce: the wait \
            for the slowest worker, thread or rank, and the sums; optimizer) as min / median / max \
            across ranks of each rank's median, samples/s (slowest rank's wall time), achieved GEMM GFLOP/s and \
            its fraction of the sgemm peak measured in the same run, evaluation time, peak RSS per rank and the \
            time from process start to the first step. GFLOP/s counts a dense GEMM's work: layers that skip \
            zero inputs (MNIST's pixels are 81% zero: Dense layers multiply only the nonzero ones, convolutions \
            leave out all-zero fields) do less, so it can exceed the peak; --dense-inputs turns that off, to \
            compare with the floor program's dense GEMMs like for like. Launch it like train (under mpirun for several ranks); \
            Benchmarks/scaling.sh sweeps layouts. It prints figures and never fails on them.
            """)

    @OptionGroup var options: TrainingOptions

    @Option(name: .long, parsing: .unconditional, help: "Timed steps.")
    var steps: Int = 300

    @Option(name: .long, parsing: .unconditional, help: "Untimed warm-up steps.")
    var warmup: Int = 30

    @Flag(
        name: .long,
        help:
            "Multiply every input through sgemm, zeros and all-zero convolution fields too (as the floor program does)."
    )
    var denseInputs = false

    @Flag(name: .long, help: "Print one JSON object instead of the table.")
    var json = false

    @Flag(
        name: .long,
        help:
            "Time only the allreduce of the model's gradient (--steps times, each rank its own), with the config's or --allreduce-compression's wire format: the network's share of a step, without computing one."
    )
    var allreduceOnly = false

    @Option(
        name: .long, parsing: .unconditional,
        help: ArgumentHelp(
            "With --allreduce-only, allreduce this many floats instead of the model's gradient.", valueName: "n"))
    var allreduceFloats: Int?

    func run() throws {
        let (comm, threads) = options.start()
        do {
            guard steps >= 1, warmup >= 0 else { throw ValidationError("--steps must be >= 1 and --warmup >= 0") }
            if allreduceFloats != nil && !allreduceOnly {
                throw ValidationError("--allreduce-floats needs --allreduce-only")
            }
            if allreduceOnly {
                let (cfg, _) = try comm.agree { try options.loadConfig() }
                if let allreduceFloats, allreduceFloats < 1 {
                    throw ValidationError("--allreduce-floats must be >= 1, found \(allreduceFloats)")
                }
                let floats = try allreduceFloats ?? Trainer.allreduceFloats(cfg)
                let report = Benchmark.allreduce(
                    comm: comm, floats: floats, compression: cfg.allreduceCompression, steps: steps, warmup: warmup)
                if comm.isRoot {
                    print(json ? report.json.encoded : "dptrain bench \(options.config): " + report.table)
                }
                comm.finalize()
                return
            }
            let trainer = try comm.agree { () throws -> Trainer in
                let (cfg, text) = try options.loadConfig()
                let dir = cfg.dataDirectory(flag: options.dataDir)
                let train = try cfg.loadDataset(directory: dir, split: .train)!
                let test = comm.isRoot ? try cfg.loadDataset(directory: dir, split: .test, classes: train.classes) : nil
                return try Trainer(
                    config: cfg, configText: text, comm: comm, threads: threads, train: train, test: test)
            }
            trainer.skipsZeroInputs = !denseInputs
            let report = try Benchmark.run(trainer, steps: steps, warmup: warmup, threads: threads)
            if comm.isRoot {
                if json {
                    var fields: [(String, JSONValue)] = [("config", .string(options.config))]
                    if case .object(let rest) = report.json { fields += rest }
                    print(JSONValue.object(fields).encoded)
                } else {
                    print("dptrain bench \(options.config): " + report.table)
                }
            }
            comm.finalize()
        } catch {
            Launch.fail(error, comm: comm)
        }
    }
}
