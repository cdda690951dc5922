import Foundation

/// Measures a training configuration: a fixed number of steps after a warm-up, per phase and
/// across ranks, plus throughput, achieved GFLOP/s against the measured sgemm peak, evaluation
/// time, peak memory and start-up time. Every rank calls `run`; every rank gets the report.
public struct BenchmarkReport: Sendable {
    public struct Spread: Sendable { public var min: Double, median: Double, max: Double }

    public var worldSize: Int
    public var threadsPerRank: Int
    public var globalBatch: Int
    public var steps: Int
    /// Per phase (`StepPhases.names`), the median seconds per step of each rank, spread across ranks.
    public var phases: [(name: String, seconds: Spread)]
    /// Median seconds of a whole step, spread across ranks.
    public var step: Spread
    public var samplesPerSecond: Double
    public var epochSeconds: Double
    /// A dense GEMM's floating-point operations per second: what the layers would do if none
    /// skipped zero inputs (so above the peak when some do).
    public var gflops: Double
    public var peakGFLOPS: Double
    /// Whether layers skipped zero inputs (`Model.skipsZeroInputs`).
    public var skipsZeroInputs: Bool
    public var evalSeconds: Double
    /// The threads rank 0 evaluated with: its own and those of the ranks of its machine, which
    /// lend it their cores (0: no test set).
    public var evalWorkers: Int
    public var peakRSSMegabytes: Spread
    /// Resident memory at the end, per rank: private to the process (heap, inflated data) and
    /// file pages mapped from the page cache (a mapped data set), which the ranks of a machine share.
    public var anonymousMegabytes: Spread
    public var fileMegabytes: Spread
    public var startupSeconds: Double
    /// With the gradient sent during backward (`Trainer.lastStepCommunication`): the communication
    /// thread's seconds a step; all zero without.
    public var communication: Spread
    /// How rank 0's updates wrote the parameters after the warm-up (`Trainer.parameterStoresUsed`):
    /// `.cached` or `.streamed`; nil where no other core reads them.
    public var parameterStores: ParameterStores?

    /// The share of the communication thread's time that computation hid: 1 - the allreduce
    /// phase (what the step waited for: the sums after backward, or, with the update made as
    /// they arrive, the statistics and the parameters before each layer of the forward pass) / the
    /// thread's time, by the slowest rank's medians; nil without.
    public var hiddenShare: Double? {
        guard communication.max > 0, let wait = phases.first(where: { $0.name == "allreduce" })?.seconds.max else {
            return nil
        }
        return max(0, 1 - wait / communication.max)
    }

    public var json: JSONValue {
        func spread(_ s: Spread) -> JSONValue {
            .object([("min", .number(s.min)), ("median", .number(s.median)), ("max", .number(s.max))])
        }
        return .object([
            ("world_size", .int(worldSize)), ("threads_per_rank", .int(threadsPerRank)),
            ("global_batch", .int(globalBatch)),
            ("steps", .int(steps)), ("phases_seconds", .object(phases.map { ($0.name, spread($0.seconds)) })),
            ("step_seconds", spread(step)), ("samples_per_second", .number(samplesPerSecond)),
            ("epoch_seconds", .number(epochSeconds)),
            ("gflops", .number(gflops)), ("peak_gflops", .number(peakGFLOPS)),
            ("fraction_of_peak", .number(gflops / peakGFLOPS)),
            ("skips_zero_inputs", .bool(skipsZeroInputs)),
            ("eval_seconds", .number(evalSeconds)), ("eval_workers", .int(evalWorkers)),
            ("peak_rss_mb", spread(peakRSSMegabytes)),
            ("rss_anon_mb", spread(anonymousMegabytes)),
            ("rss_file_mb", spread(fileMegabytes)), ("startup_seconds", .number(startupSeconds)),
            ("communication_seconds", spread(communication)),
            ("hidden_share", .number(hiddenShare ?? .nan)),  // null without
            ("parameter_stores", parameterStores.map { .string($0.rawValue) } ?? .number(.nan)),  // null where none
        ])
    }

