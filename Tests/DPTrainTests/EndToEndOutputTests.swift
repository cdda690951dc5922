import DPTrain
import Foundation
import Testing

extension EndToEndTests {
    /// What rank 0 prints is parsed back and held against the metrics file and the model: the
    /// start-up summary, the epoch lines and the final line state the figures of the run.
    @Suite("What rank 0 prints")
    struct Output {
        /// Rank 0's lines without the `[rank 0] ` prefix.
        static func lines(_ stderr: String) -> [String] {
            stderr.split(separator: "\n").map { String($0) }.filter { $0.hasPrefix("[rank 0] ") }.map {
                String($0.dropFirst(9))
            }
        }

        /// "epoch 1/2  loss 0.29  accuracy 0.91  ...  1.64s  36680 samples/s" as name -> value.
        static func fields(ofEpochLine line: String) -> [String: Double] {
            var fields: [String: Double] = [:]
            for part in line.components(separatedBy: "  ") {
                let words = part.split(separator: " ")
                if part.hasSuffix("samples/s") {
                    fields["samples/s"] = Double(words[0])
                } else if words.count == 1, part.hasSuffix("s") {
                    fields["seconds"] = Double(part.dropLast())
                } else if words.count == 2 {
                    fields[String(words[0])] = Double(words[1])
                }
            }
            return fields
        }

        @Test func summaryEpochLinesAndFinalLineStateTheFiguresOfTheRun() throws {
            let bin = try Support.binary()
            let data = Support.makeTinyMNIST(train: 250, test: 40)
            let metrics = Support.temporaryDirectory() + "/m.jsonl"
            let r = try Support.run(
                Support.mpirunScript,
                ["2", bin, "train", "--data-dir", data, "--epochs", "2", "--metrics-file", metrics], timeout: 120)
            #expect(r.status == 0, "\(r.stderr)")
            let lines = Self.lines(r.stderr)
            let events = try Support.readMetrics(metrics)

            // The layout line: ranks, threads, the build's instruction set, parameters, batches,
            // steps, images, data provenance.
            let header = try #require(lines.first)
            let layout =
                #/(\d+) ranks? x (\d+) threads?, built for [^;]+ \(\d+-bit vectors\); model (\d+) parameters; global batch (\d+) \((\d+) per rank\), (\d+) steps/epoch, (\d+) training images from (.+) \((.+)\)$/#
            let m = try #require(header.firstMatch(of: layout), "\(header)")
            #expect(Int(m.1) == 2 && Int(m.2) == 1)
            #expect(Int(m.3) == 784 * 128 + 128 + 128 * 10 + 10)
            #expect(Int(m.4) == 32 && Int(m.5) == 16)
            #expect(Int(m.6) == 8, "250 samples in batches of 32: 8 steps")
            #expect(Int(m.7) == 250 && String(m.8) == data)
            #expect(m.9.contains("not a data set dptrain knows"))

            // The model table: a row per layer whose counts add up to the total, and the total is the model's.
            let rows = lines.filter { $0.contains("(None, ") }
            #expect(rows.map { $0.split(separator: " ").first! } == ["flatten_1", "dense_1", "dropout_1", "dense_2"])
            #expect(rows[1].contains("(None, 128)") && rows[3].contains("(None, 10)"))
            let counts = rows.map { Int($0.split(separator: " ").last!)! }
            let total = try #require(lines.first { $0.hasPrefix("Total params: ") })
            #expect(counts.reduce(0, +) == Int(m.3) && total == "Total params: \(m.3)")

            // Each epoch line against the epoch and eval events (printed with 4 decimals).
            let epochLines = lines.filter { $0.hasPrefix("epoch ") }
            let epochEvents = events.filter { $0["event"] as? String == "epoch" }
            let evalEvents = events.filter { $0["event"] as? String == "eval" }
            #expect(epochLines.count == 2 && epochEvents.count == 2 && evalEvents.count == 2)
            for (i, line) in epochLines.enumerated() {
                #expect(line.hasPrefix("epoch \(i + 1)/2  "))
                let f = Self.fields(ofEpochLine: line)
                let (epoch, eval) = (epochEvents[i], evalEvents[i])
                let pairs: [(String, Any?)] = [
                    ("loss", epoch["loss"]), ("accuracy", epoch["accuracy"]),
                    ("test_loss", eval["loss"]), ("test_accuracy", eval["accuracy"]),
                ]
                for (name, value) in pairs {
                    let printed = try #require(f[name], "\(name) missing from '\(line)'")
                    #expect(abs(printed - (value as! Double)) <= 5e-5, "\(name) in '\(line)' vs \(value!)")
                }
                let seconds = try #require(f["seconds"]), rate = try #require(f["samples/s"])
                #expect(abs(seconds - (epoch["seconds"] as! Double)) <= 0.005)
                #expect(abs(rate - (epoch["samples_per_second"] as! Double)) <= 0.5)
                #expect(
                    abs(rate - 250 / (epoch["seconds"] as! Double)) <= 0.5,
                    "samples/s is the epoch's samples over its seconds")
            }

            // The final line against the summary event.
            let done = try #require(lines.last { $0.hasPrefix("dptrain: done: ") })
            let s = try #require(events.last)
            let finalLine = #/test accuracy ([\d.]+), test loss ([\d.]+), (\d+) steps, (\d+) samples/s, (\d+) ranks/#
            let d = try #require(done.firstMatch(of: finalLine), "\(done)")
            #expect(abs(Double(d.1)! - (s["test_accuracy"] as! Double)) <= 5e-5)
            #expect(abs(Double(d.2)! - (s["test_loss"] as! Double)) <= 5e-5)
            #expect(Int(d.3) == 16 && Int(d.3) == s["steps"] as? Int)
            #expect(abs(Double(d.4)! - (s["samples_per_second"] as! Double)) <= 0.5)
            #expect(Int(d.5) == 2)
        }

        @Test func theSummaryNamesAKnownDataSetOrTheFilesThatDiffer() {
            let mnist = KnownDataset.mnist.sha256
            #expect(KnownDataset.identify(mnist) == .verified(.mnist))
            #expect(KnownDataset.identify(KnownDataset.fashionMNIST.sha256) == .verified(.fashionMNIST))
            var changed = mnist
            changed["t10k-labels-idx1-ubyte"] = String(repeating: "0", count: 64)
            #expect(KnownDataset.identify(changed) == .modified(.mnist, files: ["t10k-labels-idx1-ubyte"]))
            #expect(KnownDataset.identify(["train-images-idx3-ubyte": String(repeating: "1", count: 64)]) == .unknown)
        }
    }
}
