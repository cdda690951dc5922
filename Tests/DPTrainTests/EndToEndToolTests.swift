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
            let r = try Support.run(
                script, ["--data-dir", data, "--max-steps", "4", "--metrics-file", metrics],
                environment: ["DPTRAIN_HOSTS": "localhost:2", "DPTRAIN_BIN": bin], timeout: 600)
            #expect(r.status == 0, "\(r.stderr)")
            let summary = try #require(try Support.readMetrics(metrics).last)
            #expect(summary["world_size"] as? Int == 2 && summary["steps"] as? Int == 4)
        }

        /// The README's first command, as written, with the release binary the suite already built.
        @Test func readmeTrainCommandRunsUnderMpirun() throws {
            let metrics = Support.temporaryDirectory() + "/m.jsonl"
            let script = Support.packageRoot.appendingPathComponent("Launch/train.sh").path
            let r = try Support.run(
                script, ["--data-dir", try Support.realMNIST(), "--max-steps", "50", "--metrics-file", metrics],
                environment: ["DPTRAIN_BIN": bin], timeout: 300)
            #expect(r.status == 0, "\(r.stderr)")
            let ranks = try #require(
                r.stderr.firstMatch(of: #/dptrain: mpirun -np (\d+) /#).map { Int($0.1)! }, "\(r.stderr)")
            let summary = try #require(try Support.readMetrics(metrics).last)
            #expect(summary["world_size"] as? Int == ranks && summary["steps"] as? Int == 50)
        }

        /// Every config in Configs/ trains one epoch through Launch/train.sh, as the README says, in a
        /// copy of the repository whose data/ is empty: the launcher makes what each config reads
        /// (MNIST copied from DPTRAIN_DATA, data/mnist.npz converted from it, the breast-cancer table
        /// from scikit-learn's wheel on PyPI). A file it cannot make stops it, naming the file.
        @Test func everyConfigTrainsThroughTheLauncherFromAnEmptyDataFolder() throws {
            let clone = Support.temporaryDirectory()
            for folder in ["Launch", "Configs"] {
                try FileManager.default.copyItem(
                    atPath: Support.packageRoot.appendingPathComponent(folder).path, toPath: "\(clone)/\(folder)")
            }
            let configs = try FileManager.default.contentsOfDirectory(atPath: "\(clone)/Configs")
                .filter { $0.hasSuffix(".yaml") }.sorted()
            #expect(configs.count >= 8, "\(configs)")
            let environment = ["DPTRAIN_BIN": bin, "DPTRAIN_DATA": try Support.realMNIST()]
            for config in configs {
                let metrics = "\(clone)/\(config).jsonl"
                let r = try Support.run(
                    "\(clone)/Launch/train.sh",
                    ["--config", "Configs/\(config)", "--epochs", "1", "--metrics-file", metrics],
                    environment: environment, timeout: 600)
                #expect(r.status == 0, "\(config): \(r.stderr)")
                let summary = try Support.readMetrics(metrics).last ?? [:]
                #expect(
                    summary["epochs"] as? Int == 1 && (summary["test_accuracy"] as? Double ?? 0) > 0.5,
                    "\(config): \(summary)")
            }
            try """
            model: {input_shape: [2], layers: [{type: dense, units: 1, activation: sigmoid}]}
            loss: binary_crossentropy
            data: {dir: data/own, train: table.csv, label_column: y}
            """.write(toFile: "\(clone)/Configs/own.yaml", atomically: true, encoding: .utf8)
            let own = try Support.run(
                "\(clone)/Launch/train.sh", ["--config", "Configs/own.yaml"], environment: environment)
            #expect(
                own.status == 1
                    && own.stderr.contains(
                        "data/own/table.csv: not found, and this script does not know how to make it")
                    && !own.stderr.contains("mpirun -np"), "\(own.stderr)")
        }

        func slurmEnvironment(checkpoints: String) -> [String: String] {
            [
                "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_CPUS_PER_TASK": "1",
                "SLURM_SUBMIT_DIR": Support.packageRoot.path,
                "DPTRAIN_BIN": bin, "DPTRAIN_CHECKPOINTS": checkpoints,
            ]
        }

        @Test func slurmScriptRunsWithTheVariablesSlurmSets() throws {
            let data = Support.makeTinyMNIST(train: 128, test: 16)
            let tmp = Support.temporaryDirectory()
            let r = try Support.run(
                "/bin/bash",
                [
                    Support.packageRoot.appendingPathComponent("Launch/slurm.sbatch").path,
                    "--data-dir", data, "--max-steps", "4", "--metrics-file", "\(tmp)/m.jsonl",
                ],
                environment: slurmEnvironment(checkpoints: "\(tmp)/ck"))
            #expect(r.status == 0, "\(r.stderr)")
            let summary = try #require(try Support.readMetrics("\(tmp)/m.jsonl").last)
            #expect(summary["world_size"] as? Int == 2)
            #expect(!Checkpointer(directory: "\(tmp)/ck").files().isEmpty, "checkpoints go to DPTRAIN_CHECKPOINTS")
        }

        /// The warning SLURM's --signal=B:USR1@90 sends the script: the ranks checkpoint and the job
        /// exits 75; the next run of the script (the requeued job) resumes by itself and finishes
        /// (here 50 steps later: the job has a million epochs to go, so the signal finds it running
        /// whatever the machine's speed).
        @Test func slurmScriptCheckpointsOnItsWarningSignalAndTheNextRunResumes() throws {
            let data = Support.makeTinyMNIST(train: 250, test: 40)
            let tmp = Support.temporaryDirectory()
            let script = Support.packageRoot.appendingPathComponent("Launch/slurm.sbatch").path
            let args = [script, "--data-dir", data, "--epochs", "1000000", "--log-every", "1"]
            let run = try Support.start(
                "/bin/bash", args + ["--metrics-file", "\(tmp)/first.jsonl"],
                environment: slurmEnvironment(checkpoints: "\(tmp)/ck"))
            let started = Support.eventually { EndToEndTests.Preemption.stepsLogged("\(tmp)/first.jsonl") >= 40 }
            run.signal(SIGUSR1)
            let first = run.wait(timeout: 120)
            try #require(started, "\(first.stderr)")
            #expect(
                first.status == ExitStatus.stoppedWithCheckpoint
                    && first.stderr.contains("submit this script again to resume"), "\(first.stderr)")
            let stoppedAt = try #require(try Support.readMetrics("\(tmp)/first.jsonl").last?["steps"] as? Int)
            let second = try Support.run(
                "/bin/bash", args + ["--max-steps", "\(stoppedAt + 50)", "--metrics-file", "\(tmp)/second.jsonl"],
                environment: slurmEnvironment(checkpoints: "\(tmp)/ck"))
            #expect(second.status == 0 && second.stderr.contains("resuming from"), "\(second.stderr)")
            #expect(try Support.readMetrics("\(tmp)/second.jsonl").last?["steps"] as? Int == stoppedAt + 50)
        }

        @Test func inspectShowsTensorsAndReportsCorruption() throws {
            let data = Support.makeTinyMNIST(train: 64, test: 16)
            let tmp = Support.temporaryDirectory()
            _ = try Support.run(
                bin, ["train", "--data-dir", data, "--max-steps", "1", "--checkpoint-dir", "\(tmp)/ck"])
            let file = try #require(Checkpointer(directory: "\(tmp)/ck").files().first)
            let good = try Support.run(bin, ["inspect", file])
            #expect(
                good.status == 0 && good.stdout.contains("checksum OK") && good.stdout.contains("dense_1.kernel")
                    && good.stdout.contains("[784, 128]") && good.stdout.contains("units: 128"), "\(good.stdout)")
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
            bytes[bytes.count - 3] ^= 0xFF
            Support.write(bytes, to: "\(tmp)/bad.safetensors")
            let bad = try Support.run(bin, ["inspect", "\(tmp)/bad.safetensors"])
            #expect(
                bad.status == 1 && bad.stderr.contains("checksum mismatch") && bad.stderr.contains("bad.safetensors"),
                "\(bad.stderr)")
            Support.write(Array(bytes.prefix(20)), to: "\(tmp)/short.safetensors")
            let short = try Support.run(bin, ["inspect", "\(tmp)/short.safetensors"])
            #expect(short.status == 1 && short.stderr.contains("short.safetensors"), "\(short.stderr)")
        }

        /// `dptrain export`: an unknown format, a checkpoint that does not verify and an output that
        /// cannot be written are each one message, and leave no file behind.
        @Test func exportRefusesWhatItCannotDo() throws {
            let data = Support.makeTinyMNIST(train: 64, test: 16)
            let tmp = Support.temporaryDirectory()
            _ = try Support.run(
                bin, ["train", "--data-dir", data, "--max-steps", "1", "--checkpoint-dir", "\(tmp)/ck"])
            let file = try #require(Checkpointer(directory: "\(tmp)/ck").files().first)
            let good = try Support.run(bin, ["export", "--checkpoint", file, "--output", "\(tmp)/m.onnx"])
            #expect(good.status == 0 && good.stderr.contains("wrote \(tmp)/m.onnx: ONNX opset 17"), "\(good.stderr)")
            let format = try Support.run(
                bin, ["export", "--checkpoint", file, "--format", "tflite", "--output", "\(tmp)/m.tflite"])
            #expect(format.status != 0 && format.stderr.contains("--format") && format.stderr.contains("tflite"))
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
            bytes[bytes.count - 3] ^= 0xFF
            Support.write(bytes, to: "\(tmp)/bad.safetensors")
            let bad = try Support.run(
                bin, ["export", "--checkpoint", "\(tmp)/bad.safetensors", "--output", "\(tmp)/b.onnx"])
            #expect(bad.status == 1 && bad.stderr.contains("checksum mismatch"), "\(bad.stderr)")
            let nowhere = try Support.run(bin, ["export", "--checkpoint", file, "--output", "\(tmp)/no/dir/m.onnx"])
            #expect(
                nowhere.status == 1 && nowhere.stderr.contains("\(tmp)/no/dir/m.onnx: cannot write the model"),
                "\(nowhere.stderr)")
            let left = try FileManager.default.contentsOfDirectory(atPath: tmp).sorted()
            #expect(left == ["bad.safetensors", "ck", "m.onnx"], "\(left)")
        }

        @Test func dataVerifyDetectsAModifiedByteAndNamesTheFile() throws {
            let real = try Support.realMNIST()
            let tmp = Support.temporaryDirectory()
            for stem in KnownDataset.files {
                let path = try DataLoader.locate(stem, in: real)
                try FileManager.default.copyItem(atPath: path, toPath: "\(tmp)/\((path as NSString).lastPathComponent)")
            }
            let good = try Support.run(bin, ["data", "verify", "--data-dir", tmp])
            #expect(
                good.status == 0 && good.stdout.components(separatedBy: "ok ").count - 1 == 4,
                "\(good.stdout)\(good.stderr)")
            // Replace the training labels by a raw copy with one label changed.
            let labels = try DataLoader.locate("train-labels-idx1-ubyte", in: tmp)
            let file = try IDXFile.read(path: labels)
            var bytes = file.bytes
            bytes[123] = (bytes[123] + 1) % 10
            try FileManager.default.removeItem(atPath: labels)
            Support.write(
                IDXFile.encode(dimensions: file.dimensions, bytes: bytes), to: "\(tmp)/train-labels-idx1-ubyte")
            let bad = try Support.run(bin, ["data", "verify", "--data-dir", tmp])
            #expect(bad.status == 1)
            #expect(
                bad.stdout.contains("MISMATCH \(tmp)/train-labels-idx1-ubyte")
                    && bad.stdout.contains(KnownDataset.mnist.sha256["train-labels-idx1-ubyte"]!), "\(bad.stdout)")
        }

        /// Reads the TensorBoard file back with a reader written here from the TFRecord and
        /// protobuf specs (bitwise CRC32C, no table), and checks every scalar against the metrics.
        @Test func tensorBoardScalarsMatchTheMetrics() throws {
            let data = Support.makeTinyMNIST(train: 200, test: 40)
            let tmp = Support.temporaryDirectory()
            let r = try Support.run(
                bin,
                [
                    "train", "--data-dir", data, "--epochs", "3", "--log-every", "2", "--tensorboard", "\(tmp)/tb",
                    "--metrics-file", "\(tmp)/m.jsonl", "--config", "Configs/binary.yaml", "--batch-size", "32",
                ])
            #expect(r.status == 0, "\(r.stderr)")
            let files = try FileManager.default.contentsOfDirectory(atPath: "\(tmp)/tb")
            let file = try #require(files.first { $0.hasPrefix("events.out.tfevents.") })
            let events = try TFRecordReader.read("\(tmp)/tb/\(file)")
            #expect(events.first?.fileVersion == "brain.Event:2")
            var scalars: [String: [Int: Float]] = [:]
            for e in events { for (tag, v) in e.values { scalars[tag, default: [:]][e.step] = v } }
            let metrics = try Support.readMetrics("\(tmp)/m.jsonl")
            var checked = 0
            for m in metrics {
                let step = m["step"] as? Int ?? -1
                func check(_ tag: String, _ key: String) {
                    guard let expected = m[key] as? Double else { return }
                    // Within one float ulp: JSONSerialization's number parsing is not always correctly rounded.
                    let scalar = try? #require(scalars[tag]?[step], "\(tag) at step \(step) missing")
                    #expect(
                        scalar.map { abs(Double($0) - expected) <= Double(Float(expected).ulp) } == true,
                        "\(tag) at step \(step): \(scalar.map(String.init(describing:)) ?? "-") vs \(expected)")
                    checked += 1
                }
                switch m["event"] as? String {
                case "step": check("train/step_loss", "loss"); check("train/learning_rate", "learning_rate")
                case "epoch":
                    check("train/loss", "loss"); check("train/accuracy", "accuracy");
                    check("perf/samples_per_second", "samples_per_second")
                    check("perf/allreduce_ms", "allreduce_ms")
                case "eval":
                    let split = m["split"] as! String
                    check("\(split)/loss", "loss"); check("\(split)/accuracy", "accuracy")
                default: break
                }
            }
            #expect(checked >= 3 * 4 + 3 * 4, "every epoch's and eval's scalars were checked (\(checked))")
            #expect(scalars["validation/loss"]?.count == 3 && scalars["test/accuracy"]?.count == 3)
        }
    }
}

