import DPTrain
import Foundation
import Testing

extension EndToEndTests {
    /// The cluster recipes, as written, on this machine; and inspect.
    @Suite("Recipes and tools")
    struct Tools {
        let bin: String
        init() throws { bin = try Support.binary() }

        @Test func clusterRecipeRunsWithLocalhostAsTheHostList() throws {
            let data = Support.makeTinyMNIST(train: 128, test: 16)
            let metrics = Support.temporaryDirectory() + "/m.jsonl"
            let script = Support.packageRoot.appendingPathComponent("Launch/cluster.sh").path
            let r = try Support.run(script, ["--data-dir", data, "--max-steps", "4", "--metrics-file", metrics],
                                    environment: ["DPTRAIN_HOSTS": "localhost:2", "DPTRAIN_BIN": bin], timeout: 600)
            #expect(r.status == 0, "\(r.stderr)")
            let summary = try #require(try Support.readMetrics(metrics).last)
            #expect(summary["world_size"] as? Int == 2 && summary["steps"] as? Int == 4)
        }

        @Test func slurmScriptRunsWithTheVariablesSlurmSets() throws {
            let data = Support.makeTinyMNIST(train: 128, test: 16)
            let metrics = Support.temporaryDirectory() + "/m.jsonl"
            let r = try Support.run("/bin/bash", [Support.packageRoot.appendingPathComponent("Launch/slurm.sbatch").path,
                                                  "--data-dir", data, "--max-steps", "4", "--metrics-file", metrics],
                                    environment: ["SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_CPUS_PER_TASK": "1",
                                                  "SLURM_SUBMIT_DIR": Support.packageRoot.path, "DPTRAIN_BIN": bin])
            #expect(r.status == 0, "\(r.stderr)")
            let summary = try #require(try Support.readMetrics(metrics).last)
            #expect(summary["world_size"] as? Int == 2)
        }

        @Test func inspectShowsTensorsAndReportsCorruption() throws {
            let data = Support.makeTinyMNIST(train: 64, test: 16)
            let tmp = Support.temporaryDirectory()
            _ = try Support.run(bin, ["train", "--data-dir", data, "--max-steps", "1", "--checkpoint-dir", "\(tmp)/ck"])
            let file = try #require(Checkpointer(directory: "\(tmp)/ck").files().first)
            let good = try Support.run(bin, ["inspect", file])
            #expect(good.status == 0 && good.stdout.contains("checksum OK") && good.stdout.contains("dense_1.kernel")
                    && good.stdout.contains("[784, 128]") && good.stdout.contains("units: 128"), "\(good.stdout)")
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
            bytes[bytes.count - 3] ^= 0xFF
            Support.write(bytes, to: "\(tmp)/bad.safetensors")
            let bad = try Support.run(bin, ["inspect", "\(tmp)/bad.safetensors"])
            #expect(bad.status == 1 && bad.stderr.contains("checksum mismatch") && bad.stderr.contains("bad.safetensors"), "\(bad.stderr)")
            Support.write(Array(bytes.prefix(20)), to: "\(tmp)/short.safetensors")
            let short = try Support.run(bin, ["inspect", "\(tmp)/short.safetensors"])
            #expect(short.status == 1 && short.stderr.contains("short.safetensors"), "\(short.stderr)")
        }
    }
}
