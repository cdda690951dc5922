import DPTrain
import Foundation
import Testing

extension EndToEndTests {
    /// The user's own data through the binary: CSV tables, NumPy archives, the tools that move
    /// data between dptrain and NumPy, and their errors at several ranks.
    @Suite("Your own data")
    struct YourOwnData {
        let bin: String
        init() throws { bin = try Support.binary() }

        /// Two features whose sign of `x0 + 2 x1 - 30` is the class, on scales far from [0, 1]
        /// (as a table's columns are), labelled by name; `rows` rows.
        static func table(rows: Int, seed: UInt64) -> String {
            var rng = SplitMix64(seed: seed)
            var text = "id,size,weight,kind\n"
            for i in 0..<rows {
                let (a, b) = (rng.uniform(0, 40), rng.uniform(0, 20))
                text += "\(i),\(a),\(b),\(a + 2 * b > 30 ? "large" : "small")\n"
            }
            return text
        }

        func config(_ dir: String) throws -> String {
            try Self.table(rows: 400, seed: 1).write(toFile: "\(dir)/train.csv", atomically: true, encoding: .utf8)
            try Self.table(rows: 100, seed: 2).write(toFile: "\(dir)/test.csv", atomically: true, encoding: .utf8)
            try """
            model:
              input_shape: [2]
              layers:
                - {type: dense, units: 8, activation: relu}
                - {type: dense, units: 1, activation: sigmoid}
            loss: binary_crossentropy
            optimizer: {name: adam, learning_rate: 0.01}
            training: {epochs: 20, batch_size: 8}
            data: {dir: \(dir), train: train.csv, test: test.csv, label_column: kind, feature_columns: [size, weight], normalize: standardize}
            """.write(toFile: "\(dir)/table.yaml", atomically: true, encoding: .utf8)
            return "\(dir)/table.yaml"
        }

