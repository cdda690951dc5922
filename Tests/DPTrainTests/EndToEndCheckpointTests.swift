import DPTrain
import Foundation
import Testing

extension EndToEndTests {
    /// Checkpoints, resuming at the same and at another world size, and failing safely.
    @Suite("Checkpoints and failures")
    struct Checkpointing {
        let bin: String
        init() throws { bin = try Support.binary() }

        func dptrain(ranks: Int?, _ args: [String], timeout: Double = 300) throws -> Support.ProcessResult {
            try ranks.map { try Support.run(Support.mpirunScript, ["\($0)", bin] + args, timeout: timeout) }
                ?? Support.run(bin, args, timeout: timeout)
        }

        func summary(_ metrics: String) throws -> [String: Any] {
            try #require(try Support.readMetrics(metrics).last { $0["event"] as? String == "summary" })
        }

        func stepLosses(_ metrics: String) throws -> [Int: Double] {
            Dictionary(
                uniqueKeysWithValues: try Support.readMetrics(metrics).filter { $0["event"] as? String == "step" }
                    .map { ($0["step"] as! Int, $0["loss"] as! Double) })
        }

        /// In both layouts of 2 workers: 2 ranks, and one process whose 2 threads write each
        /// update to the other of two parameter buffers (after 11 steps, the second one).
        @Test(arguments: [(2, 1), (nil, 2)] as [(Int?, Int)])
        func resumeMidEpochIsBitIdenticalAtTheSameWorldSize(ranks: Int?, threads: Int) throws {
            let data = Support.makeTinyMNIST(train: 250, test: 40)
            let base = ["train", "--data-dir", data, "--epochs", "2", "--log-every", "1", "--threads", "\(threads)"]
            let tmp = Support.temporaryDirectory()
            let straight = try dptrain(
                ranks: ranks, base + ["--metrics-file", "\(tmp)/a.jsonl", "--checkpoint-dir", "\(tmp)/a"])
            #expect(straight.status == 0, "\(straight.stderr)")
            // Stop after 11 of 16 steps (mid-epoch 2), then resume to the end.
            let first = try dptrain(
                ranks: ranks,
                base + ["--max-steps", "11", "--checkpoint-dir", "\(tmp)/b", "--metrics-file", "\(tmp)/b1.jsonl"])
            #expect(first.status == 0, "\(first.stderr)")
            let second = try dptrain(
                ranks: ranks, base + ["--resume", "--checkpoint-dir", "\(tmp)/b", "--metrics-file", "\(tmp)/b2.jsonl"])
            #expect(second.status == 0 && second.stderr.contains("resuming from"), "\(second.stderr)")
            #expect(try summary("\(tmp)/b2.jsonl")["steps"] as? Int == 16)
            #expect(
                try summary("\(tmp)/a.jsonl")["parameter_checksum"] as! String == summary("\(tmp)/b2.jsonl")[
                    "parameter_checksum"] as! String)
            // The final checkpoints hold identical tensors, optimizer state included.
            let a = try Checkpoint.read(path: Checkpointer(directory: "\(tmp)/a").files()[0])
            let b = try Checkpoint.read(path: Checkpointer(directory: "\(tmp)/b").files()[0])
            #expect(a.tensors == b.tensors)
            let losses = try stepLosses("\(tmp)/a.jsonl"), resumed = try stepLosses("\(tmp)/b2.jsonl")
            for step in 12...16 { #expect(losses[step] == resumed[step], "step \(step)") }
        }

