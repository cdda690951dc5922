import Foundation

/// What a finished run reports (rank 0's view; every rank returns the same training figures).
public struct TrainSummary: Sendable {
    public var testLoss: Double?
    public var testAccuracy: Double?
    public var epochs: Int
    public var steps: Int
    public var epochSeconds: [Double]
    public var samplesPerSecond: Double
    public var worldSize: Int
    public var replicasIdentical: Bool
    public var parameterChecksum: UInt64
}

/// Synchronous data-parallel training: every rank runs the same steps; each step computes the
/// local gradient of its slice of the global batch, sums gradients over ranks in one allreduce,
/// and takes the same optimizer step. Rank 0 alone evaluates and writes metrics.
public final class Trainer {
    public let config: TrainConfig
    public let comm: any Communicator
    public let model: Model
    public let optimizer: any Optimizer
    let train: Dataset
    let test: Dataset?
    public let schedule: EpochSchedule
    let metrics: MetricsSink?
    let log: (String) -> Void

    // Per-step buffers, allocated once.
    private var labels: [UInt8]
    private var sampleIndices: [Int32]

    /// The gradient buffer holds two extra floats that ride in the same allreduce: the step's
    /// loss sum and correct-prediction count.
    static let statisticSlots = 2

    public init(config: TrainConfig, comm: any Communicator, train: Dataset, test: Dataset?,
                metrics: MetricsSink? = nil, log: @escaping (String) -> Void = { _ in }) throws {
        try config.validate(worldSize: comm.worldSize)
        guard train.imageShape == config.inputShape else {
            throw ConfigError.invalid(key: "model.input_shape", reason: "is \(config.inputShape) but the training images are \(train.imageShape)")
        }
        self.config = config
        self.comm = comm
        self.train = train
        self.test = test
        self.metrics = metrics
        self.log = log
        schedule = EpochSchedule(sampleCount: train.count, globalBatch: config.batchSize, seed: config.seed, shuffle: config.shuffle)
        let local = schedule.maxLocalBatch(worldSize: comm.worldSize)
        let capacity = comm.isRoot ? max(local, min(config.evalBatchSize, test?.count ?? 0)) : local
        model = try Model(specs: config.layers, inputShape: config.inputShape, loss: config.loss,
                          capacity: capacity, extraGradientSlots: Self.statisticSlots)
        optimizer = config.makeOptimizer(parameterCount: model.store.count)
        labels = [UInt8](repeating: 0, count: capacity)
        sampleIndices = [Int32](repeating: 0, count: capacity)
        if comm.isRoot { model.initialize(seed: config.seed) }
        // No collective here: a rank that failed to set up must not leave the others waiting in
        // one (see `Communicator.agree`). `run` starts with the broadcast.
    }

