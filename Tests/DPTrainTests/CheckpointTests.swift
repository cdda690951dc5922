@testable import DPTrain
import Foundation
import Testing

@Suite("Checkpoints")
struct CheckpointTests {
    static let mlp = try! TrainConfig.load(path: Support.packageRoot.appendingPathComponent("Configs/mlp.yaml").path)

    /// A trained-looking MLP and Adam state with distinct values everywhere.
    static func snapshot(config: TrainConfig = mlp) throws -> (Model, Adam, Checkpoint) {
        let model = try Model(specs: config.layers, inputShape: config.inputShape, loss: config.loss, capacity: 1)
        model.initialize(seed: 5)
        let adam = Adam(parameterCount: model.store.count)
        for i in 0..<model.store.count {
            adam.m.pointer[i] = Float(i) * 1e-6
            adam.v.pointer[i] = Float(i % 97) * 1e-4
        }
        adam.iterations = 77
        var position = TrainingPosition()
        position.step = 77; position.epoch = 1; position.stepInEpoch = 12; position.optimizerIterations = 77
        position.epochLossSum = 3.25; position.epochCorrect = 300; position.epochSamples = 384
        let checkpoint = Checkpoint.capture(
            model: model, optimizer: adam, position: position, config: config,
            configText: "model: {}\n", worldSize: 2)
        return (model, adam, checkpoint)
    }