        /// Ranks of a machine share one copy of the parameters and optimizer state, each updating
        /// a slice: 4 ranks compute what one process of 4 threads does, bit for bit, and rank 0's
        /// checkpoint holds every rank's slice of it (Adam's moments; SGD's momentum with L2, whose
        /// gradient each rank adds to its slice and whose penalty is reported in the loss).
        @Test(arguments: ["Configs/mlp.yaml", "Configs/mlp-sgd.yaml"])
        func ranksSharingAMachineCheckpointTheWholeOptimizerState(config: String) throws {
            let data = Support.makeTinyMNIST(train: 250, test: 40)
            let base = [
                "train", "--config", config, "--data-dir", data, "--epochs", "2", "--batch-size", "32",
                "--log-every", "1", "--max-steps", "11",
            ]
            let tmp = Support.temporaryDirectory()
            let ranks = try dptrain(
                ranks: 4,
                base + ["--threads", "1", "--metrics-file", "\(tmp)/r.jsonl", "--checkpoint-dir", "\(tmp)/r"])
            try #require(ranks.status == 0, "\(ranks.stderr)")
            #expect(ranks.stderr.contains("4 ranks a machine sum in shared memory and update one shared copy"))
            let threads = try dptrain(
                ranks: nil,
                base + ["--threads", "4", "--metrics-file", "\(tmp)/t.jsonl", "--checkpoint-dir", "\(tmp)/t"])
            try #require(threads.status == 0, "\(threads.stderr)")
            #expect(try stepLosses("\(tmp)/r.jsonl") == stepLosses("\(tmp)/t.jsonl"))
            let a = try Checkpoint.read(path: Checkpointer(directory: "\(tmp)/r").files()[0])
            let b = try Checkpoint.read(path: Checkpointer(directory: "\(tmp)/t").files()[0])
            let state = a.tensors.map(\.name).filter { $0.hasPrefix("adam.") || $0.hasPrefix("sgd.") }
            #expect(state.count == (config.hasSuffix("sgd.yaml") ? 4 : 8), "\(state)")
            #expect(a.tensors == b.tensors)
        }

        @Test(arguments: [1, 4])
        func resumeAtAnotherWorldSizeContinuesTheSameTrajectory(ranks: Int) throws {
            let data = Support.makeTinyMNIST(train: 250, test: 40)
            let base = ["train", "--data-dir", data, "--epochs", "2", "--log-every", "1"]
            let tmp = Support.temporaryDirectory()
            _ = try dptrain(ranks: 2, base + ["--metrics-file", "\(tmp)/a.jsonl"])
            let first = try dptrain(ranks: 2, base + ["--max-steps", "11", "--checkpoint-dir", "\(tmp)/b"])
            #expect(first.status == 0, "\(first.stderr)")
            let second = try dptrain(
                ranks: ranks, base + ["--resume", "--checkpoint-dir", "\(tmp)/b", "--metrics-file", "\(tmp)/b2.jsonl"])
            #expect(second.status == 0, "\(second.stderr)")
            let losses = try stepLosses("\(tmp)/a.jsonl"), resumed = try stepLosses("\(tmp)/b2.jsonl")
            #expect(resumed.count == 5)
            for step in 12...16 {
                #expect(
                    abs(losses[step]! - resumed[step]!) <= 1e-4, "step \(step): \(losses[step]!) vs \(resumed[step]!)")
            }
            let s1 = try summary("\(tmp)/a.jsonl"), s2 = try summary("\(tmp)/b2.jsonl")
            #expect(abs((s1["test_loss"] as! Double) - (s2["test_loss"] as! Double)) <= 1e-4)
        }

        @Test func resumeFromAMissingOrForeignFileIsAClearError() throws {
            let data = Support.makeTinyMNIST(train: 64, test: 16)
            let tmp = Support.temporaryDirectory()
            let missing = try dptrain(
                ranks: 2, ["train", "--data-dir", data, "--resume-from", "\(tmp)/nope.safetensors"], timeout: 60)
            #expect(missing.status != 0 && missing.stderr.contains("\(tmp)/nope.safetensors"), "\(missing.stderr)")
            // A checkpoint of the CNN given to the MLP config.
            let cnn = try dptrain(
                ranks: nil,
                [
                    "train", "--config", "Configs/cnn.yaml", "--data-dir", data, "--max-steps", "1", "--checkpoint-dir",
                    "\(tmp)/cnn",
                ])
            #expect(cnn.status == 0, "\(cnn.stderr)")
            let file = Checkpointer(directory: "\(tmp)/cnn").files()[0]
            let before = try Data(contentsOf: URL(fileURLWithPath: file))
            let foreign = try dptrain(ranks: 2, ["train", "--data-dir", data, "--resume-from", file], timeout: 60)
            #expect(foreign.status != 0 && foreign.stderr.contains("checkpoint of another model"), "\(foreign.stderr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == before, "a good file is never touched")
            let none = try dptrain(
                ranks: nil, ["train", "--data-dir", data, "--resume", "--checkpoint-dir", "\(tmp)/empty"])
            #expect(none.status != 0 && none.stderr.contains("no valid checkpoint"), "\(none.stderr)")
        }

