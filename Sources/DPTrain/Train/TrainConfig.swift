import Foundation
import Yams

/// Everything a training run needs, read from a YAML file (see `Configs/`) and then overridden
/// by command-line flags. `batchSize` is the *global* batch, split across ranks.
///
/// `parse` rejects unknown keys, wrong types and impossible values with a `ConfigError` naming
/// the key; `validate(worldSize:)` checks what depends on the launch.
public struct TrainConfig: Sendable, Equatable {
    public enum OptimizerKind: String, Sendable, CaseIterable { case adam, sgd }

    public struct OptimizerConfig: Sendable, Equatable {
        public var kind: OptimizerKind = .adam
        public var learningRate: Double = 1e-3
        public var beta1: Double = 0.9
        public var beta2: Double = 0.999
        public var epsilon: Double = 1e-7
        public var momentum: Double = 0
        public var nesterov = false
    }

    public var inputShape: [Int] = [28, 28, 1]
    public var layers: [LayerSpec] = []
    public var loss: LossKind = .sparseCategoricalCrossentropy
    public var optimizer = OptimizerConfig()
    public var epochs = 1
    public var batchSize = 32
    public var seed: UInt64 = 1
    public var shuffle = true
    /// Write a `step` metrics event every this many steps (0: never).
    public var logEvery = 100
    /// Stop after this many global steps (for tests and quick looks).
    public var maxSteps: Int?
    /// Use only the first N training images.
    public var trainLimit: Int?
    /// Use only the first N test images for evaluation.
    public var testLimit: Int?
    public var evalBatchSize = 1000

    public init() {}

