import Foundation
import Testing

/// Launches the release binary, alone and under mpirun, as a user would. Serialized: the
/// machine has two cores and these runs use them all.
@Suite("End to end", .serialized)
struct EndToEndTests {
    struct Run {
        var losses: [Double]
        var summary: [String: Any]
        var result: Support.ProcessResult
    }

    /// Trains Configs/mlp.yaml on `data` with `ranks` MPI ranks (nil: without mpirun).
    func train(ranks: Int?, data: String, _ extra: [String], environment: [String: String] = [:]) throws -> Run {
        let bin = try Support.binary()
        let metrics = Support.temporaryDirectory() + "/metrics.jsonl"
        let args = ["train", "--config", "Configs/mlp.yaml", "--data-dir", data, "--metrics-file", metrics] + extra
        let result =
            try ranks.map { try Support.run(Support.mpirunScript, ["\($0)", bin] + args, environment: environment) }
            ?? Support.run(bin, args, environment: environment)
        guard result.status == 0 else {
            throw TestSetupError(
                "run with \(ranks.map(String.init) ?? "no") ranks failed (\(result.status)):\n\(result.stderr)")
        }
        let events = try Support.readMetrics(metrics)
        let losses = events.filter { $0["event"] as? String == "step" }.map { $0["loss"] as! Double }
        let summary = try #require(events.last { $0["event"] as? String == "summary" })
        return Run(losses: losses, summary: summary, result: result)
    }