        /// Only rank 0 writes checkpoints; when it cannot, the whole job stops at once with the
        /// reason, instead of rank 1 waiting in the next allreduce.
        @Test func aCheckpointThatCannotBeWrittenStopsEveryRankPromptly() throws {
            let data = Support.makeTinyMNIST(train: 128, test: 16)
            let tmp = Support.temporaryDirectory()
            Support.write([0], to: "\(tmp)/file")
            let r = try dptrain(
                ranks: 2, ["train", "--data-dir", data, "--epochs", "3", "--checkpoint-dir", "\(tmp)/file/ck"],
                timeout: 60)
            #expect(r.status != 0)
            #expect(r.seconds < 30, "took \(r.seconds) s")
            #expect(r.stderr.contains("cannot write checkpoint") && r.stderr.contains("\(tmp)/file/ck"), "\(r.stderr)")
        }

        @Test func nonFiniteLossStopsNamingTheStepWithoutCheckpointingIt() throws {
            let data = Support.makeTinyMNIST(train: 128, test: 16)
            let tmp = Support.temporaryDirectory()
            let text = try String(
                contentsOfFile: Support.packageRoot.appendingPathComponent("Configs/mlp.yaml").path, encoding: .utf8
            )
            .replacingOccurrences(of: "learning_rate: 0.001", with: "learning_rate: 1.0e30")
            try text.write(toFile: "\(tmp)/huge-lr.yaml", atomically: true, encoding: .utf8)
            let r = try dptrain(
                ranks: 2,
                [
                    "train", "--config", "\(tmp)/huge-lr.yaml", "--data-dir", data, "--checkpoint-dir", "\(tmp)/ck",
                    "--epochs", "3",
                ], timeout: 60)
            try Support.expectNonFiniteStopWithoutCheckpointOfIt(r, checkpoints: "\(tmp)/ck")
            // With on_nonfinite: skip the run finishes and reports the skipped steps.
            try (text + "\n").replacingOccurrences(
                of: "  log_every: 100", with: "  log_every: 100\n  on_nonfinite: skip"
            )
            .write(toFile: "\(tmp)/skip.yaml", atomically: true, encoding: .utf8)
            let skip = try dptrain(
                ranks: 2,
                [
                    "train", "--config", "\(tmp)/skip.yaml", "--data-dir", data, "--epochs", "1",
                    "--metrics-file", "\(tmp)/skip.jsonl",
                ], timeout: 60)
            #expect(skip.status == 0, "\(skip.stderr)")
            #expect((try summary("\(tmp)/skip.jsonl")["skipped_steps"] as! Int) > 0)
        }

        /// kill -9 of rank 1 mid-run: mpirun exits non-zero promptly, the newest checkpoint is valid,
        /// and --resume continues from it exactly as a run that was never interrupted. The job has
        /// 1,000 epochs to go, so it is still running when the kill comes, whatever the machine's
        /// speed; the runs compared stop 300 steps after the checkpoint.
        @Test func killedRankStopsTheJobAndResumeContinuesExactly() throws {
            let data = try Support.realMNIST()
            let tmp = Support.temporaryDirectory()
            let args = ["train", "--data-dir", data, "--epochs", "1000", "--threads", "1", "--test-limit", "2000"]
            let ckpt = "\(tmp)/ck"
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Support.mpirunScript)
            process.arguments = ["2", bin] + args + ["--checkpoint-dir", ckpt, "--config", "\(tmp)/every-100.yaml"]
            let text = try String(
                contentsOfFile: Support.packageRoot.appendingPathComponent("Configs/mlp.yaml").path, encoding: .utf8)
            try (text + "checkpoint:\n  every_steps: 100\n  keep: 2\n").write(
                toFile: "\(tmp)/every-100.yaml", atomically: true, encoding: .utf8)
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let checkpointer = Checkpointer(directory: ckpt)
            let deadline = Date().addingTimeInterval(120)
            while checkpointer.files().isEmpty && process.isRunning && Date() < deadline { usleep(10_000) }
            let victim = try #require(Self.rankProcess(rank: 1, argument: ckpt), "rank 1 not found")
            kill(victim, SIGKILL)
            let killedAt = Date()
            while process.isRunning && Date().timeIntervalSince(killedAt) < 60 { usleep(20_000) }
            let waited = Date().timeIntervalSince(killedAt)
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            #expect(process.terminationStatus != 0)
            #expect(waited < 30, "mpirun took \(waited) s to exit after kill -9 of rank 1")

