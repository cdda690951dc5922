import DPTrain
import Foundation
import Testing

/// Whether simulated hosts (Launch/simulate-hosts.sh: network namespaces) can be made here, and
/// if not, why: the reason the multi-host tests print when they are skipped.
enum SimulatedHosts {
    static let unavailableReason: String? = {
        guard geteuid() == 0 else { return "simulated hosts need root (network namespaces)" }
        for tool in ["/usr/sbin/ip", "/usr/sbin/tc", "/usr/bin/unshare"] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "simulated hosts need \(tool) (iproute2, util-linux)"
        }
        if FileManager.default.fileExists(atPath: "/run/dptrain-simulate-hosts/made") {
            return "simulated hosts are already up (Launch/simulate-hosts.sh down removes them)"
        }
        let probe = "dpt-probe-\(getpid())"
        guard let made = try? Support.run("/usr/sbin/ip", ["netns", "add", probe], timeout: 10), made.status == 0 else {
            return "this machine cannot make network namespaces (ip netns add failed)"
        }
        _ = try? Support.run("/usr/sbin/ip", ["netns", "delete", probe], timeout: 10)
        return nil
    }()
}

extension EndToEndTests {
    /// dptrain on simulated hosts, each a network namespace with its own host name, launched by
    /// mpirun through Launch/cluster.sh as on a cluster, the ranks talking TCP only. N hosts x 1
    /// rank compute, bit for bit, what N ranks on one machine compute (the same slices, and the
    /// same MPI reduction over shared memory or TCP), and what one process with N worker threads
    /// computes when N is 2; for more workers the threads add their gradients in worker order
    /// while MPI's allreduce groups them its own way, so the losses agree to rounding (1e-4 a
    /// step). A checkpoint written on 2 hosts resumes in one process.
    @Suite("Several hosts", .enabled(if: SimulatedHosts.unavailableReason == nil,
                                     Comment(rawValue: SimulatedHosts.unavailableReason ?? "")))
    struct SeveralHosts {
        let bin: String
        init() throws { bin = try Support.binary() }

        /// `dptrain train` on `hosts` simulated hosts, one rank each, through Launch/cluster.sh.
        func onHosts(_ hosts: Int, _ args: [String]) throws -> Support.ProcessResult {
            let script = Support.packageRoot.appendingPathComponent("Launch/simulate-hosts.sh").path
            let cluster = Support.packageRoot.appendingPathComponent("Launch/cluster.sh").path
            return try Support.run(script, ["run", "\(hosts)", "--", cluster] + args, environment: ["DPTRAIN_BIN": bin], timeout: 300)
        }

        func inOneProcess(threads: Int, _ args: [String]) throws -> Support.ProcessResult {
            try Support.run(bin, ["train", "--threads", "\(threads)"] + args)
        }

        func events(_ metrics: String) throws -> (losses: [Double], summary: [String: Any]) {
            let all = try Support.readMetrics(metrics)
            let summary = try #require(all.last { $0["event"] as? String == "summary" })
            return (all.filter { $0["event"] as? String == "step" }.map { $0["loss"] as! Double }, summary)
        }

        @Test(arguments: [2, 4])
        func sameLossesAndParametersAsOnOneMachine(hosts: Int) throws {
            let data = Support.makeTinyMNIST(train: 250, test: 40)
            let tmp = Support.temporaryDirectory()
            let args = ["--config", "Configs/mlp.yaml", "--data-dir", data, "--epochs", "2", "--batch-size", "32", "--log-every", "1", "--seed", "3"]
            let distributed = try onHosts(hosts, args + ["--metrics-file", "\(tmp)/hosts.jsonl"])
            try #require(distributed.status == 0, "\(distributed.stderr)")
            #expect(distributed.stderr.contains("\(hosts) ranks"), "\(distributed.stderr)")
            let ranks = try Support.run(Support.mpirunScript, ["\(hosts)", bin, "train", "--threads", "1"] + args + ["--metrics-file", "\(tmp)/ranks.jsonl"])
            try #require(ranks.status == 0, "\(ranks.stderr)")
            let threads = try inOneProcess(threads: hosts, args + ["--metrics-file", "\(tmp)/threads.jsonl"])
            try #require(threads.status == 0, "\(threads.stderr)")
            let (a, b, c) = (try events("\(tmp)/hosts.jsonl"), try events("\(tmp)/ranks.jsonl"), try events("\(tmp)/threads.jsonl"))
            #expect(a.summary["world_size"] as? Int == hosts && a.losses.count == 16)
            #expect(a.losses == b.losses, "\(hosts) hosts: \(a.losses)\n\(hosts) ranks on one machine: \(b.losses)")
            #expect(a.summary["parameter_checksum"] as? String == b.summary["parameter_checksum"] as? String)
            #expect(c.losses.count == a.losses.count)
            for (step, (x, y)) in zip(a.losses, c.losses).enumerated() {
                #expect(abs(x - y) <= 1e-4, "step \(step + 1): \(hosts) hosts \(x), one process x \(hosts) threads \(y)")
            }
            if hosts == 2 {
                #expect(a.losses == c.losses && a.summary["parameter_checksum"] as? String == c.summary["parameter_checksum"] as? String)
            }
        }

        @Test func aCheckpointWrittenOnTwoHostsResumesInOneProcess() throws {
            let data = Support.makeTinyMNIST(train: 250, test: 40)
            let tmp = Support.temporaryDirectory()
            let args = ["--config", "Configs/mlp.yaml", "--data-dir", data, "--epochs", "2", "--log-every", "1"]
            let first = try onHosts(2, args + ["--max-steps", "11", "--checkpoint-dir", "\(tmp)/ckpt"])
            try #require(first.status == 0, "\(first.stderr)")
            let resumed = try inOneProcess(threads: 2, args + ["--resume", "--checkpoint-dir", "\(tmp)/ckpt", "--metrics-file", "\(tmp)/resumed.jsonl"])
            #expect(resumed.status == 0 && resumed.stderr.contains("saved by 2 rank(s)"), "\(resumed.stderr)")
            let straight = try inOneProcess(threads: 2, args + ["--metrics-file", "\(tmp)/straight.jsonl"])
            try #require(straight.status == 0, "\(straight.stderr)")
            let (r, s) = (try events("\(tmp)/resumed.jsonl"), try events("\(tmp)/straight.jsonl"))
            #expect(r.summary["steps"] as? Int == 16)
            #expect(r.losses == Array(s.losses.suffix(5)), "steps 12-16 after the resume")
            #expect(r.summary["parameter_checksum"] as? String == s.summary["parameter_checksum"] as? String)
        }
    }
}
