import Foundation
import Yams

/// Everything a training run needs, read from a YAML file (see `Configs/`) and then overridden
/// by command-line flags. `batchSize` is the *global* batch, split across ranks.
///
/// `parse` rejects unknown keys, wrong types and impossible values with a `ConfigError` naming
/// the key; `validate(worldSize:)` checks what depends on the launch.
public struct TrainConfig: Sendable, Equatable {
    public enum OptimizerKind: String, Sendable, CaseIterable { case adam, adamw, sgd }

    public struct OptimizerConfig: Sendable, Equatable {
        public var kind: OptimizerKind = .adam
        public var learningRate: Double {
            get { schedule.rate }
            set { schedule.rate = newValue }
        }
        public var schedule = LearningRateSchedule(rate: 1e-3)
        public var beta1: Double = 0.9
        public var beta2: Double = 0.999
        public var epsilon: Double = 1e-7
        public var amsgrad = false
        /// Decoupled weight decay (AdamW only).
        public var weightDecay: Double = 0
        public var momentum: Double = 0
        public var nesterov = false
    }

    /// What the labels of the data set mean to the model.
    public enum Labels: String, Sendable, CaseIterable {
        /// The digit, 0-9.
        case digits
        /// 1 for an even digit, 0 for an odd one: a two-class task for binary cross-entropy.
        case even
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
    /// Keras's `validation_split`: the last fraction of the training set, before shuffling,
    /// held out and evaluated by rank 0 after each epoch.
    public var validationSplit = 0.0
    /// Stop when the validation loss has not improved by more than `earlyStoppingMinDelta`
    /// for this many epochs (Keras's `EarlyStopping(monitor="val_loss")`); nil: never.
    public var earlyStoppingPatience: Int?
    public var earlyStoppingMinDelta = 0.0
    public var labels = Labels.digits
    /// Where the data is and how to read it (default: MNIST's IDX files).
    public var data = DataSpec()
    /// What a non-finite loss or gradient does: stop with an error, or skip the step (counted).
    public var skipNonFinite = false
    /// Compare a checksum of the parameters across ranks every N steps (0: only at the end).
    public var consistencyCheckEvery = 0
    /// Seconds any one collective may take before the watchdog stops the job.
    public var collectiveTimeout = 600.0
    /// The gradients' wire format in the allreduce (several ranks only).
    public var allreduceCompression = AllreduceCompression.none
    /// With one rank a machine and several machines: send the gradient in buckets of
    /// `bucketBytes` while backward runs (a communication thread), rather than after it (as
    /// always for a gradient that fits in one bucket).
    public var overlapCommunication = true
    /// With the gradient sent in buckets during backward: each bucket's update runs on the
    /// communication thread as its sum arrives, and the next step's forward pass waits only for
    /// the layer it is at. Off by default: on hosts of one core it measured slower (the update's
    /// work moves, it does not shrink); it pays where a slow link leaves cores idle.
    public var pipelinedUpdate = false
    /// `allreduce_compression: powersgd`: the factors' rank, the uncompressed steps before it
    /// starts, the smallest matrix (floats) it compresses, and whether the warm-up steps' gradient
    /// and the P factors cross as bfloat16 (`training.powersgd`).
    public var powerSGDRank = 4
    public var powerSGDWarmupSteps = 100
    public var powerSGDMinimumSize = 4096
    public var powerSGDBF16 = false
    public var bucketBytes = 1 << 20
    /// Checkpointing: directory (nil: no checkpoints), cadence and how many files to keep.
    public var checkpointDirectory: String?
    public var checkpointEverySteps = 0
    public var checkpointEveryEpochs = 1
    public var checkpointKeep = 3

    public init() {}

    /// Reads and parses a config file.
    public static func load(path: String) throws -> TrainConfig {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigError.unreadable(
                path: path,
                reason: FileManager.default.fileExists(atPath: path) ? "\(error.localizedDescription)" : "no such file")
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
                guard let d = $0 as? Int, d > 0 else {
                    throw ConfigError.wrongType(
                        key: "model.input_shape", expected: "a list of positive whole numbers",
                        found: YAMLNode.describe($0))
                }
                return d
            }
            if c.inputShape.count == 2 { c.inputShape.append(1) }
            guard c.inputShape.count == 3 || c.inputShape.count == 1 else {
                throw ConfigError.invalid(
                    key: "model.input_shape",
                    reason: "give [features] or [height, width, channels], found \(c.inputShape)")
            }
        }
        guard let layers = try model.list("layers"), !layers.isEmpty else {
            throw ConfigError.missing(key: "model.layers")
        }
        c.layers = try layers.enumerated().map { try parseLayer($1, key: "model.layers[\($0)]") }
        try model.finish()