        /// A table trains at 2 ranks to a high accuracy; its checkpoint keeps the standardisation
        /// and the class names, so eval gives the training run's figures and predict names the class.
        @Test func aTableTrainsAndItsCheckpointPredictsCSVRows() throws {
            let tmp = Support.temporaryDirectory()
            let cfg = try config(tmp)
            let r = try Support.run(
                Support.mpirunScript,
                [
                    "2", bin, "train", "--config", cfg, "--checkpoint-dir", "\(tmp)/ck", "--metrics-file",
                    "\(tmp)/m.jsonl",
                ])
            try #require(r.status == 0, "\(r.stderr)")
            #expect(
                r.stderr.contains(
                    "400 training samples from \(tmp)/train.csv (csv, mapped, 2 classes, parsed and cached in \(tmp)/.dptrain-cache)"
                )
                    || r.stderr.contains(
                        "400 training samples from \(tmp)/train.csv (csv, mapped, 2 classes, cached in \(tmp)/.dptrain-cache)"
                    ),
                "\(r.stderr)")
            let summary = try #require(try Support.readMetrics("\(tmp)/m.jsonl").last)
            let accuracy = try #require(summary["test_accuracy"] as? Double)
            #expect(accuracy >= 0.95, "test accuracy \(accuracy)")
            let checkpoint = try #require(Checkpointer(directory: "\(tmp)/ck").files().first)
            let eval = try Support.run(bin, ["eval", "--checkpoint", checkpoint, "--json"])
            let e = try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as! [String: Any]
            #expect(
                abs((e["accuracy"] as! Double) - accuracy) < 1e-9, "eval \(e["accuracy"]!) vs training's \(accuracy)")
            try "size,weight\n35,15\n1,2\n".write(toFile: "\(tmp)/rows.csv", atomically: true, encoding: .utf8)
            let predicted = try Support.run(bin, ["predict", "--checkpoint", checkpoint, "--csv", "\(tmp)/rows.csv"])
            #expect(
                predicted.status == 0 && predicted.stdout.contains("rows.csv row 1: class 0 (large)")
                    && predicted.stdout.contains("rows.csv row 2: class 1 (small)"),
                "\(predicted.stdout)\(predicted.stderr)")
        }

        /// MNIST-format data as IDX files, as an .npz (stored, mapped) and as a compressed .npz
        /// trains to the same bits: the same bytes in the same order.
        @Test func idxAndNpzCopiesOfTheSameDataTrainAlike() throws {
            let data = Support.makeTinyMNIST(train: 250, test: 40)
            let tmp = Support.temporaryDirectory()
            var checksums: [String] = []
            for (name, extra) in [("idx", []), ("stored.npz", []), ("deflated.npz", ["--compress"])] {
                var args = ["train", "--data-dir", data, "--epochs", "2", "--metrics-file", "\(tmp)/\(name).jsonl"]
                if name != "idx" {
                    let convert = try Support.run(
                        bin, ["data", "convert", "--to", "npz", "--input", data, "--output", "\(tmp)/\(name)"] + extra)
                    try #require(convert.status == 0, "\(convert.stderr)")
                    try
                        "model:\n  layers:\n    - {type: flatten}\n    - {type: dense, units: 128, activation: relu}\n    - {type: dropout, rate: 0.2}\n    - {type: dense, units: 10, activation: softmax}\ndata: {train: \(name)}\n"
                        .write(toFile: "\(tmp)/\(name).yaml", atomically: true, encoding: .utf8)
                    args = [
                        "train", "--config", "\(tmp)/\(name).yaml", "--data-dir", tmp, "--epochs", "2",
                        "--metrics-file", "\(tmp)/\(name).jsonl",
                    ]
                }
                let r = try Support.run(bin, args)
                try #require(r.status == 0, "\(name): \(r.stderr)")
                checksums.append(
                    try #require(try Support.readMetrics("\(tmp)/\(name).jsonl").last?["parameter_checksum"] as? String)
                )
            }
            #expect(Set(checksums).count == 1, "\(checksums)")
            let back = try Support.run(
                bin, ["data", "convert", "--to", "idx", "--input", "\(tmp)/deflated.npz", "--output", "\(tmp)/idx"])
            #expect(back.status == 0, "\(back.stderr)")
            for stem in KnownDataset.files {
                #expect(
                    try IDXFile.read(path: "\(tmp)/idx/\(stem)").bytes == IDXFile.read(path: "\(data)/\(stem)").bytes,
                    "\(stem)")
            }
        }

        /// A bad row, at 2 ranks: one message naming the file and the line, exit 1, no rank left waiting.
        @Test func aBadRowIsOneClearErrorAtTwoRanks() throws {
            let tmp = Support.temporaryDirectory()
            let cfg = try config(tmp)
            var rows = try String(contentsOfFile: "\(tmp)/train.csv", encoding: .utf8).split(separator: "\n").map(
                String.init)
            rows[57] = "56,12.5,oops,small"
            try rows.joined(separator: "\n").write(toFile: "\(tmp)/train.csv", atomically: true, encoding: .utf8)
            let r = try Support.run(Support.mpirunScript, ["2", bin, "train", "--config", cfg], timeout: 60)
            #expect(r.status == 1 && r.seconds < 30, "status \(r.status) after \(r.seconds) s")
            let mentions =
                r.stderr.components(
                    separatedBy: "\(tmp)/train.csv, line 58: column 'weight' (2): 'oops' is not a number"
                ).count - 1
            #expect(mentions == 1, "printed once, by one rank:\n\(r.stderr)")
        }

        /// At 2 ranks a table is parsed once on the machine: one rank parses and caches it, the other
        /// waits for it and maps the cache; the next run maps it too, and a changed file is parsed again.
        @Test func aTableIsParsedOncePerMachine() throws {
            let tmp = Support.temporaryDirectory()
            let cfg = try config(tmp)
            let first = try Support.run(Support.mpirunScript, ["2", bin, "train", "--config", cfg, "--verbose"])
            #expect(first.status == 0, "\(first.stderr)")
            let parsed = first.stderr.components(separatedBy: "train.csv: parsed and cached in").count - 1
            let mapped = first.stderr.components(separatedBy: "train.csv: cached in").count - 1
            #expect(parsed == 1 && mapped == 1, "\(first.stderr)")
            let again = try Support.run(Support.mpirunScript, ["2", bin, "train", "--config", cfg, "--verbose"])
            #expect(again.stderr.components(separatedBy: "train.csv: cached in").count - 1 == 2, "\(again.stderr)")
            let text = try String(contentsOfFile: "\(tmp)/train.csv", encoding: .utf8)
            try (text + "1,2.5,3.5,small\n").write(toFile: "\(tmp)/train.csv", atomically: true, encoding: .utf8)
            let changed = try Support.run(bin, ["train", "--config", cfg, "--verbose", "--epochs", "1"])
            #expect(
                changed.stderr.contains("401 training samples") && changed.stderr.contains("parsed and cached in"),
                "\(changed.stderr)")
            let entries = try FileManager.default.contentsOfDirectory(atPath: "\(tmp)/.dptrain-cache")
            #expect(entries.filter { $0.hasPrefix("train.") && $0.hasSuffix(".x.npy") }.count == 1, "\(entries)")
        }

        @Test func describeReportsSamplesShapeRangeAndBalance() throws {
            let tmp = Support.temporaryDirectory()
            let cfg = try config(tmp)
            let r = try Support.run(bin, ["data", "describe", "--config", cfg])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(
                r.stdout.contains("train: 400 samples of 2 float32 from \(tmp)/train.csv")
                    && r.stdout.contains("test: 100 samples"), "\(r.stdout)")
            #expect(
                r.stdout.contains("2 classes: 0 (large): ")
                    && r.stdout.contains("normalised when gathered: standardize"), "\(r.stdout)")
            let mnist = try Support.run(
                bin, ["data", "describe", "--data-dir", Support.makeTinyMNIST(train: 30, test: 10)])
            #expect(
                mnist.stdout.contains("train: 30 samples of 28x28x1 uint8") && mnist.stdout.contains("(mapped)"),
                "\(mnist.stdout)")
        }
    }
}