    public var table: String {
        var lines = [
            String(
                format: "%d rank(s) x %d thread(s), global batch %d, %d steps after warm-up", worldSize, threadsPerRank,
                globalBatch, steps)
        ]
        func pad(_ s: String, _ width: Int) -> String {
            s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
        }
        lines.append(pad("phase", 10) + "        min     median        max   (ms per step, across ranks)")
        for (name, s) in phases + [("step", step)] {
            lines.append(
                pad(name, 10) + String(format: " %10.4f %10.4f %10.4f", s.min * 1e3, s.median * 1e3, s.max * 1e3))
        }
        lines.append(String(format: "throughput %.0f samples/s, %.3f s/epoch", samplesPerSecond, epochSeconds))
        if let parameterStores {
            lines.append(
                "parameter stores: \(parameterStores.rawValue) (as measured in the warm-up, unless DPTRAIN_PARAMETER_STORES says)"
            )
        }
        if let hiddenShare {
            lines.append(
                String(
                    format:
                        "communication during computation: %.4f ms a step on its thread (slowest rank), %.0f%% of it hidden",
                    communication.max * 1e3, 100 * hiddenShare))
        }
        lines.append(
            String(
                format: "GEMM %.1f GFLOP/s = %.1f%% of the measured sgemm peak (%.1f GFLOP/s for this layout)%@",
                gflops, 100 * gflops / peakGFLOPS, peakGFLOPS,
                skipsZeroInputs ? "; dense-equivalent: zero inputs skipped" : ""))
        let evaluation =
            evalWorkers == 0
            ? "no test set to evaluate"
            : String(
                format: "evaluation %.3f s (rank 0 with %d thread%@, test set)", evalSeconds, evalWorkers,
                evalWorkers == 1 ? "" : "s")
        lines.append(
            evaluation
                + String(
                    format: "; peak RSS %.0f / %.0f / %.0f MB (min/median/max); start to first step %.3f s",
                    peakRSSMegabytes.min, peakRSSMegabytes.median, peakRSSMegabytes.max, startupSeconds))
        return lines.joined(separator: "\n")
    }
}

public enum Benchmark {
    /// Runs `warmup` untimed steps, then `steps` timed ones, then one evaluation (rank 0).
    public static func run(_ trainer: Trainer, steps: Int, warmup: Int, threads: Int) throws -> BenchmarkReport {
        let comm = trainer.comm
        trainer.synchronizeStart()
        let startup = secondsSinceProcessStart()
        comm.barrier()
        // Every worker multiplies at once, each with its one BLAS thread, as in training.
        let peak = comm.allgather([trainer.pool.map { _ in BLASThreads.measuredPeakGFLOPS() }.reduce(0, +)]).reduce(0) {
            $0 + $1[0]
        }
        var order = trainer.schedule.permutation(epoch: 0)
        var perPhase = [[Double]](repeating: [], count: StepPhases.names.count)
        var stepTimes: [Double] = [], communication: [Double] = []
        comm.barrier()
        var started = 0.0
        for i in 0..<(warmup + steps) {
            if i == warmup { started = now() }
            if trainer.position.stepInEpoch == trainer.schedule.stepsPerEpoch {
                trainer.nextEpoch()
                order = trainer.schedule.permutation(epoch: trainer.position.epoch)
            }
            try trainer.trainStep(order: order)
            guard i >= warmup else { continue }
            let phases = trainer.lastStepPhases.values
            for (k, v) in phases.enumerated() { perPhase[k].append(v) }
            stepTimes.append(phases.reduce(0, +))
            communication.append(trainer.lastStepCommunication)
        }
        try trainer.settle()  // the last update, still arriving
        let wall = comm.allgather([now() - started]).map { $0[0] }.max()!
        var (evalSeconds, evalWorkers) = (0.0, 0)
        trainer.lendCoresToRoot { lent in
            guard let test = trainer.test else { return }
            let t0 = now()
            evalWorkers = trainer.evaluate(on: test, lent: lent).workers
            evalSeconds = now() - t0
        }
        let resident = residentMegabytes()
        let mine =
            perPhase.map(median) + [
                median(stepTimes), peakRSSMegabytes(), startup, evalSeconds, resident.anonymous, resident.file,
                median(communication), Double(evalWorkers),
            ]
        let all = comm.allgather(mine)
        func spread(_ k: Int) -> BenchmarkReport.Spread {
            let v = all.map { $0[k] }.sorted()
            return .init(min: v.first!, median: median(v), max: v.last!)
        }
        let samples = Double(steps * trainer.config.batchSize)
        let p = StepPhases.names.count
        return BenchmarkReport(
            worldSize: comm.worldSize, threadsPerRank: threads, globalBatch: trainer.config.batchSize, steps: steps,
            phases: StepPhases.names.enumerated().map { ($0.element, spread($0.offset)) }, step: spread(p),
            samplesPerSecond: samples / wall,
            epochSeconds: wall / Double(steps) * Double(trainer.schedule.stepsPerEpoch),
            gflops: trainer.model.trainingFlopsPerSample * samples / wall / 1e9, peakGFLOPS: peak,
            skipsZeroInputs: trainer.skipsZeroInputs,
            evalSeconds: all[0][p + 3], evalWorkers: Int(all[0][p + 7]), peakRSSMegabytes: spread(p + 1),
            anonymousMegabytes: spread(p + 4),
            fileMegabytes: spread(p + 5),
            startupSeconds: all.map { $0[p + 2] }.max()!, communication: spread(p + 6),
            parameterStores: trainer.parameterStoresUsed)
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

    static func median(_ values: [Double]) -> Double {
        let v = values.sorted()
        guard !v.isEmpty else { return 0 }
        return v.count % 2 == 1 ? v[v.count / 2] : (v[v.count / 2 - 1] + v[v.count / 2]) / 2
    }

    /// This process's peak resident memory.
    /// This process's resident memory now: anonymous (RssAnon) and file-backed (RssFile), from
    /// /proc/self/status; zeros where it cannot be read.
    public static func residentMegabytes() -> (anonymous: Double, file: Double) {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Double {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                .flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Double($0) }.map { $0 / 1024 } ?? 0
        }
        return (field("RssAnon"), field("RssFile"))
    }

