@testable import DPTrain
import Foundation
import Testing

@Suite("Config")
struct ConfigTests {
    static let minimal = """
        model:
          layers:
            - type: flatten
            - type: dense
              units: 10
              activation: softmax
        """

    @Test func everyShippedConfigParses() throws {
        let dir = Support.packageRoot.appendingPathComponent("Configs").path
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }
        #expect(files.contains("mlp.yaml"))
        for file in files { _ = try TrainConfig.load(path: "\(dir)/\(file)") }
    }

    /// The README's reference config is a config: every key it shows parses to what it says.
    @Test func theReadmeConfigParses() throws {
        let readme = try String(contentsOf: Support.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let start = try #require(readme.range(of: "```yaml\nmodel:"))
        let end = try #require(readme.range(of: "```", range: start.upperBound..<readme.endIndex))
        let yaml = String(readme[readme.index(start.lowerBound, offsetBy: "```yaml\n".count)..<end.lowerBound])
        let c = try TrainConfig.parse(yaml: yaml)
        #expect(c.layers.count == 6 && c.epochs == 5 && c.batchSize == 32 && c.validationSplit == 0.1)
        #expect(c.optimizer.kind == .adam && c.collectiveTimeout == 600 && c.allreduceCompression == .none)
        #expect(c.checkpointDirectory == "checkpoints" && c.data.directory == "data/mnist")
    }

    @Test func tutorialMLP() throws {
        let c = try TrainConfig.load(path: Support.packageRoot.appendingPathComponent("Configs/mlp.yaml").path)
        #expect(
            c.layers == [
                .flatten, .dense(units: 128, activation: .relu, l2: 0), .dropout(rate: 0.2),
                .dense(units: 10, activation: .softmax, l2: 0),
            ])
        #expect(c.epochs == 5 && c.batchSize == 32 && c.optimizer.kind == .adam && c.optimizer.learningRate == 1e-3)
        #expect(c.loss == .sparseCategoricalCrossentropy)
        let model = try Model(specs: c.layers, inputShape: c.inputShape, loss: c.loss, capacity: 1)
        #expect(model.parameterCount == 101_770)
        #expect(
            model.store.entries.map(\.name) == ["dense_1.kernel", "dense_1.bias", "dense_2.kernel", "dense_2.bias"])
    }

    func expectConfigError(_ yaml: String, mentioning key: String) {
        do {
            _ = try TrainConfig.parse(yaml: yaml)
            Issue.record("config should be rejected:\n\(yaml)")
        } catch {
            #expect("\(error)".contains(key), "error must name \(key): \(error)")
        }
    }

    @Test func unknownKeysAreNamed() {
        expectConfigError(Self.minimal + "\ntraining:\n  epocs: 3\n", mentioning: "training.epocs")
        expectConfigError(Self.minimal + "\nextra: 1\n", mentioning: "extra")
        expectConfigError("model:\n  layers:\n    - type: dense\n      unit: 3\n", mentioning: "model.layers[0].unit")
    }

    @Test func wrongTypesAndImpossibleValuesAreNamed() {
        expectConfigError(Self.minimal + "\ntraining:\n  epochs: many\n", mentioning: "training.epochs")
        expectConfigError(Self.minimal + "\noptimizer:\n  learning_rate: 0\n", mentioning: "optimizer.learning_rate")
        expectConfigError(Self.minimal + "\noptimizer:\n  learning_rate: -1\n", mentioning: "optimizer.learning_rate")
        expectConfigError(Self.minimal + "\ntraining:\n  batch_size: 0\n", mentioning: "training.batch_size")
        expectConfigError(Self.minimal + "\nloss: hinge\n", mentioning: "loss")
        expectConfigError(
            "model:\n  layers:\n    - type: dropout\n      rate: 1.5\n", mentioning: "model.layers[0].rate")
        expectConfigError("model:\n  layers:\n    - type: conv9\n", mentioning: "model.layers[0].type")
        expectConfigError("training: {}\n", mentioning: "model")
        expectConfigError(
            Self.minimal + "\ntraining:\n  allreduce_compression: fp16\n", mentioning: "training.allreduce_compression")
    }

    @Test func allreduceCompressionIsReadFromTraining() throws {
        #expect(try TrainConfig.parse(yaml: Self.minimal).allreduceCompression == .none)
        #expect(
            try TrainConfig.parse(yaml: Self.minimal + "\ntraining:\n  allreduce_compression: bf16\n")
                .allreduceCompression == .bf16)
    }

    @Test func overlapAndBucketSizeAreReadAndChecked() throws {
        let plain = try TrainConfig.parse(yaml: Self.minimal)
        #expect(plain.overlapCommunication && plain.bucketBytes == 1 << 20)
        let set = try TrainConfig.parse(
            yaml: Self.minimal + "\ntraining:\n  overlap_communication: false\n  bucket_mb: 0.5\n")
        #expect(!set.overlapCommunication && set.bucketBytes == 1 << 19)
        expectConfigError(Self.minimal + "\ntraining:\n  bucket_mb: 0\n", mentioning: "training.bucket_mb")
        expectConfigError(Self.minimal + "\ntraining:\n  bucket_mb: 5000\n", mentioning: "training.bucket_mb")
        expectConfigError(
            Self.minimal + "\ntraining:\n  overlap_communication: maybe\n", mentioning: "training.overlap_communication"
        )
        #expect(!plain.pipelinedUpdate)
        #expect(try TrainConfig.parse(yaml: Self.minimal + "\ntraining:\n  pipelined_update: true\n").pipelinedUpdate)
        expectConfigError(
            Self.minimal + "\ntraining:\n  pipelined_update: true\n  on_nonfinite: skip\n",
            mentioning: "training.pipelined_update")
    }

    @Test func scientificNotationIsANumber() throws {
        let c = try TrainConfig.parse(yaml: Self.minimal + "\noptimizer:\n  learning_rate: 1e-3\n")
        #expect(c.optimizer.learningRate == 1e-3)
    }

    @Test func batchSmallerThanWorldIsNamed() throws {
        let c = try TrainConfig.parse(yaml: Self.minimal + "\ntraining:\n  batch_size: 2\n")
        #expect(throws: ConfigError.self) { try c.validate(worldSize: 4) }
        do { try c.validate(worldSize: 4) } catch { #expect("\(error)".contains("training.batch_size")) }
        try c.validate(worldSize: 2)
    }
}