    @Test func sameTrajectoryAtOneTwoAndFourRanks() throws {
        let data = Support.makeTinyMNIST(train: 250, test: 40)
        // 250 samples, batch 32: 7 full batches and a partial one of 26 per epoch; 2 epochs.
        let args = ["--epochs", "2", "--batch-size", "32", "--log-every", "1", "--seed", "3"]
        let alone = try train(ranks: nil, data: data, args + ["--threads", "2"])
        #expect(alone.losses.count == 16)
        #expect(alone.losses.last! < alone.losses.first!, "the loss goes down on the tiny data set")
        // (ranks, threads per rank): N threads split a batch exactly as N ranks of a machine do,
        // and sum in the same order (the ranks in their shared segment, by rank).
        var runs: [String: Run] = [:]
        for (ranks, threads) in [(nil, 1), (nil, 4), (1, 2), (2, 1), (2, 2), (4, 1)] as [(Int?, Int)] {
            let run = try train(ranks: ranks, data: data, args + ["--threads", "\(threads)"])
            runs["\(ranks ?? 0)x\(threads)"] = run
            let layout = "\(ranks.map { "\($0) rank(s)" } ?? "no mpirun") x \(threads) thread(s)"
            #expect(run.summary["world_size"] as? Int == ranks ?? 1)
            #expect(run.summary["replicas_identical"] as? Bool == true)
            #expect(run.losses.count == alone.losses.count)
            for (step, (a, b)) in zip(alone.losses, run.losses).enumerated() {
                #expect(abs(a - b) <= 1e-4, "step \(step + 1): \(layout) gives \(b), one process x 2 threads \(a)")
            }
            if ranks.map({ $0 * threads }) == 2 {
                #expect(run.losses == alone.losses, "\(layout) must match one process x 2 threads exactly")
                #expect(run.summary["parameter_checksum"] as? String == alone.summary["parameter_checksum"] as? String)
            }
        }
        let (ranks, threads) = (try #require(runs["4x1"]), try #require(runs["0x4"]))
        #expect(ranks.losses == threads.losses, "4 ranks must match one process x 4 threads exactly")
        #expect(ranks.summary["parameter_checksum"] as? String == threads.summary["parameter_checksum"] as? String)
        #expect(
            ranks.result.stderr.contains(
                "gradients: 4 ranks a machine sum in shared memory and update one shared copy of the parameters"),
            "\(ranks.result.stderr)")
        // Each rank updating a copy of its own gives the same bits.
        let own = try train(
            ranks: 4, data: data, args + ["--threads", "1"], environment: ["DPTRAIN_GRADIENT_SUM": "shared-sum"])
        #expect(own.losses == threads.losses, "4 ranks each updating its own copy must match 1 x 4 threads")
        #expect(own.summary["parameter_checksum"] as? String == threads.summary["parameter_checksum"] as? String)
        #expect(
            own.result.stderr.contains("gradients: 4 ranks a machine sum in shared memory\n"), "\(own.result.stderr)")
    }

    /// Streamed or plain stores of the new parameters (`ParameterStores`) give the same bits in
    /// each layout where other cores read them, and so does the measured choice, whose trial
    /// (steps 10 to 49) and vote (step 50) the 64 steps include; a value that is none of them
    /// is named in a warning.
    @Test func parameterStoresDoNotChangeTheBits() throws {
        let data = Support.makeTinyMNIST(train: 250, test: 40)
        let args = ["--epochs", "2", "--batch-size", "8", "--seed", "5"]  // 32 steps an epoch
        var checksums: [String: Set<String>] = [:]
        for (ranks, threads) in [(2, 1), (nil, 2), (4, 1)] as [(Int?, Int)] {
            for stores in ["cached", "streamed", "measured"] {
                let run = try train(
                    ranks: ranks, data: data, args + ["--threads", "\(threads)"],
                    environment: ["DPTRAIN_PARAMETER_STORES": stores])
                #expect(run.summary["replicas_identical"] as? Bool == true)
                let checksum = try #require(run.summary["parameter_checksum"] as? String)
                checksums[ranks.map { $0 * threads } == 4 ? "4 workers" : "2 workers", default: []].insert(checksum)
            }
        }
        #expect(checksums["2 workers"]?.count == 1, "2 ranks and 1 x 2 threads, each store: \(checksums)")
        #expect(checksums["4 workers"]?.count == 1, "4 ranks, each store: \(checksums)")
        let odd = try train(
            ranks: 2, data: data, args + ["--threads", "1"], environment: ["DPTRAIN_PARAMETER_STORES": "fast"])
        #expect(
            odd.result.stderr.contains(
                "warning: DPTRAIN_PARAMETER_STORES=fast is not one of measured, cached, streamed: using measured"),
            "\(odd.result.stderr)")
        #expect(checksums["2 workers"]?.contains(odd.summary["parameter_checksum"] as? String ?? "") == true)
    }

    /// Where the shared segment cannot be made (a container's small /dev/shm), the ranks say so,
    /// naming the size needed and what they do instead, and train to the same bits through
    /// MPI_Allreduce (2 ranks: the same single sum). Needs root for a mount namespace of its own.
    @Test(.enabled(if: geteuid() == 0, "needs root to mount a small /dev/shm in a namespace of its own"))
    func aSmallSharedMemoryFallsBackToMPIAllreduceSayingSo() throws {
        let bin = try Support.binary()
        let data = Support.makeTinyMNIST(train: 250, test: 40)
        let tmp = Support.temporaryDirectory()
        let args = ["train", "--data-dir", data, "--epochs", "2", "--threads", "1"]
        let script = """
            mount -t tmpfs -o size=256k tmpfs /dev/shm && exec "$@"
            """
        let small = try Support.run(
            "/usr/bin/unshare",
            ["-m", "bash", "-c", script, "small", Support.mpirunScript, "2", bin] + args
                + ["--metrics-file", "\(tmp)/small.jsonl"], environment: ["OMPI_MCA_btl": "self,tcp"])
        #expect(small.status == 0, "\(small.stderr)")
        #expect(
            small.stderr.contains(
                "warning: rank 0: /dev/shm has 0.3 MB free; the shared segment of the 2 ranks of this machine "
                    + "(gradients, parameters, optimizer state) needs 2.9 MB: summing gradients with MPI_Allreduce instead"
            )
                && small.stderr.contains("gradients: MPI_Allreduce"), "\(small.stderr)")
        let threads = try Support.run(bin, args + ["--threads", "2", "--metrics-file", "\(tmp)/threads.jsonl"])
        #expect(threads.status == 0, "\(threads.stderr)")
        let (a, b) = (
            try Support.readMetrics("\(tmp)/small.jsonl").last, try Support.readMetrics("\(tmp)/threads.jsonl").last
        )
        #expect(a?["parameter_checksum"] as? String == b?["parameter_checksum"] as? String)
    }

    /// bf16 compression halves the bytes that cross a network; the gradient sums keep about 3
    /// significant digits, so the trajectory follows float32's closely without matching it, and
    /// the replicas stay identical (every rank decompresses the same sums). Ranks of one machine
    /// sum in shared memory, where there is nothing to compress: there it changes nothing, unless
    /// DPTRAIN_GRADIENT_SUM=allreduce sends the gradient through MPI_Allreduce (simulated hosts
    /// test the network case).
    @Test func bf16CompressionFollowsTheFloat32Trajectory() throws {
        let data = Support.makeTinyMNIST(train: 250, test: 40)
        let args = ["--epochs", "2", "--batch-size", "32", "--log-every", "1", "--seed", "3", "--threads", "1"]
        let exact = try train(ranks: 2, data: data, args)
        let inMemory = try train(ranks: 2, data: data, args + ["--allreduce-compression", "bf16"])
        #expect(inMemory.losses == exact.losses, "nothing crosses a network: bf16 changes nothing")
        let compressed = try train(
            ranks: 2, data: data, args + ["--allreduce-compression", "bf16"],
            environment: ["DPTRAIN_GRADIENT_SUM": "allreduce"])
        #expect(
            compressed.result.stderr.contains("gradients: MPI_Allreduce as bfloat16"), "\(compressed.result.stderr)")
        #expect(compressed.summary["replicas_identical"] as? Bool == true)
        #expect(compressed.losses.count == exact.losses.count)
        #expect(compressed.losses != exact.losses, "bf16 rounding must show in the losses")
        for (step, (a, b)) in zip(exact.losses, compressed.losses).enumerated() {
            #expect(abs(a - b) <= 0.02 * abs(a), "step \(step + 1): float32 \(a), bf16 \(b)")
        }
        // One process has nothing to send: the flag changes nothing there.
        let alone = try train(ranks: nil, data: data, args + ["--threads", "2"])
        let aloneCompressed = try train(
            ranks: nil, data: data, args + ["--threads", "2", "--allreduce-compression", "bf16"])
        #expect(alone.losses == aloneCompressed.losses)
        let bad = try Support.run(
            try Support.binary(),
            ["train", "--config", "Configs/mlp.yaml", "--data-dir", data, "--allreduce-compression", "fp8"])
        #expect(bad.status != 0 && bad.stderr.contains("--allreduce-compression"), "\(bad.stderr)")
    }

    /// PowerSGD compresses only what machines exchange: ranks of one machine sum exactly in
    /// shared memory and say there is nothing to compress (the same bits as float32); ranks
    /// summing through MPI_Allreduce warn that their gradients cross uncompressed.
    @Test func powerSGDSaysWhereItCompressesNothing() throws {
        let data = Support.makeTinyMNIST(train: 250, test: 40)
        let args = ["--epochs", "1", "--batch-size", "32", "--log-every", "1", "--seed", "3", "--threads", "1"]
        let exact = try train(ranks: 2, data: data, args)
        // From the first step, so that compression would show in the losses.
        let config = try Support.mlpConfig(
            "power", in: Support.temporaryDirectory(), adding: "  powersgd: {warmup_steps: 0}\n")
        let power = args + ["--config", config, "--allreduce-compression", "powersgd"]
        let inMemory = try train(ranks: 2, data: data, power)
        #expect(inMemory.losses == exact.losses)
        #expect(
            inMemory.result.stderr.contains("PowerSGD: every rank is on one machine")
                && !inMemory.result.stderr.contains("cross between machines"), "\(inMemory.result.stderr)")
        let allreduce = try train(ranks: 2, data: data, power, environment: ["DPTRAIN_GRADIENT_SUM": "allreduce"])
        #expect(allreduce.losses == exact.losses)
        #expect(
            allreduce.result.stderr.contains(
                "warning: PowerSGD compresses what machines exchange after summing in shared memory, and these ranks "
                    + "sum with MPI_Allreduce: the gradients cross uncompressed, in float32"),
            "\(allreduce.result.stderr)")
    }

    @Test func oneEpochOnRealMNISTWithTwoRanks() throws {
        let run = try train(ranks: 2, data: try Support.realMNIST(), ["--epochs", "1"])
        let accuracy = try #require(run.summary["test_accuracy"] as? Double)
        #expect(accuracy >= 0.95, "test accuracy \(accuracy) after one epoch")
        #expect(run.result.stderr.contains("epoch 1/1"))
        #expect(run.result.stderr.contains("(MNIST, SHA-256 of 4 files verified)"), "\(run.result.stderr)")
    }

    @Test func aRankWithMissingDataStopsTheWholeJobPromptly() throws {
        let bin = try Support.binary()
        let good = Support.makeTinyMNIST(train: 64, test: 16)
        let missing = Support.temporaryDirectory() + "/nothing-here"
        let result = try Support.run(
            Support.mpirunScript,
            [
                "1", bin, "train", "--data-dir", good, ":", "-np", "1", bin, "train", "--data-dir", missing,
            ], timeout: 60)
        #expect(result.status != 0)
        #expect(result.seconds < 30, "took \(result.seconds) s")
        #expect(result.stderr.contains("rank 1") && result.stderr.contains(missing), "\(result.stderr)")
    }

    @Test func aBatchSmallerThanTheWorldIsOneClearError() throws {
        let bin = try Support.binary()
        let data = Support.makeTinyMNIST(train: 64, test: 16)
        let result = try Support.run(
            Support.mpirunScript, ["2", bin, "train", "--data-dir", data, "--batch-size", "1"], timeout: 60)
        #expect(result.status != 0)
        let mentions = result.stderr.components(separatedBy: "training.batch_size").count - 1
        #expect(mentions == 1, "the error is printed once, by one rank:\n\(result.stderr)")
    }

    @Test func badFlagsAndConfigsAreClearErrors() throws {
        let bin = try Support.binary()
        let data = Support.makeTinyMNIST(train: 64, test: 16)
        let bad = Support.temporaryDirectory() + "/bad.yaml"
        try "model:\n  layers:\n    - type: dense\n      units: 10\n      activation: softmax\ntraining:\n  epoch: 2\n"
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let r1 = try Support.run(bin, ["train", "--config", bad, "--data-dir", data])
        #expect(r1.status != 0 && r1.stderr.contains("training.epoch"), "\(r1.stderr)")
        let r2 = try Support.run(bin, ["train", "--data-dir", data, "--epochs", "0"])
        #expect(r2.status != 0 && r2.stderr.contains("--epochs"), "\(r2.stderr)")
        let threads = try Support.run(bin, ["bench", "--data-dir", data, "--threads", "0"])
        #expect(threads.status != 0 && threads.stderr.contains("--threads must be >= 1, found 0"), "\(threads.stderr)")
        let r3 = try Support.run(bin, ["train", "--config", "/no/such.yaml", "--data-dir", data])
        #expect(r3.status != 0 && r3.stderr.contains("/no/such.yaml"), "\(r3.stderr)")
        // A negative number is the flag's value, checked against its rule, not an unknown flag.
        for (args, message) in [
            (["train", "--batch-size", "-3"], "--batch-size must be >= 1, found -3"),
            (["train", "--seed", "-5"], "--seed must be >= 0, found -5"),
            (["bench", "--threads", "-2"], "--threads must be >= 1, found -2"),
            (["train", "--log-every", "-1"], "--log-every must be >= 0, found -1"),
        ] {
            let r = try Support.run(bin, args + ["--data-dir", data])
            #expect(r.status != 0 && r.stderr.contains(message), "\(args): \(r.stderr)")
        }
    }

    /// Sizes no machine can hold, from the YAML or a flag: one message naming the key, exit 1,
    /// never a trap; a batch larger than the data set is the whole set.
    @Test func hugeSizesAreClearErrorsNotTraps() throws {
        let bin = try Support.binary()
        let data = Support.makeTinyMNIST(train: 64, test: 16)
        let huge = Support.temporaryDirectory() + "/huge.yaml"
        try
            "model:\n  layers:\n    - {type: flatten}\n    - {type: dense, units: 1000000000000, activation: relu}\n    - {type: dense, units: 10, activation: softmax}\n"
            .write(toFile: huge, atomically: true, encoding: .utf8)
        for (args, key) in [
            (["--config", huge], "model.layers[1].units"), (["--epochs", "\(Int.max)"], "training.epochs"),
        ] {
            let r = try Support.run(bin, ["train", "--data-dir", data] + args)
            #expect(
                r.status == 1 && r.stderr.contains("dptrain: error:") && r.stderr.contains(key), "\(args): \(r.stderr)")
            #expect(!r.stderr.contains("Fatal error"), "\(r.stderr)")
        }
        let whole = try Support.run(bin, ["train", "--data-dir", data, "--batch-size", "\(Int.max)", "--epochs", "2"])
        #expect(whole.status == 0 && whole.stderr.contains("1 steps/epoch"), "\(whole.stderr)")
    }

    @Test func benchReportsEveryPhaseAcrossRanks() throws {
        let bin = try Support.binary()
        let data = Support.makeTinyMNIST(train: 128, test: 32)
        let r = try Support.run(
            Support.mpirunScript, ["2", bin, "bench", "--data-dir", data, "--steps", "5", "--warmup", "2", "--json"],
            timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(report["world_size"] as? Int == 2 && report["steps"] as? Int == 5)
        let phases = report["phases_seconds"] as! [String: [String: Double]]
        #expect(Set(phases.keys) == ["gather", "forward", "backward", "allreduce", "optimizer"])
        for (name, spread) in phases {
            #expect(spread["min"]! <= spread["median"]! && spread["median"]! <= spread["max"]!, "\(name)")
        }
        for key in ["samples_per_second", "gflops", "peak_gflops", "eval_seconds", "startup_seconds"] {
            #expect((report[key] as? Double ?? -1) > 0, "\(key)")
        }
        #expect((report["peak_rss_mb"] as! [String: Double])["max"]! > 0)
        #expect(report["skips_zero_inputs"] as? Bool == true)
        // Rank 0 evaluates with the cores the other rank lends it; with MPI_Allreduce, alone.
        #expect(report["eval_workers"] as? Int == 2, "\(report)")
        let summing = try Support.run(
            Support.mpirunScript, ["2", bin, "bench", "--data-dir", data, "--steps", "3", "--warmup", "1", "--json"],
            environment: ["DPTRAIN_GRADIENT_SUM": "allreduce"], timeout: 120)
        #expect(summing.status == 0, "\(summing.stderr)")
        let alone = try JSONSerialization.jsonObject(with: Data(summing.stdout.utf8)) as! [String: Any]
        #expect(alone["eval_workers"] as? Int == 1, "\(alone)")
        // The ranks sharing one copy of the parameters say how they stored them; ranks with a
        // copy each, one worker apiece, have nobody else reading theirs.
        #expect(["cached", "streamed"].contains(report["parameter_stores"] as? String ?? ""), "\(report)")
        #expect(alone["parameter_stores"] is NSNull, "\(alone)")
        let dense = try Support.run(
            bin, ["bench", "--data-dir", data, "--steps", "3", "--warmup", "1", "--json", "--dense-inputs"])
        #expect(dense.status == 0, "\(dense.stderr)")
        let denseReport = try JSONSerialization.jsonObject(with: Data(dense.stdout.utf8)) as! [String: Any]
        #expect(denseReport["skips_zero_inputs"] as? Bool == false)
    }

    @Test func benchTimesTheAllreduceAloneInEitherWireFormat() throws {
        let bin = try Support.binary()
        let data = Support.makeTinyMNIST(train: 64, test: 16)
        for (format, bytesPerFloat) in [("none", 4), ("bf16", 2)] {
            let r = try Support.run(
                Support.mpirunScript,
                [
                    "2", bin, "bench", "--data-dir", data, "--allreduce-only", "--allreduce-floats", "1000",
                    "--allreduce-compression", format, "--steps", "5", "--warmup", "1", "--json",
                ], timeout: 120)
            #expect(r.status == 0, "\(r.stderr)")
            let report = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            #expect(
                report["world_size"] as? Int == 2 && report["floats"] as? Int == 1000
                    && report["bytes"] as? Int == 1000 * bytesPerFloat)
            let seconds = report["allreduce_seconds"] as! [String: Double]
            #expect(
                0 < seconds["min"]! && seconds["min"]! <= seconds["median"]! && seconds["median"]! <= seconds["max"]!)
        }
        // The model's gradient by default: the MLP's 101,770 parameters and the step's 3 statistics.
        let mlp = try Support.run(bin, ["bench", "--data-dir", data, "--allreduce-only", "--steps", "2", "--json"])
        #expect(mlp.status == 0, "\(mlp.stderr)")
        #expect(
            (try JSONSerialization.jsonObject(with: Data(mlp.stdout.utf8)) as! [String: Any])["floats"] as? Int
                == 101_773)
        let misplaced = try Support.run(bin, ["bench", "--data-dir", data, "--allreduce-floats", "10"])
        #expect(misplaced.status != 0 && misplaced.stderr.contains("--allreduce-only"), "\(misplaced.stderr)")
    }
}
