import DPTrain
import Foundation
import Testing

extension EndToEndTests {
    /// A stop signal mid-run: every rank finishes the step, rank 0 checkpoints it, the job exits
    /// 75, and `--resume` continues as if nothing had happened.
    @Suite("Preemption")
    struct Preemption {
        let bin: String
        init() throws { bin = try Support.binary() }

        /// Steps logged so far in a metrics file being written (a half-written line is not counted).
        static func stepsLogged(_ metrics: String) -> Int {
            ((try? String(contentsOfFile: metrics, encoding: .utf8)) ?? "").components(
                separatedBy: "\"event\":\"step\""
            ).count - 1
        }

        func events(_ metrics: String) throws -> (losses: [Int: Double], summary: [String: Any]) {
            let all = try Support.readMetrics(metrics)
            let summary = try #require(all.last { $0["event"] as? String == "summary" })
            return (
                Dictionary(
                    uniqueKeysWithValues: all.filter { $0["event"] as? String == "step" }.map {
                        ($0["step"] as! Int, $0["loss"] as! Double)
                    }),
                summary
            )
        }

        /// SIGTERM to Launch/train.sh running 2 ranks (it hands mpirun a SIGUSR1, which mpirun
        /// forwards intact): exit 75, a checkpoint of the step the run stopped at, and resuming from
        /// it ends on the parameters of an uninterrupted run, bit for bit with 2 workers again and to
        /// rounding with one. The run has a million epochs to go, so the signal finds it running
        /// whatever the machine's speed; the runs compared stop 100 steps after the stop.
        @Test func aSignalMidRunCheckpointsTheStepAndResumeContinuesExactly() throws {
            let data = Support.makeTinyMNIST(train: 250, test: 40)
            let tmp = Support.temporaryDirectory()
            let args = ["--config", "Configs/mlp.yaml", "--data-dir", data, "--epochs", "1000000", "--log-every", "1"]
            let launcher = Support.packageRoot.appendingPathComponent("Launch/train.sh").path
            let environment = ["DPTRAIN_BIN": bin, "DPTRAIN_RANKS": "2"]
            let run = try Support.start(
                launcher, args + ["--checkpoint-dir", "\(tmp)/ck", "--metrics-file", "\(tmp)/stopped.jsonl"],
                environment: environment)
            let started = Support.eventually { Self.stepsLogged("\(tmp)/stopped.jsonl") >= 40 }
            run.signal(SIGTERM)
            let stopped = run.wait(timeout: 120)
            try #require(started, "the run never logged 40 steps:\n\(stopped.stderr)")
            #expect(stopped.status == ExitStatus.stoppedWithCheckpoint, "\(stopped.stderr)")
            #expect(
                stopped.stderr.contains("received SIGUSR1")
                    && stopped.stderr.contains("stopped by a signal after global step"), "\(stopped.stderr)")
            let (before, summary) = try events("\(tmp)/stopped.jsonl")
            #expect(summary["stopped_by_signal"] as? Bool == true)
            let step = try #require(summary["steps"] as? Int)
            #expect(step >= 40 && before.keys.max() == step, "stopped at step \(step)")
            let files = Checkpointer(directory: "\(tmp)/ck").files()
            let newest = try Checkpoint.read(path: try #require(files.first))
            #expect(newest.integer("step") == step, "the newest checkpoint holds the step the run stopped at")

            let end = ["--max-steps", "\(step + 100)"]
            let straight = try Support.run(
                launcher, args + end + ["--metrics-file", "\(tmp)/straight.jsonl"], environment: environment)
            try #require(straight.status == 0, "\(straight.stderr)")
            let (all, whole) = try events("\(tmp)/straight.jsonl")
            for (label, ranks, threads) in [("2 ranks", "2", "1"), ("1 process x 1 thread", "1", "1")] {
                let resumed = try Support.run(
                    launcher,
                    args + end + [
                        "--resume-from", files[0], "--metrics-file", "\(tmp)/resumed-\(ranks).jsonl",
                        "--threads", threads,
                    ], environment: ["DPTRAIN_BIN": bin, "DPTRAIN_RANKS": ranks])
                try #require(resumed.status == 0, "\(label): \(resumed.stderr)")
                let (after, end) = try events("\(tmp)/resumed-\(ranks).jsonl")
                #expect(
                    after.keys.min() == step + 1 && after.keys.max() == step + 100,
                    "\(label) continues from step \(step + 1)")
                if ranks == "2" {
                    #expect(
                        end["parameter_checksum"] as? String == whole["parameter_checksum"] as? String,
                        "\(label): bit for bit")
                    #expect(after.allSatisfy { all[$0.key] == $0.value })
                } else {
                    for (s, loss) in after {
                        #expect(abs(loss - all[s]!) <= 1e-4, "\(label), step \(s): \(loss) vs \(all[s]!)")
                    }
                }
            }
        }

        /// Without a checkpoint directory there is nothing to resume from: the run still stops at a
        /// step boundary, says so, and exits as a process killed by the signal would.
        @Test func aSignalWithoutACheckpointDirectoryExitsWith128PlusTheSignal() throws {
            let data = Support.makeTinyMNIST(train: 250, test: 40)
            let tmp = Support.temporaryDirectory()
            let run = try Support.start(
                bin,
                [
                    "train", "--data-dir", data, "--epochs", "1000000", "--log-every", "1", "--metrics-file",
                    "\(tmp)/m.jsonl",
                ])
            let started = Support.eventually { Self.stepsLogged("\(tmp)/m.jsonl") >= 20 }
            run.signal(SIGINT)
            let stopped = run.wait(timeout: 60)
            try #require(started, "\(stopped.stderr)")
            #expect(stopped.status == ExitStatus.stoppedWithoutCheckpoint(signal: SIGINT), "\(stopped.stderr)")
            #expect(stopped.stderr.contains("no checkpoint directory, nothing was saved"), "\(stopped.stderr)")
        }
    }
}
