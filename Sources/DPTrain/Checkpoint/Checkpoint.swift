import Foundation

/// Where training stands: enough to continue at the exact next sample, at any world size.
public struct TrainingPosition: Sendable, Equatable {
    /// Global steps completed.
    public var step = 0
    /// The epoch in progress (0-based) and the steps of it already done.
    public var epoch = 0
    public var stepInEpoch = 0
    /// Running sums of the epoch in progress, so its reported loss and accuracy survive a resume.
    public var epochLossSum = 0.0
    public var epochCorrect = 0.0
    public var epochSamples = 0
    /// Optimizer updates applied.
    public var optimizerIterations = 0
    /// Early-stopping state.
    public var bestValidationLoss = Double.infinity
    public var epochsWithoutImprovement = 0
    /// Steps skipped because their loss or gradient was not finite.
    public var skippedSteps = 0

    public init() {}

    /// As doubles, for one broadcast from rank 0 (every value is exact in a double).
    var packed: [Double] {
        [Double(step), Double(epoch), Double(stepInEpoch), epochLossSum, epochCorrect, Double(epochSamples),
         Double(optimizerIterations), bestValidationLoss, Double(epochsWithoutImprovement), Double(skippedSteps)]
    }

    init(packed p: [Double]) {
        step = Int(p[0]); epoch = Int(p[1]); stepInEpoch = Int(p[2])
        epochLossSum = p[3]; epochCorrect = p[4]; epochSamples = Int(p[5])
        optimizerIterations = Int(p[6]); bestValidationLoss = p[7]
        epochsWithoutImprovement = Int(p[8]); skippedSteps = Int(p[9])
    }
}

/// A training checkpoint: the named parameters (`dense_1.kernel`, ...), the optimizer state
/// (`adam.m.dense_1.kernel`, ...) and, in the metadata, the position, the seed, the world size
/// at save time, the config it was trained with and a checksum of all tensor bytes.
public struct Checkpoint: Sendable {
    public static let formatVersion = 1

    public var tensors: [SafeTensors.Tensor]
    public var metadata: [String: String]

