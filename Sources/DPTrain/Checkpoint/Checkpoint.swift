import Foundation

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

    /// Snapshot of `model` and `optimizer` at `position`, with `extraTensors` and `extraMetadata`
    /// (PowerSGD's state) beside them.
    public static func capture(
        model: Model, optimizer: any Optimizer, position: TrainingPosition,
        config: TrainConfig, configText: String, worldSize: Int, normalization: Normalization = .scale,
        classes: Classes? = nil, extraTensors: [SafeTensors.Tensor] = [], extraMetadata: [String: String] = [:]
    ) -> Checkpoint {
        var tensors: [SafeTensors.Tensor] = []
        if case .standardize(let mean, let std) = normalization {
            tensors.append(.init(name: "data.mean", shape: [mean.count], values: mean))
            tensors.append(.init(name: "data.std", shape: [std.count], values: std))
        }
        let values = model.store.values.pointer
        for e in model.store.entries {
            tensors.append(
                .init(
                    name: e.name, shape: e.shape,
                    values: Array(UnsafeBufferPointer(start: values + e.offset, count: e.count))))
        }
        for (stateName, buffer) in optimizer.state {
            for e in model.store.entries {
                tensors.append(
                    .init(
                        name: "\(stateName).\(e.name)", shape: e.shape,
                        values: Array(UnsafeBufferPointer(start: buffer.pointer + e.offset, count: e.count))))
            }
        }
        tensors += extraTensors
        let p = position
        var metadata: [String: String] = [
            "format": "dptrain", "format_version": "\(formatVersion)", "library_version": BuildInfo.version,
            "step": "\(p.step)", "epoch": "\(p.epoch)", "step_in_epoch": "\(p.stepInEpoch)",
            "sample_cursor": "\(p.stepInEpoch * config.batchSize)",
            "epoch_loss_sum": "\(p.epochLossSum)", "epoch_correct": "\(p.epochCorrect)",
            "epoch_samples": "\(p.epochSamples)",
            "optimizer": config.optimizer.kind.rawValue, "optimizer_iterations": "\(p.optimizerIterations)",
            "best_val_loss": "\(p.bestValidationLoss)", "epochs_without_improvement": "\(p.epochsWithoutImprovement)",
            "skipped_steps": "\(p.skippedSteps)",
            "seed": "\(config.seed)", "global_batch": "\(config.batchSize)", "world_size": "\(worldSize)",
            "config": configText,
            "config_digest": String(Array(configText.utf8).withUnsafeBytes { Checksum.fnv1a($0) }, radix: 16),
            "checksum": String(checksum(of: tensors), radix: 16),
            // What the samples went through before the model (`ONNXExport` applies the same).
            "normalization": normalization.kind.rawValue,
        ]
        metadata.merge(extraMetadata) { a, _ in a }
        if let classes {
            metadata["classes"] = "\(classes.count)"
            if let names = classes.names {
                metadata["class_names"] = JSONValue.array(names.map(JSONValue.string)).encoded
            }
        }
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
            throw CheckpointError.invalid(
                path: path,
                problem:
                    "format version \(version) is newer than this dptrain reads (\(formatVersion)); upgrade dptrain")
        }
        // The tensors come back in file order, which is the order they were written in.
        let found = String(checksum(of: tensors), radix: 16)
        guard found == metadata["checksum"] else {
            throw CheckpointError.invalid(
                path: path,
                problem:
                    "checksum mismatch (stored \(metadata["checksum"] ?? "none"), computed \(found)): the file is corrupt"
            )
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
                throw CheckpointError.mismatch(
                    path: path, problem: "it has no tensor '\(name)', which the configured model needs")
            }
            guard t.shape == entry.shape else {
                throw CheckpointError.mismatch(
                    path: path,
                    problem: "tensor '\(name)' has shape \(t.shape), the configured model needs \(entry.shape)")
            }
            t.values.withUnsafeBufferPointer { (base + entry.offset).update(from: $0.baseAddress!, count: entry.count) }
        }
        let parameterNames = Set(model.store.entries.map(\.name))
        if let extra = tensors.map(\.name).first(where: {
            !isOptimizerTensor($0) && !$0.hasPrefix("data.") && !parameterNames.contains($0)
        }) {
            throw CheckpointError.mismatch(
                path: path, problem: "it has tensor '\(extra)', which the configured model does not")
        }
        for e in model.store.entries { try copy(e.name, e, into: model.store.values.pointer) }
        guard let optimizer else { return }
        if metadata["optimizer"].map({ $0 == "sgd" }) != (optimizer is SGD) {
            throw CheckpointError.mismatch(
                path: path,
                problem: "it was trained with optimizer \(metadata["optimizer"] ?? "?"), the config names another")
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
        let model = try Model(
            specs: config.layers, inputShape: config.inputShape, loss: config.loss, capacity: capacity)
        try restore(into: model, optimizer: nil, path: path)
        return (config, model)
    }

    /// The optimizer's state, and PowerSGD's (`PowerSGD.tensors`), which only training reads.
    func isOptimizerTensor(_ name: String) -> Bool {
        name.hasPrefix("adam.") || name.hasPrefix("sgd.") || name.hasPrefix("powersgd.")
    }

    /// The classes the training labels numbered (nil in checkpoints written before they were kept).
    public var classes: Classes? {
        guard let count = integer("classes") else { return nil }
        let names = metadata["class_names"].flatMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String]
        }
        return Classes(count: count, names: names)
    }

    /// The standardisation the model was trained with (`data.mean`, `data.std`), nil if none.
    public var standardization: Normalization? {
        guard let mean = tensors.first(where: { $0.name == "data.mean" }),
            let std = tensors.first(where: { $0.name == "data.std" })
        else { return nil }
        return .standardize(mean: mean.values, std: std.values)
    }
}