    public static func peakRSSMegabytes() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_maxrss) / 1024  // kilobytes on Linux
    }

    /// Seconds since this process started (from /proc; 10 ms resolution).
    public static func secondsSinceProcessStart() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let uptime = try? String(contentsOfFile: "/proc/uptime", encoding: .utf8),
            let afterName = stat.range(of: ") ", options: .backwards)
        else { return 0 }
        // Field 22 (starttime, clock ticks since boot) is the 20th after the command name.
        let fields = stat[afterName.upperBound...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]), let up = Double(uptime.split(separator: " ")[0]) else {
            return 0
        }
        return up - ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// The allreduce of a gradient alone, timed on every rank: what the network costs a step,
/// apart from computing it (see `Benchmark.allreduce`).
public struct AllreduceReport: Sendable {
    public var worldSize: Int
    public var floats: Int
    public var compression: AllreduceCompression
    public var steps: Int
    /// Each rank's median seconds, spread across ranks.
    public var seconds: BenchmarkReport.Spread
    /// Bytes each allreduce moves into every rank's buffer (floats x 4, or x 2 as bf16).
    public var bytes: Int { floats * (compression == .bf16 ? 2 : 4) }
    /// A ring's bandwidth: 2 (N-1)/N x bytes per second of the median (NCCL's "bus bandwidth").
    public var busGigabytesPerSecond: Double {
        worldSize > 1 ? 2 * Double(worldSize - 1) / Double(worldSize) * Double(bytes) / seconds.median / 1e9 : 0
    }

    public var json: JSONValue {
        .object([
            ("world_size", .int(worldSize)), ("floats", .int(floats)), ("bytes", .int(bytes)),
            ("compression", .string(compression.rawValue)),
            ("steps", .int(steps)),
            (
                "allreduce_seconds",
                .object([
                    ("min", .number(seconds.min)), ("median", .number(seconds.median)),
                    ("max", .number(seconds.max)),
                ])
            ),
            ("bus_gb_per_s", .number(busGigabytesPerSecond)),
        ])
    }

    public var table: String {
        String(
            format:
                "allreduce of %d floats (%d bytes as %@) on %d rank(s), %d times: median %.3f ms (ranks %.3f-%.3f), bus bandwidth %.2f GB/s",
            floats, bytes, compression == .bf16 ? "bfloat16" : "float32", worldSize, steps, seconds.median * 1e3,
            seconds.min * 1e3, seconds.max * 1e3, busGigabytesPerSecond)
    }
}

extension Benchmark {
    /// `warmup` untimed and `steps` timed sums of `floats` floats over the ranks, as a training
    /// step takes them (`Communicator.makeGradientSum`: in shared memory within a machine, bf16
    /// across machines when `compression` says so, the conversions included), each rank timing
    /// its own; every rank gets the report.
    public static func allreduce(
        comm: any Communicator, floats: Int, compression: AllreduceCompression, steps: Int, warmup: Int
    ) -> AllreduceReport {
        let pool = WorkerPool(count: 1)
        defer { pool.stop() }
        let statistics = min(Trainer.statisticSlots, floats - 1)
        let sum = comm.makeGradientSum(
            count: floats, statistics: statistics, stateBuffers: 0, buckets: nil,
            compression: compression == .powersgd ? .none : compression, powerSGD: nil, pool: pool, log: { _ in })
        let values = sum.localBuffer ?? FloatBuffer(count: floats)
        var times: [Double] = []
        comm.barrier()
        for i in 0..<(warmup + steps) {
            for j in 0..<floats { values.pointer[j] = Float((j * 7919 + comm.rank) % 1000) * 1e-4 }
            let started = now()
            _ = sum.sum(values.pointer) { _, _ in }
            _ = sum.agree(true)
            if i >= warmup { times.append(now() - started) }
        }
        let all = comm.allgather([median(times)]).map { $0[0] }.sorted()
        return AllreduceReport(
            worldSize: comm.worldSize, floats: floats, compression: compression, steps: steps,
            seconds: .init(min: all.first!, median: median(all), max: all.last!))
    }
}