    public init(tensors: [SafeTensors.Tensor], metadata: [String: String]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    /// Snapshot of `model` and `optimizer` at `position`.
    public static func capture(model: Model, optimizer: any Optimizer, position: TrainingPosition,
                               config: TrainConfig, configText: String, worldSize: Int) -> Checkpoint {
        var tensors: [SafeTensors.Tensor] = []
        let values = model.store.values.pointer
        for e in model.store.entries {
            tensors.append(.init(name: e.name, shape: e.shape, values: Array(UnsafeBufferPointer(start: values + e.offset, count: e.count))))
        }
        for (stateName, buffer) in optimizer.state {
            for e in model.store.entries {
                tensors.append(.init(name: "\(stateName).\(e.name)", shape: e.shape,
                                     values: Array(UnsafeBufferPointer(start: buffer.pointer + e.offset, count: e.count))))
            }
        }
        let p = position
        let metadata: [String: String] = [
            "format": "dptrain", "format_version": "\(formatVersion)", "library_version": BuildInfo.version,
            "step": "\(p.step)", "epoch": "\(p.epoch)", "step_in_epoch": "\(p.stepInEpoch)",
            "sample_cursor": "\(p.stepInEpoch * config.batchSize)",
            "epoch_loss_sum": "\(p.epochLossSum)", "epoch_correct": "\(p.epochCorrect)", "epoch_samples": "\(p.epochSamples)",
            "optimizer": config.optimizer.kind.rawValue, "optimizer_iterations": "\(p.optimizerIterations)",
            "best_val_loss": "\(p.bestValidationLoss)", "epochs_without_improvement": "\(p.epochsWithoutImprovement)",
            "skipped_steps": "\(p.skippedSteps)",
            "seed": "\(config.seed)", "global_batch": "\(config.batchSize)", "world_size": "\(worldSize)",
            "config": configText, "config_digest": String(Array(configText.utf8).withUnsafeBytes { Checksum.fnv1a($0) }, radix: 16),
            "checksum": String(checksum(of: tensors), radix: 16),
        ]
        return Checkpoint(tensors: tensors, metadata: metadata)
    }

    /// FNV-1a over every tensor's bytes, in order.
    static func checksum(of tensors: [SafeTensors.Tensor]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for t in tensors { h = t.values.withUnsafeBytes { Checksum.fnv1a($0, seed: h) } }
        return h
    }

    public func encoded() -> [UInt8] { SafeTensors.encode(tensors, metadata: metadata) }

    /// Reads and verifies a checkpoint file (format, version, checksum).
    public static func read(path: String) throws -> Checkpoint {
        guard FileManager.default.fileExists(atPath: path) else { throw CheckpointError.missing(path: path) }
        let bytes: [UInt8]
        do { bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw CheckpointError.unreadable(path: path, reason: error.localizedDescription)
        }
        let (tensors, metadata) = try SafeTensors.decode(bytes, path: path)
        guard metadata["format"] == "dptrain", let version = metadata["format_version"].flatMap({ Int($0) }) else {
            throw CheckpointError.invalid(path: path, problem: "no dptrain metadata (format, format_version)")
        }
        guard version <= formatVersion else {
            throw CheckpointError.invalid(path: path, problem: "format version \(version) is newer than this dptrain reads (\(formatVersion)); upgrade dptrain")
        }
        // The tensors come back in file order, which is the order they were written in.
        let found = String(checksum(of: tensors), radix: 16)
        guard found == metadata["checksum"] else {
            throw CheckpointError.invalid(path: path, problem: "checksum mismatch (stored \(metadata["checksum"] ?? "none"), computed \(found)): the file is corrupt")
        }
        return Checkpoint(tensors: tensors, metadata: metadata)
    }

    public func integer(_ key: String) -> Int? { metadata[key].flatMap { Int($0) } }

    public var position: TrainingPosition {
        var p = TrainingPosition()
        p.step = integer("step") ?? 0
        p.epoch = integer("epoch") ?? 0
        p.stepInEpoch = integer("step_in_epoch") ?? 0
        p.epochLossSum = metadata["epoch_loss_sum"].flatMap { Double($0) } ?? 0
        p.epochCorrect = metadata["epoch_correct"].flatMap { Double($0) } ?? 0
        p.epochSamples = integer("epoch_samples") ?? 0
        p.optimizerIterations = integer("optimizer_iterations") ?? 0
        p.bestValidationLoss = metadata["best_val_loss"].flatMap { Double($0) } ?? .infinity
        p.epochsWithoutImprovement = integer("epochs_without_improvement") ?? 0
        p.skippedSteps = integer("skipped_steps") ?? 0
        return p
    }

    /// Copies the parameters (and, when given, the optimizer state) into `model`, after checking
    /// that every tensor the model needs is present with the right shape.
    public func restore(into model: Model, optimizer: (any Optimizer)?, path: String) throws {
        let byName = Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func copy(_ name: String, _ entry: ParameterStore.Entry, into base: UnsafeMutablePointer<Float>) throws {
            guard let t = byName[name] else {
                throw CheckpointError.mismatch(path: path, problem: "it has no tensor '\(name)', which the configured model needs")
            }
            guard t.shape == entry.shape else {
                throw CheckpointError.mismatch(path: path, problem: "tensor '\(name)' has shape \(t.shape), the configured model needs \(entry.shape)")
            }
            t.values.withUnsafeBufferPointer { (base + entry.offset).update(from: $0.baseAddress!, count: entry.count) }
        }
        let parameterNames = Set(model.store.entries.map(\.name))
        if let extra = tensors.map(\.name).first(where: { !isOptimizerTensor($0) && !parameterNames.contains($0) }) {
            throw CheckpointError.mismatch(path: path, problem: "it has tensor '\(extra)', which the configured model does not")
        }
        for e in model.store.entries { try copy(e.name, e, into: model.store.values.pointer) }
        guard let optimizer else { return }
        if metadata["optimizer"].map({ $0 == "sgd" }) != (optimizer is SGD) {
            throw CheckpointError.mismatch(path: path, problem: "it was trained with optimizer \(metadata["optimizer"] ?? "?"), the config names another")
        }
        for (stateName, buffer) in optimizer.state {
            for e in model.store.entries { try copy("\(stateName).\(e.name)", e, into: buffer.pointer) }
        }
        optimizer.iterations = position.optimizerIterations
    }

    /// Rebuilds the model this checkpoint was trained with (from the config stored in it) and
    /// loads its parameters, for evaluation and prediction.
    public func model(capacity: Int, path: String) throws -> (TrainConfig, Model) {
        guard let text = metadata["config"], !text.isEmpty else {
            throw CheckpointError.invalid(path: path, problem: "it holds no config, so the model cannot be rebuilt")
        }
        let config = try TrainConfig.parse(yaml: text, path: "\(path) (stored config)")
        let model = try Model(specs: config.layers, inputShape: config.inputShape, loss: config.loss, capacity: capacity)
        try restore(into: model, optimizer: nil, path: path)
        return (config, model)
    }

    func isOptimizerTensor(_ name: String) -> Bool { name.hasPrefix("adam.") || name.hasPrefix("sgd.") }
}

/// A checkpoint that cannot be used; each message names the file.
public enum CheckpointError: Error, CustomStringConvertible {
    case missing(path: String)
    case unreadable(path: String, reason: String)
    case invalid(path: String, problem: String)
    case mismatch(path: String, problem: String)
    case noneFound(directory: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .missing(let path): return "\(path): checkpoint file not found"
        case .unreadable(let path, let reason): return "\(path): cannot read checkpoint: \(reason)"
        case .invalid(let path, let problem): return "\(path): not a valid checkpoint: \(problem)"
        case .mismatch(let path, let problem): return "\(path): checkpoint of another model: \(problem)"
        case .noneFound(let directory): return "--resume: no valid checkpoint in \(directory)"
        case .writeFailed(let path, let reason): return "cannot write checkpoint \(path): \(reason); the previous checkpoints are untouched"
        }
    }
}