/// An independent TFRecord + Event reader: length, masked CRC32C of the length, data, masked
/// CRC32C of the data; Event fields 1 (wall_time), 2 (step), 3 (file_version), 5 (summary).
enum TFRecordReader {
    struct Event { var step = 0; var fileVersion: String?; var values: [(String, Float)] = [] }

    static func crc32c(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = (crc >> 1) ^ (0x82F6_3B78 & (0 &- (crc & 1))) }
        }
        let c = ~crc
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }

    static func le<T: FixedWidthInteger>(_ b: [UInt8], _ at: Int, _: T.Type) -> T {
        (0..<MemoryLayout<T>.size).reduce(T(0)) { $0 | T(b[at + $1]) << (8 * $1) }
    }

    static func read(_ path: String) throws -> [Event] {
        let b = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var events: [Event] = [], i = 0
        while i < b.count {
            let n = Int(le(b, i, UInt64.self))
            #expect(le(b, i + 8, UInt32.self) == crc32c(b[i..<i + 8]), "length CRC")
            let body = Array(b[i + 12..<i + 12 + n])
            #expect(le(b, i + 12 + n, UInt32.self) == crc32c(body[...]), "data CRC")
            events.append(parseEvent(body))
            i += 16 + n
        }
        return events
    }

    /// Walks protobuf fields: (field number, wire type, varint value or byte slice).
    static func fields(_ b: [UInt8]) -> [(Int, UInt64, [UInt8])] {
        var out: [(Int, UInt64, [UInt8])] = [], i = 0
        func varint() -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true { let x = b[i]; i += 1; v |= UInt64(x & 0x7F) << shift; shift += 7; if x < 0x80 { return v } }
        }
        while i < b.count {
            let key = varint(), field = Int(key >> 3)
            switch key & 7 {
            case 0: out.append((field, varint(), []))
            case 1: out.append((field, 0, Array(b[i..<i + 8]))); i += 8
            case 5: out.append((field, 0, Array(b[i..<i + 4]))); i += 4
            default: let n = Int(varint()); out.append((field, 0, Array(b[i..<i + n]))); i += n
            }
        }
        return out
    }

    static func parseEvent(_ b: [UInt8]) -> Event {
        var e = Event()
        for (field, v, bytes) in fields(b) {
            switch field {
            case 2: e.step = Int(v)
            case 3: e.fileVersion = String(decoding: bytes, as: UTF8.self)
            case 5:
                for (f, _, value) in fields(bytes) where f == 1 {
                    var tag = "", x: Float = .nan
                    for (vf, _, vb) in fields(value) {
                        if vf == 1 { tag = String(decoding: vb, as: UTF8.self) }
                        if vf == 2 { x = Float(bitPattern: le(vb, 0, UInt32.self)) }
                    }
                    e.values.append((tag, x))
                }
            default: break
            }
        }
        return e
    }
}