    /// Trains for `config.epochs` epochs (or `config.maxSteps` steps) and returns the summary.
    public func run() throws -> TrainSummary {
        // Rank 0 initialised the parameters; every rank starts from its values.
        comm.broadcast(model.store.values, root: 0)
        let n = model.store.count
        let grads = model.store.gradients.pointer
        let totalSteps = min(config.maxSteps ?? Int.max, config.epochs * schedule.stepsPerEpoch)
        let epochs = (totalSteps + schedule.stepsPerEpoch - 1) / schedule.stepsPerEpoch
        var epochSeconds: [Double] = []
        var samplesSeen = 0
        var trainSeconds = 0.0
        var lastEval: Evaluation?
        var step = 0

        for epoch in 0..<epochs {
            let order = schedule.permutation(epoch: epoch)
            var epochLoss = 0.0, epochCorrect = 0.0, epochSamples = 0
            let started = Self.now()
            for k in 0..<schedule.stepsPerEpoch where step < totalSteps {
                let batch = schedule.batchRange(step: k)
                let local = schedule.localRange(step: k, rank: comm.rank, worldSize: comm.worldSize)
                order.withUnsafeBufferPointer { o in
                    labels.withUnsafeMutableBufferPointer { l in
                        sampleIndices.withUnsafeMutableBufferPointer { s in
                            BatchGatherer.gather(train, order: o.baseAddress!, positions: local, into: model.input,
                                                 labels: l.baseAddress!, sampleIndices: s.baseAddress!)
                            let context = StepContext(training: true, step: step, seed: config.seed, sampleIndices: UnsafePointer(s.baseAddress!))
                            model.forward(batch: local.count, context: context)
                            // The loss is the mean over the *global* batch: scale by its size here, sum over ranks below.
                            let (loss, correct) = model.head.evaluate(model.output, labels: l.baseAddress!, batch: local.count,
                                                                      gradient: model.outputGradient, scale: 1 / Float(batch.count))
                            model.backward(batch: local.count, context: context)
                            grads[n] = Float(loss)
                            grads[n + 1] = Float(correct)
                        }
                    }
                }
                comm.allreduceSum(grads, count: n + Self.statisticSlots)
                let stepLoss = Double(grads[n]) / Double(batch.count)
                guard stepLoss.isFinite else {
                    throw TrainingError.nonFiniteLoss(step: step, epoch: epoch + 1)
                }
                optimizer.step(parameters: model.store.values.pointer, gradients: grads, count: n, learningRate: Float(config.optimizer.learningRate))
                epochLoss += Double(grads[n])
                epochCorrect += Double(grads[n + 1])
                epochSamples += batch.count
                step += 1
                if comm.isRoot, config.logEvery > 0, step % config.logEvery == 0 {
                    metrics?.write("step", [("step", .int(step)), ("epoch", .int(epoch + 1)), ("loss", .number(stepLoss))])
                }
            }
            let seconds = Self.now() - started
            epochSeconds.append(seconds)
            trainSeconds += seconds
            samplesSeen += epochSamples
            let trainLoss = epochLoss / Double(epochSamples), trainAccuracy = epochCorrect / Double(epochSamples)
            let rate = Double(epochSamples) / seconds
            var line = String(format: "epoch %d/%d  loss %.4f  accuracy %.4f", epoch + 1, epochs, trainLoss, trainAccuracy)
            if comm.isRoot {
                metrics?.write("epoch", [("epoch", .int(epoch + 1)), ("step", .int(step)), ("loss", .number(trainLoss)),
                                         ("accuracy", .number(trainAccuracy)), ("seconds", .number(seconds)),
                                         ("samples", .int(epochSamples)), ("samples_per_second", .number(rate))])
                if let test {
                    let evalStarted = Self.now()
                    let e = Evaluator.evaluate(model, on: test)
                    lastEval = e
                    metrics?.write("eval", [("epoch", .int(epoch + 1)), ("step", .int(step)), ("split", .string("test")),
                                            ("loss", .number(e.loss)), ("accuracy", .number(e.accuracy)),
                                            ("samples", .int(e.count)), ("seconds", .number(Self.now() - evalStarted))])
                    line += String(format: "  test_loss %.4f  test_accuracy %.4f", e.loss, e.accuracy)
                }
                line += String(format: "  %.2fs  %.0f samples/s", seconds, rate)
                log(line)
            }
        }

        let (identical, checksum) = replicaCheck()
        guard identical else { throw TrainingError.replicasDiverged }
        let summary = TrainSummary(testLoss: lastEval?.loss, testAccuracy: lastEval?.accuracy, epochs: epochs, steps: step,
                                   epochSeconds: epochSeconds, samplesPerSecond: Double(samplesSeen) / trainSeconds,
                                   worldSize: comm.worldSize, replicasIdentical: identical, parameterChecksum: checksum)
        if comm.isRoot {
            metrics?.write("summary", [
                ("test_accuracy", summary.testAccuracy.map(JSONValue.number) ?? .string("n/a")),
                ("test_loss", summary.testLoss.map(JSONValue.number) ?? .string("n/a")),
                ("epochs", .int(epochs)), ("steps", .int(step)),
                ("epoch_seconds", .array(epochSeconds.map(JSONValue.number))),
                ("samples_per_second", .number(summary.samplesPerSecond)),
                ("world_size", .int(comm.worldSize)), ("global_batch", .int(config.batchSize)),
                ("replicas_identical", .bool(identical)), ("parameter_checksum", .string(String(checksum, radix: 16))),
            ])
        }
        return summary
    }

    /// Whether every rank holds bit-identical parameters, and this rank's checksum of them.
    public func replicaCheck() -> (Bool, UInt64) {
        let checksum = Checksum.fnv1a(UnsafeRawBufferPointer(model.store.values.buffer))
        // 53 bits of the hash fit a double exactly; max(h) == -max(-h) iff all ranks agree.
        let h = Double(checksum >> 11)
        var pair = [h, -h]
        pair.withUnsafeMutableBufferPointer { comm.allreduceMax($0.baseAddress!, count: 2) }
        return (pair[0] == -pair[1], checksum)
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }
}

/// Training that cannot go on.
public enum TrainingError: Error, CustomStringConvertible {
    case nonFiniteLoss(step: Int, epoch: Int)
    case replicasDiverged

    public var description: String {
        switch self {
        case .nonFiniteLoss(let step, let epoch):
            return "the loss became non-finite (NaN or infinity) at global step \(step + 1) (epoch \(epoch)); lower optimizer.learning_rate"
        case .replicasDiverged:
            return "the ranks' parameters differ after training (replicas diverged); this is a bug, please report it"
        }
    }
}