    @Test func roundTripsEveryTensorAndTheMetadata() throws {
        let (model, adam, checkpoint) = try Self.snapshot()
        let dir = Support.temporaryDirectory()
        let (path, bytes) = try Checkpointer(directory: dir).save(checkpoint, step: 77)
        #expect(bytes == (try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int))
        let read = try Checkpoint.read(path: path)
        #expect(read.tensors == checkpoint.tensors)
        #expect(read.metadata == checkpoint.metadata)
        #expect(read.position == checkpoint.position)
        #expect(
            read.tensors.map(\.name).prefix(4) == ["dense_1.kernel", "dense_1.bias", "dense_2.kernel", "dense_2.bias"])
        #expect(
            read.tensors.contains { $0.name == "adam.m.dense_1.kernel" }
                && read.tensors.contains { $0.name == "adam.v.dense_2.bias" })
        for key in [
            "format_version", "step", "epoch", "sample_cursor", "seed", "world_size", "config", "config_digest",
            "library_version", "checksum",
        ] {
            #expect(read.metadata[key] != nil, "metadata lacks \(key)")
        }
        // Restoring into fresh objects gives the same state.
        let model2 = try Model(
            specs: Self.mlp.layers, inputShape: Self.mlp.inputShape, loss: Self.mlp.loss, capacity: 1)
        let adam2 = Adam(parameterCount: model2.store.count)
        try read.restore(into: model2, optimizer: adam2, path: path)
        #expect(model2.store.values.array == model.store.values.array)
        #expect(adam2.m.array == adam.m.array && adam2.v.array == adam.v.array && adam2.iterations == 77)
    }

    /// Parses the file with nothing from the project: the safetensors layout by hand.
    @Test func independentReaderAgreesOnLayout() throws {
        let (model, _, checkpoint) = try Self.snapshot()
        let bytes = checkpoint.encoded()
        let n = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect((8 + n) % 8 == 0, "data starts 8-byte aligned")
        let header = try JSONSerialization.jsonObject(with: Data(bytes[8..<8 + n])) as! [String: Any]
        let meta = header["__metadata__"] as! [String: String]
        #expect(meta["step"] == "77" && meta["world_size"] == "2")
        var ranges: [(Int, Int)] = []
        for (name, value) in header where name != "__metadata__" {
            let info = value as! [String: Any]
            #expect(info["dtype"] as? String == "F32")
            let shape = info["shape"] as! [Int], offsets = info["data_offsets"] as! [Int]
            #expect(offsets[1] - offsets[0] == shape.reduce(1, *) * 4, "\(name)")
            ranges.append((offsets[0], offsets[1]))
        }
        ranges.sort { $0.0 < $1.0 }
        #expect(ranges.first!.0 == 0)
        for (a, b) in zip(ranges, ranges.dropFirst()) { #expect(a.1 == b.0) }
        #expect(ranges.last!.1 == bytes.count - 8 - n)
        // dense_1.kernel's first float, read as little-endian bytes.
        let kernel = header["dense_1.kernel"] as! [String: Any]
        let start = 8 + n + (kernel["data_offsets"] as! [Int])[0]
        let bits =
            UInt32(bytes[start]) | UInt32(bytes[start + 1]) << 8 | UInt32(bytes[start + 2]) << 16 | UInt32(
                bytes[start + 3]) << 24
        #expect(Float(bitPattern: bits) == model.parameter("dense_1.kernel")![0])
    }

    func expectReadError(_ bytes: [UInt8], _ fragment: String) {
        let path = Support.temporaryDirectory() + "/bad.safetensors"
        Support.write(bytes, to: path)
        do {
            _ = try Checkpoint.read(path: path)
            Issue.record("reading should fail (\(fragment))")
        } catch {
            #expect("\(error)".contains(path) && "\(error)".contains(fragment), "\(error)")
        }
    }

    @Test func corruptionIsDetected() throws {
        let bytes = try Self.snapshot().2.encoded()
        var flipped = bytes
        flipped[bytes.count - 1000] ^= 0x10
        expectReadError(flipped, "checksum mismatch")
        expectReadError(Array(bytes.dropLast(40)), "truncated")
        var wrongLength = bytes
        wrongLength[0] = 0xFF; wrongLength[1] = 0xFF; wrongLength[2] = 0xFF
        expectReadError(wrongLength, "header length")
        expectReadError([1, 2, 3], "shorter than the 8-byte header length")
    }

    @Test func newerFormatVersionIsRefused() throws {
        var c = try Self.snapshot().2
        c.metadata["format_version"] = "99"
        expectReadError(c.encoded(), "format version 99 is newer")
    }

    @Test func missingTensorAndShapeMismatchAreNamed() throws {
        let (_, _, checkpoint) = try Self.snapshot()
        var missing = checkpoint
        missing.tensors.removeAll { $0.name == "dense_2.bias" }
        let model = try Model(specs: Self.mlp.layers, inputShape: Self.mlp.inputShape, loss: Self.mlp.loss, capacity: 1)
        #expect(throws: CheckpointError.self) { try missing.restore(into: model, optimizer: nil, path: "x") }
        do { try missing.restore(into: model, optimizer: nil, path: "x") } catch {
            #expect("\(error)".contains("dense_2.bias"))
        }

        var other = Self.mlp
        other.layers[1] = .dense(units: 64, activation: .relu, l2: 0)
        let wide = try Model(specs: other.layers, inputShape: other.inputShape, loss: other.loss, capacity: 1)
        do {
            try checkpoint.restore(into: wide, optimizer: nil, path: "x")
            Issue.record("a checkpoint of another shape must be refused")
        } catch {
            #expect("\(error)".contains("dense_1.kernel") && "\(error)".contains("[784, 128]"), "\(error)")
        }
    }

    @Test func keepsTheNewestAndFallsBackPastACorruptOne() throws {
        let dir = Support.temporaryDirectory()
        let checkpointer = Checkpointer(directory: dir, keep: 2)
        let c = try Self.snapshot().2
        for step in [10, 20, 30] { try checkpointer.save(c, step: step) }
        #expect(
            checkpointer.files().map { ($0 as NSString).lastPathComponent } == [
                "ckpt-step000000030.safetensors", "ckpt-step000000020.safetensors",
            ])
        // Corrupt the newest; a crash before the rename leaves only a temporary file behind.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: checkpointer.path(step: 30))))
        bytes[bytes.count / 2] ^= 1
        Support.write(bytes, to: checkpointer.path(step: 30))
        Support.write([1, 2, 3], to: dir + "/.ckpt-step000000040.safetensors.tmp")
        var warnings: [String] = []
        let (_, path) = try checkpointer.newestValid { warnings.append($0) }
        #expect(path == checkpointer.path(step: 20))
        #expect(warnings.count == 1 && warnings[0].contains("ckpt-step000000030"))
    }

    @Test func unwritableDirectoryIsAClearErrorAndLeavesOldFilesAlone() throws {
        let dir = Support.temporaryDirectory()
        let blocker = dir + "/not-a-dir"
        Support.write([0], to: blocker)
        let c = try Self.snapshot().2
        do {
            try Checkpointer(directory: blocker + "/sub").save(c, step: 1)
            Issue.record("saving under a file must fail")
        } catch {
            #expect(
                "\(error)".contains("cannot write checkpoint")
                    && "\(error)".contains("previous checkpoints are untouched"))
        }
        #expect(FileManager.default.contents(atPath: blocker) == Data([0]))
    }
}