            let newest = try #require(checkpointer.files().first)
            let step = try #require(try Checkpoint.read(path: newest).integer("step"))
            let end = ["--max-steps", "\(step + 300)", "--config", "\(tmp)/every-100.yaml"]
            let resumed = try dptrain(
                ranks: 2, args + end + ["--checkpoint-dir", ckpt, "--resume", "--metrics-file", "\(tmp)/b.jsonl"])
            #expect(resumed.status == 0, "\(resumed.stderr)")
            let uninterrupted = try dptrain(ranks: 2, args + end + ["--metrics-file", "\(tmp)/a.jsonl"])
            #expect(uninterrupted.status == 0, "\(uninterrupted.stderr)")
            let (a, b) = (try summary("\(tmp)/a.jsonl"), try summary("\(tmp)/b.jsonl"))
            #expect(b["steps"] as? Int == step + 300)
            #expect(
                a["parameter_checksum"] as? String == b["parameter_checksum"] as? String,
                "uninterrupted \(a), interrupted at step \(step) and resumed \(b)")
        }

        /// A rank that stops answering (SIGSTOP) trips the other rank's watchdog, which names
        /// itself, the collective and the step, and the job ends non-zero.
        @Test func watchdogStopsAJobWhoseRankHangs() throws {
            let data = Support.makeTinyMNIST(train: 250, test: 16)
            let tmp = Support.temporaryDirectory()
            let text = try String(
                contentsOfFile: Support.packageRoot.appendingPathComponent("Configs/mlp.yaml").path, encoding: .utf8
            )
            .replacingOccurrences(of: "  log_every: 100", with: "  log_every: 1\n  collective_timeout: 3")
            try text.write(toFile: "\(tmp)/watchdog.yaml", atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Support.mpirunScript)
            process.arguments = [
                "2", bin, "train", "--config", "\(tmp)/watchdog.yaml", "--data-dir", data, "--epochs", "100000",
                "--metrics-file", "\(tmp)/m.jsonl", "--test-limit", "1", "--quiet",
            ]
            let err = Pipe()
            process.standardOutput = FileHandle.nullDevice
            process.standardError = err
            try process.run()
            let deadline = Date().addingTimeInterval(60)
            while process.isRunning && Date() < deadline
                && (FileManager.default.contents(atPath: "\(tmp)/m.jsonl")?.count ?? 0) < 2000
            { usleep(20_000) }
            let victim = try #require(Self.rankProcess(rank: 1, argument: "\(tmp)/watchdog.yaml"), "rank 1 not found")
            kill(victim, SIGSTOP)
            let stoppedAt = Date()
            while process.isRunning && Date().timeIntervalSince(stoppedAt) < 60 { usleep(50_000) }
            let waited = Date().timeIntervalSince(stoppedAt)
            if process.isRunning { kill(victim, SIGKILL); process.terminate() }
            process.waitUntilExit()
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationStatus != 0)
            #expect(waited < 30, "the job took \(waited) s to end after rank 1 hung")
            // Rank 0 waits in a step's barrier or in the one that ends an epoch's evaluation.
            #expect(
                stderr.contains("watchdog: rank 0")
                    && (stderr.contains("MPI_Barrier(ranks of this machine)")
                        || stderr.contains("MPI_Ibarrier(ranks of this machine, after rank 0's evaluation)"))
                    && stderr.contains("global step"), "\(stderr)")
        }

        /// The pid of the dptrain process of MPI rank `rank` whose command line contains `argument`.
        static func rankProcess(rank: Int, argument: String) -> pid_t? {
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = Int32(entry),
                    let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
                    let environ = FileManager.default.contents(atPath: "/proc/\(entry)/environ")
                else { continue }
                let args = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                let env = environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                if args.first?.hasSuffix("dptrain") == true, args.contains(argument),
                    env.contains("OMPI_COMM_WORLD_RANK=\(rank)")
                {
                    return pid
                }
            }
            return nil
        }
    }
}