        if let loss = try root.string("loss") {
            guard let kind = LossKind(rawValue: loss) ?? (loss == "mse" ? .meanSquaredError : nil) else {
                throw ConfigError.invalid(
                    key: "loss",
                    reason:
                        "unknown loss '\(loss)'; use one of \(LossKind.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            c.loss = kind
        }

        if var opt = try root.node("optimizer") {
            if let name = try opt.string("name") {
                guard let kind = OptimizerKind(rawValue: name.lowercased()) else {
                    throw ConfigError.invalid(
                        key: "optimizer.name", reason: "unknown optimizer '\(name)'; use adam, adamw or sgd")
                }
                c.optimizer.kind = kind
            }
            c.optimizer.learningRate = try opt.double("learning_rate") ?? (c.optimizer.kind == .sgd ? 0.01 : 1e-3)
            if var schedule = try opt.node("schedule") {
                let type = try schedule.string("type") ?? "constant"
                guard let kind = LearningRateSchedule.Kind(rawValue: type) else {
                    throw ConfigError.invalid(
                        key: "optimizer.schedule.type",
                        reason:
                            "unknown schedule '\(type)'; use \(LearningRateSchedule.Kind.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                c.optimizer.schedule.kind = kind
                c.optimizer.schedule.warmupSteps = try schedule.int("warmup_steps") ?? 0
                if kind != .constant {
                    guard let steps = try schedule.int("decay_steps") else {
                        throw ConfigError.missing(key: "optimizer.schedule.decay_steps")
                    }
                    c.optimizer.schedule.decaySteps = steps
                }
                if kind == .step { c.optimizer.schedule.decayRate = try schedule.double("decay_rate") ?? 0.5 }
                if kind == .cosine { c.optimizer.schedule.alpha = try schedule.double("alpha") ?? 0 }
                try schedule.finish()
            }
            if c.optimizer.kind != .sgd {
                c.optimizer.beta1 = try opt.double("beta_1") ?? c.optimizer.beta1
                c.optimizer.beta2 = try opt.double("beta_2") ?? c.optimizer.beta2
                c.optimizer.epsilon = try opt.double("epsilon") ?? c.optimizer.epsilon
                c.optimizer.amsgrad = try opt.bool("amsgrad") ?? false
                if c.optimizer.kind == .adamw { c.optimizer.weightDecay = try opt.double("weight_decay") ?? 0.004 }
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
                guard seed >= 0 else {
                    throw ConfigError.invalid(key: "training.seed", reason: "must be >= 0, found \(seed)")
                }
                c.seed = UInt64(seed)
            }
            c.shuffle = try training.bool("shuffle") ?? c.shuffle
            c.logEvery = try training.int("log_every") ?? c.logEvery
            c.maxSteps = try training.int("max_steps")
            c.evalBatchSize = try training.int("eval_batch_size") ?? c.evalBatchSize
            c.validationSplit = try training.double("validation_split") ?? 0
            if let policy = try training.string("on_nonfinite") {
                guard policy == "stop" || policy == "skip" else {
                    throw ConfigError.invalid(
                        key: "training.on_nonfinite", reason: "use stop or skip, found '\(policy)'")
                }
                c.skipNonFinite = policy == "skip"
            }
            c.consistencyCheckEvery = try training.int("consistency_check_every") ?? 0
            c.collectiveTimeout = try training.double("collective_timeout") ?? c.collectiveTimeout
            if let compression = try training.string("allreduce_compression") {
                guard let kind = AllreduceCompression(rawValue: compression) else {
                    throw ConfigError.invalid(
                        key: "training.allreduce_compression",
                        reason: "use none, bf16 or powersgd, found '\(compression)'")
                }
                c.allreduceCompression = kind
            }
            c.overlapCommunication = try training.bool("overlap_communication") ?? c.overlapCommunication
            c.pipelinedUpdate = try training.bool("pipelined_update") ?? c.pipelinedUpdate
            if c.pipelinedUpdate && c.skipNonFinite {
                throw ConfigError.invalid(
                    key: "training.pipelined_update",
                    reason:
                        "cannot go with on_nonfinite: skip, which needs the whole sum's verdict before any update: "
                        + "use one or the other")
            }
            if var power = try training.node("powersgd") {
                if let rank = try power.int("rank") {
                    guard rank >= 1 else {
                        throw ConfigError.invalid(
                            key: "training.powersgd.rank", reason: "must be at least 1, found \(rank)")
                    }
                    c.powerSGDRank = rank
                }
                if let warmup = try power.int("warmup_steps") {
                    guard warmup >= 0 else {
                        throw ConfigError.invalid(
                            key: "training.powersgd.warmup_steps", reason: "must be 0 or more, found \(warmup)")
                    }
                    c.powerSGDWarmupSteps = warmup
                }
                if let size = try power.int("min_size") {
                    guard size >= 1 else {
                        throw ConfigError.invalid(
                            key: "training.powersgd.min_size", reason: "must be at least 1, found \(size)")
                    }
                    c.powerSGDMinimumSize = size
                }
                c.powerSGDBF16 = try power.bool("bf16") ?? c.powerSGDBF16
                try power.finish()
            }
            if let megabytes = try training.double("bucket_mb") {
                guard megabytes >= 0.01 && megabytes <= 1024 else {
                    throw ConfigError.invalid(
                        key: "training.bucket_mb", reason: "must be from 0.01 to 1024 (megabytes), found \(megabytes)")
                }
                c.bucketBytes = Int(megabytes * 1_048_576) & ~63
            }
            if var stopping = try training.node("early_stopping") {
                guard let patience = try stopping.int("patience") else {
                    throw ConfigError.missing(key: "training.early_stopping.patience")
                }
                c.earlyStoppingPatience = patience
                c.earlyStoppingMinDelta = try stopping.double("min_delta") ?? 0
                try stopping.finish()
            }
            try training.finish()
        }

        if var checkpoint = try root.node("checkpoint") {
            c.checkpointDirectory = try checkpoint.string("dir")
            c.checkpointEverySteps = try checkpoint.int("every_steps") ?? 0
            c.checkpointEveryEpochs = try checkpoint.int("every_epochs") ?? 1
            c.checkpointKeep = try checkpoint.int("keep") ?? 3
            try checkpoint.finish()
        }

        if var data = try root.node("data") {
            if let dataset = try data.string("dataset"), dataset != "mnist" {
                throw ConfigError.invalid(
                    key: "data.dataset",
                    reason: "only 'mnist' names a data set; give other data with data.train (and data.test)")
            }
            c.trainLimit = try data.int("train_limit")
            c.testLimit = try data.int("test_limit")
            if let labels = try data.string("labels") {
                guard let kind = Labels(rawValue: labels) else {
                    throw ConfigError.invalid(
                        key: "data.labels", reason: "unknown labels '\(labels)'; use digits or even")
                }
                c.labels = kind
            }
            c.data.directory = try data.string("dir")
            if let format = try data.string("format") {
                guard let f = DataSpec.Format(rawValue: format) else {
                    throw ConfigError.invalid(
                        key: "data.format",
                        reason:
                            "unknown format '\(format)'; use \(DataSpec.Format.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                c.data.format = f
            }
            c.data.train = try files(&data, "train")
            c.data.test = try files(&data, "test")
            if c.data.test != nil && c.data.train == nil { throw ConfigError.missing(key: "data.train") }
            if let name = data.raw("label_column") { c.data.labelColumn = try column(name, key: "data.label_column") }
            if let list = try data.list("feature_columns") {
                c.data.featureColumns = try list.enumerated().map { try column($1, key: "data.feature_columns[\($0)]") }
            }
            if let normalize = try data.string("normalize") {
                guard let kind = Normalization.Kind(rawValue: normalize) else {
                    throw ConfigError.invalid(
                        key: "data.normalize", reason: "use scale (x / 255), standardize or none; found '\(normalize)'")
                }
                c.data.normalize = kind
            }
            if let count = c.data.train?.count, count != c.data.filesPerSplit {
                throw ConfigError.invalid(
                    key: "data.train",
                    reason: "names \(count) file(s); \(c.data.resolvedFormat.rawValue) takes \(c.data.filesPerSplit)"
                        + (c.data.filesPerSplit == 2 ? " ([features, labels])" : ""))
            }
            if c.data.resolvedFormat == .csv && c.data.labelColumn == nil {
                throw ConfigError.missing(key: "data.label_column")
            }
            try data.finish()
        }
        try root.finish()
        try c.validate()
        return c
    }

    /// A split's files: one name, or a list of them.
    static func files(_ node: inout YAMLNode, _ name: String) throws -> [String]? {
        guard let value = node.raw(name) else { return nil }
        if let one = value as? String { return [one] }
        if let list = value as? [Any], !list.isEmpty, let names = list as? [String] { return names }
        throw ConfigError.wrongType(
            key: "data.\(name)", expected: "a file name or a list of them", found: YAMLNode.describe(value))
    }

    /// A CSV column: a header name or a 0-based index.
    static func column(_ value: Any, key: String) throws -> CSVTable.Column {
        if let i = value as? Int, i >= 0 { return .index(i) }
        if let name = value as? String { return .name(name) }
        throw ConfigError.wrongType(
            key: key, expected: "a column name or a 0-based index", found: YAMLNode.describe(value))
    }

    static func parseLayer(_ any: Any, key: String) throws -> LayerSpec {
        var node = try YAMLNode(path: key, any: any)
        guard let type = try node.string("type") else { throw ConfigError.missing(key: "\(key).type") }
        let spec: LayerSpec
        switch type.lowercased() {
        case "flatten":
            spec = .flatten
        case "dense":
            let units = try positive(&node, "units", key: key)
            spec = .dense(
                units: units,
                activation: try activation(node.string("activation") ?? "linear", key: "\(key).activation"),
                l2: try l2(&node, key: key))
        case "conv2d":
            let filters = try positive(&node, "filters", key: key)
            let kernel = try positive(&node, "kernel_size", key: key)
            let stride = try positive(&node, "strides", key: key, default: 1)
            let padding = try node.string("padding") ?? "valid"
            guard let pad = Conv2D.Padding(rawValue: padding) else {
                throw ConfigError.invalid(key: "\(key).padding", reason: "use valid or same, found '\(padding)'")
            }
            spec = .conv2d(
                filters: filters, kernel: kernel, stride: stride, padding: pad,
                activation: try activation(node.string("activation") ?? "linear", key: "\(key).activation"),
                l2: try l2(&node, key: key))
        case "max_pooling2d":
            let pool = try positive(&node, "pool_size", key: key, default: 2)
            spec = .maxPooling2d(pool: pool, stride: try positive(&node, "strides", key: key, default: pool))
        case "dropout":
            guard let rate = try node.double("rate") else { throw ConfigError.missing(key: "\(key).rate") }
            guard rate >= 0 && rate < 1 else {
                throw ConfigError.invalid(key: "\(key).rate", reason: "must be in [0, 1), found \(rate)")
            }
            spec = .dropout(rate: Float(rate))
        case "activation":
            guard let name = try node.string("activation") else { throw ConfigError.missing(key: "\(key).activation") }
            spec = .activation(try activation(name, key: "\(key).activation"))
        default:
            throw ConfigError.invalid(
                key: "\(key).type",
                reason: "unknown layer type '\(type)'; use flatten, dense, conv2d, max_pooling2d, dropout or activation"
            )
        }
        try node.finish()
        return spec
    }

    /// A whole number >= 1 at `name` (required unless `default` is given).
    static func positive(_ node: inout YAMLNode, _ name: String, key: String, default value: Int? = nil) throws -> Int {
        guard let n = try node.int(name) ?? value else { throw ConfigError.missing(key: "\(key).\(name)") }
        guard n >= 1 else { throw ConfigError.invalid(key: "\(key).\(name)", reason: "must be >= 1, found \(n)") }
        return n
    }

    /// `kernel_regularizer: {l2: lambda}`, Keras's `regularizers.l2(lambda)`.
    static func l2(_ node: inout YAMLNode, key: String) throws -> Float {
        guard var reg = try node.node("kernel_regularizer") else { return 0 }
        guard let lambda = try reg.double("l2") else { throw ConfigError.missing(key: "\(key).kernel_regularizer.l2") }
        guard lambda >= 0 else {
            throw ConfigError.invalid(key: "\(key).kernel_regularizer.l2", reason: "must be >= 0, found \(lambda)")
        }
        try reg.finish()
        return Float(lambda)
    }

    static func activation(_ name: String, key: String) throws -> ActivationKind {
        guard let kind = ActivationKind(rawValue: name.lowercased()) else {
            throw ConfigError.invalid(
                key: key,
                reason:
                    "unknown activation '\(name)'; use \(ActivationKind.allCases.map(\.rawValue).joined(separator: ", "))"
            )
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
        try require(
            optimizer.learningRate > 0 && optimizer.learningRate.isFinite, "optimizer.learning_rate",
            "must be > 0, found \(optimizer.learningRate)")
        try require(
            optimizer.beta1 >= 0 && optimizer.beta1 < 1, "optimizer.beta_1",
            "must be in [0, 1), found \(optimizer.beta1)")
        try require(
            optimizer.beta2 >= 0 && optimizer.beta2 < 1, "optimizer.beta_2",
            "must be in [0, 1), found \(optimizer.beta2)")
        try require(optimizer.epsilon > 0, "optimizer.epsilon", "must be > 0, found \(optimizer.epsilon)")
        try require(
            optimizer.momentum >= 0 && optimizer.momentum < 1, "optimizer.momentum",
            "must be in [0, 1), found \(optimizer.momentum)")
        try require(
            optimizer.weightDecay >= 0, "optimizer.weight_decay", "must be >= 0, found \(optimizer.weightDecay)")
        try require(
            optimizer.schedule.warmupSteps >= 0, "optimizer.schedule.warmup_steps",
            "must be >= 0, found \(optimizer.schedule.warmupSteps)")
        try require(
            optimizer.schedule.decaySteps >= 1, "optimizer.schedule.decay_steps",
            "must be >= 1, found \(optimizer.schedule.decaySteps)")
        try require(
            optimizer.schedule.decayRate > 0, "optimizer.schedule.decay_rate",
            "must be > 0, found \(optimizer.schedule.decayRate)")
        try require(
            collectiveTimeout > 0, "training.collective_timeout", "must be > 0 seconds, found \(collectiveTimeout)")
        try require(
            consistencyCheckEvery >= 0, "training.consistency_check_every",
            "must be >= 0, found \(consistencyCheckEvery)")
        try require(checkpointEverySteps >= 0, "checkpoint.every_steps", "must be >= 0, found \(checkpointEverySteps)")
        try require(
            checkpointEveryEpochs >= 0, "checkpoint.every_epochs", "must be >= 0, found \(checkpointEveryEpochs)")
        try require(checkpointKeep >= 1, "checkpoint.keep", "must be >= 1, found \(checkpointKeep)")
        try require(
            validationSplit >= 0 && validationSplit < 1, "training.validation_split",
            "must be in [0, 1), found \(validationSplit)")
        try require(
            (earlyStoppingPatience ?? 0) >= 0, "training.early_stopping.patience",
            "must be >= 0, found \(earlyStoppingPatience ?? 0)")
        if earlyStoppingPatience != nil && validationSplit == 0 {
            throw ConfigError.invalid(
                key: "training.early_stopping",
                reason: "monitors the validation loss: set training.validation_split too")
        }
    }

    /// Checks what depends on the number of ranks.
    public func validate(worldSize: Int) throws {
        if batchSize < worldSize {
            throw ConfigError.invalid(
                key: "training.batch_size",
                reason:
                    "the global batch (\(batchSize)) is smaller than the number of ranks (\(worldSize)); use a batch of at least \(worldSize) or fewer ranks"
            )
        }
    }

    /// The data directory: `flag` (`--data-dir`), else `data.dir`, else `$DPTRAIN_DATA`, else
    /// `data/mnist`.
    public func dataDirectory(flag: String?) -> String {
        flag ?? data.directory ?? ProcessInfo.processInfo.environment["DPTRAIN_DATA"] ?? "data/mnist"
    }

    /// Loads `split` with this config's limits, label mapping and normalisation. A test split
    /// takes the training split's `classes` (count and names). Nil when the config names no files
    /// for the split. `standardize` is left to the trainer, which computes it on the training part
    /// alone (without the validation split), and to checkpoints, which keep it.
    public func loadDataset(
        directory: String, split: Dataset.Split, classes: Classes? = nil, digest: Bool = false
    ) throws -> Dataset? {
        let loader = DataLoader(spec: data, directory: directory)
        guard
            var d = try loader.load(
                split, limit: split == .train ? trainLimit : testLimit,
                classes: labels == .even ? nil : classes, digest: digest)
        else { return nil }
        if labels == .even { d = d.relabeled(classes: 2) { $0 % 2 == 0 ? 1 : 0 } }
        if let kind = data.normalize, kind != .standardize { d.normalization = kind == .none ? .none : .scale }
        return d
    }

    /// Builds the optimizer this config names for `parameterCount` parameters.
    public func makeOptimizer(parameterCount: Int) -> any Optimizer {
        switch optimizer.kind {
        case .adam, .adamw:
            return Adam(
                parameterCount: parameterCount, beta1: Float(optimizer.beta1), beta2: Float(optimizer.beta2),
                epsilon: Float(optimizer.epsilon),
                amsgrad: optimizer.amsgrad, weightDecay: Float(optimizer.weightDecay))
        case .sgd:
            return SGD(
                parameterCount: parameterCount, momentum: Float(optimizer.momentum), nesterov: optimizer.nesterov)
        }
    }
}
