@testable import DPTrain
import Testing

/// The memory a config needs, worked out before anything is allocated.
@Suite("Memory plan")
struct MemoryPlanTests {
    static func config(_ yaml: String) throws -> TrainConfig { try TrainConfig.parse(yaml: yaml) }

    static let mlp = """
        model:
          input_shape: [28, 28, 1]
          layers:
            - {type: flatten}
            - {type: dense, units: UNITS, activation: relu}
            - {type: dense, units: 10, activation: softmax}
        """

    /// The tutorial MLP: its parameters (101,770) and what a worker's model holds per sample
    /// (the input, and each layer's output and gradient) are what the model itself allocates.
    @Test func theTutorialMLPIsSizedAsTheModelAllocatesIt() throws {
        let c = try Self.config(Self.mlp.replacingOccurrences(of: "UNITS", with: "128"))
        let plan = try MemoryPlan(config: c, threads: 2, capacity: 32, dataBytes: 47_000_000)
        #expect(plan.parameters == 101_770)
        let model = try Model(specs: c.layers, inputShape: c.inputShape, loss: c.loss, capacity: 32)
        #expect(plan.parameters == model.parameterCount)
        #expect(
            plan.floatsPerSample >= model.bufferFloatsPerSample
                && plan.floatsPerSample <= 2 * model.bufferFloatsPerSample,
            "plan \(plan.floatsPerSample) floats a sample, model \(model.bufferFloatsPerSample)")
        // Values, 2 workers' gradients, the spare buffer, Adam's two moments: 6 copies of 4 bytes.
        #expect(plan.parts[0].bytes == 101_770 * 4 * 6)
        try plan.check(available: 8 << 30, localRanks: 2)
    }

    @Test func aLayerTooLargeForTheMachineIsRefusedNamingItsKey() throws {
        let c = try Self.config(Self.mlp.replacingOccurrences(of: "UNITS", with: "1000000000"))
        let plan = try MemoryPlan(config: c, threads: 1, capacity: 32, dataBytes: 0)
        let error = try #require(throws: ConfigError.self) { try plan.check(available: 24 << 30, localRanks: 1) }
        let text = "\(error)"
        #expect(text.contains("'model.layers[1].units'") && text.contains("per rank") && text.contains("TB"), "\(text)")
        #expect(text.contains("model.layers[1] (dense, 1000000000 units on 784 inputs)"), "\(text)")
    }

    @Test func sizesPastA64BitCountAreAnErrorNotATrap() throws {
        let c = try Self.config(Self.mlp.replacingOccurrences(of: "UNITS", with: "4000000000000000000"))
        let error = try #require(throws: ConfigError.self) {
            try MemoryPlan(config: c, threads: 1, capacity: 1, dataBytes: 0)
        }
        #expect("\(error)".contains("'model.layers[1].units'") && "\(error)".contains("overflow"), "\(error)")
        // A convolution's kernel, with same padding (any size fits).
        let conv = try Self.config(
            """
            model:
              layers:
                - {type: conv2d, filters: 8, kernel_size: 3037000500, padding: same}
                - {type: flatten}
                - {type: dense, units: 10, activation: softmax}
            """)
        let convError = try #require(throws: ConfigError.self) {
            try MemoryPlan(config: conv, threads: 1, capacity: 1, dataBytes: 0)
        }
        #expect("\(convError)".contains("'model.layers[0].kernel_size'"), "\(convError)")
    }

    /// Activations grow with the batch a worker holds: the CNN at 60,000 samples a worker on a
    /// machine with 4 GB free is refused naming the batch size.
    @Test func aBatchTooLargeIsRefusedNamingTheBatchSize() throws {
        let cnn = try TrainConfig.load(path: Support.packageRoot.appendingPathComponent("Configs/cnn.yaml").path)
        let plan = try MemoryPlan(config: cnn, threads: 1, capacity: 60_000, dataBytes: 47_000_000)
        let error = try #require(throws: ConfigError.self) { try plan.check(available: 4 << 30, localRanks: 1) }
        #expect(
            "\(error)".contains("'training.batch_size'") && "\(error)".contains("at 60000 samples each"), "\(error)")
        try MemoryPlan(config: cnn, threads: 1, capacity: 32, dataBytes: 47_000_000).check(
            available: 4 << 30, localRanks: 1)
    }

    @Test func memoryIsReadFromThisMachineAndPrintedInUnits() {
        #expect((MemoryPlan.availableBytes() ?? 0) > 1 << 20)
        #expect(
            MemoryPlan.format(3_140_000_000_000) == "3.1 TB" && MemoryPlan.format(512_000_000) == "512 MB"
                && MemoryPlan.format(42) == "42 bytes")
    }

    /// Huge counts that used to wrap or trap: a batch larger than the data set is the data set.
    @Test func aBatchLargerThanTheDataSetIsTheWholeSet() {
        let s = EpochSchedule(sampleCount: 250, globalBatch: Int.max, seed: 1)
        #expect(s.stepsPerEpoch == 1 && s.maxLocalBatch(worldSize: 2) == 125 && s.batchRange(step: 0) == 0..<250)
    }
}