    /// Reads and parses a config file.
    public static func load(path: String) throws -> TrainConfig {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigError.unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? "\(error.localizedDescription)" : "no such file")
        }
        return try parse(yaml: text, path: path)
    }

    public static func parse(yaml text: String, path: String = "<config>") throws -> TrainConfig {
        let any: Any?
        do { any = try Yams.load(yaml: text) } catch { throw ConfigError.syntax(path: path, reason: "\(error)") }
        var root = try YAMLNode(path: "", any: any ?? [String: Any]())
        var c = TrainConfig()

        guard var model = try root.node("model") else { throw ConfigError.missing(key: "model") }
        if let shape = try model.list("input_shape") {
            c.inputShape = try shape.map {
                guard let d = $0 as? Int, d > 0 else { throw ConfigError.wrongType(key: "model.input_shape", expected: "a list of positive whole numbers", found: YAMLNode.describe($0)) }
                return d
            }
            if c.inputShape.count == 2 { c.inputShape.append(1) }
            guard c.inputShape.count == 3 else { throw ConfigError.invalid(key: "model.input_shape", reason: "give [height, width, channels], found \(c.inputShape)") }
        }
        guard let layers = try model.list("layers"), !layers.isEmpty else { throw ConfigError.missing(key: "model.layers") }
        c.layers = try layers.enumerated().map { try parseLayer($1, key: "model.layers[\($0)]") }
        try model.finish()

        if let loss = try root.string("loss") {
            guard let kind = LossKind(rawValue: loss) ?? (loss == "mse" ? .meanSquaredError : nil) else {
                throw ConfigError.invalid(key: "loss", reason: "unknown loss '\(loss)'; use one of \(LossKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            c.loss = kind
        }

        if var opt = try root.node("optimizer") {
            if let name = try opt.string("name") {
                guard let kind = OptimizerKind(rawValue: name.lowercased()) else {
                    throw ConfigError.invalid(key: "optimizer.name", reason: "unknown optimizer '\(name)'; use adam or sgd")
                }
                c.optimizer.kind = kind
            }
            c.optimizer.learningRate = try opt.double("learning_rate") ?? c.optimizer.learningRate
            if c.optimizer.kind == .adam {
                c.optimizer.beta1 = try opt.double("beta_1") ?? c.optimizer.beta1
                c.optimizer.beta2 = try opt.double("beta_2") ?? c.optimizer.beta2
                c.optimizer.epsilon = try opt.double("epsilon") ?? c.optimizer.epsilon
            } else {
                c.optimizer.momentum = try opt.double("momentum") ?? 0
                c.optimizer.nesterov = try opt.bool("nesterov") ?? false
            }
            try opt.finish()
        }

        if var training = try root.node("training") {
            c.epochs = try training.int("epochs") ?? c.epochs
            c.batchSize = try training.int("batch_size") ?? c.batchSize
            if let seed = try training.int("seed") {
                guard seed >= 0 else { throw ConfigError.invalid(key: "training.seed", reason: "must be >= 0, found \(seed)") }
                c.seed = UInt64(seed)
            }
            c.shuffle = try training.bool("shuffle") ?? c.shuffle
            c.logEvery = try training.int("log_every") ?? c.logEvery
            c.maxSteps = try training.int("max_steps")
            c.evalBatchSize = try training.int("eval_batch_size") ?? c.evalBatchSize
            try training.finish()
        }

        if var data = try root.node("data") {
            if let dataset = try data.string("dataset"), dataset != "mnist" {
                throw ConfigError.invalid(key: "data.dataset", reason: "only 'mnist' (MNIST-format IDX files) is supported, found '\(dataset)'")
            }
            c.trainLimit = try data.int("train_limit")
            c.testLimit = try data.int("test_limit")
            try data.finish()
        }
        try root.finish()
        try c.validate()
        return c
    }

    static func parseLayer(_ any: Any, key: String) throws -> LayerSpec {
        var node = try YAMLNode(path: key, any: any)
        guard let type = try node.string("type") else { throw ConfigError.missing(key: "\(key).type") }
        let spec: LayerSpec
        switch type.lowercased() {
        case "flatten":
            spec = .flatten
        case "dense":
            guard let units = try node.int("units") else { throw ConfigError.missing(key: "\(key).units") }
            guard units >= 1 else { throw ConfigError.invalid(key: "\(key).units", reason: "must be >= 1, found \(units)") }
            spec = .dense(units: units, activation: try activation(node.string("activation") ?? "linear", key: "\(key).activation"))
        case "dropout":
            guard let rate = try node.double("rate") else { throw ConfigError.missing(key: "\(key).rate") }
            guard rate >= 0 && rate < 1 else { throw ConfigError.invalid(key: "\(key).rate", reason: "must be in [0, 1), found \(rate)") }
            spec = .dropout(rate: Float(rate))
        case "activation":
            guard let name = try node.string("activation") else { throw ConfigError.missing(key: "\(key).activation") }
            spec = .activation(try activation(name, key: "\(key).activation"))
        default:
            throw ConfigError.invalid(key: "\(key).type", reason: "unknown layer type '\(type)'; use flatten, dense, dropout or activation")
        }
        try node.finish()
        return spec
    }

    static func activation(_ name: String, key: String) throws -> ActivationKind {
        guard let kind = ActivationKind(rawValue: name.lowercased()) else {
            throw ConfigError.invalid(key: key, reason: "unknown activation '\(name)'; use \(ActivationKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return kind
    }

    /// Checks the values that make no sense whatever the launch.
    public func validate() throws {
        func require(_ ok: Bool, _ key: String, _ reason: String) throws {
            if !ok { throw ConfigError.invalid(key: key, reason: reason) }
        }
        try require(epochs >= 1, "training.epochs", "must be >= 1, found \(epochs)")
        try require(batchSize >= 1, "training.batch_size", "must be >= 1, found \(batchSize)")
        try require(logEvery >= 0, "training.log_every", "must be >= 0, found \(logEvery)")
        try require(evalBatchSize >= 1, "training.eval_batch_size", "must be >= 1, found \(evalBatchSize)")
        try require((maxSteps ?? 1) >= 1, "training.max_steps", "must be >= 1, found \(maxSteps ?? 0)")
        try require((trainLimit ?? 1) >= 1, "data.train_limit", "must be >= 1, found \(trainLimit ?? 0)")
        try require((testLimit ?? 1) >= 1, "data.test_limit", "must be >= 1, found \(testLimit ?? 0)")
        try require(optimizer.learningRate > 0 && optimizer.learningRate.isFinite, "optimizer.learning_rate", "must be > 0, found \(optimizer.learningRate)")
        try require(optimizer.beta1 >= 0 && optimizer.beta1 < 1, "optimizer.beta_1", "must be in [0, 1), found \(optimizer.beta1)")
        try require(optimizer.beta2 >= 0 && optimizer.beta2 < 1, "optimizer.beta_2", "must be in [0, 1), found \(optimizer.beta2)")
        try require(optimizer.epsilon > 0, "optimizer.epsilon", "must be > 0, found \(optimizer.epsilon)")
        try require(optimizer.momentum >= 0 && optimizer.momentum < 1, "optimizer.momentum", "must be in [0, 1), found \(optimizer.momentum)")
    }

    /// Checks what depends on the number of ranks.
    public func validate(worldSize: Int) throws {
        if batchSize < worldSize {
            throw ConfigError.invalid(key: "training.batch_size",
                                      reason: "the global batch (\(batchSize)) is smaller than the number of ranks (\(worldSize)); use a batch of at least \(worldSize) or fewer ranks")
        }
    }

    /// Builds the optimizer this config names for `parameterCount` parameters.
    public func makeOptimizer(parameterCount: Int) -> any Optimizer {
        switch optimizer.kind {
        case .adam:
            return Adam(parameterCount: parameterCount, beta1: Float(optimizer.beta1), beta2: Float(optimizer.beta2), epsilon: Float(optimizer.epsilon))
        case .sgd:
            return SGD(parameterCount: parameterCount, momentum: Float(optimizer.momentum), nesterov: optimizer.nesterov)
        }
    }
}
