import Foundation

/// The memory a training run needs on one rank, worked out from the config before anything is
/// allocated, with arithmetic that reports overflow instead of trapping.
///
/// It walks the layers as `Model` builds them (the same shape rules: `Conv2D.geometry`,
/// `MaxPooling2D.outputShape`) and adds up, in bytes: the parameters, their gradient in every
/// worker, a second parameter buffer with several workers, the optimizer's state; each worker's
/// activation, gradient and layer buffers at its largest batch (on rank 0, at least the
/// evaluation chunk); and the data set. `check` compares the total with the memory this machine
/// has free for each of its ranks and refuses, naming the config key behind the largest part.
public struct MemoryPlan: Sendable {
    /// One part of the total, and the key that makes it large.
    public struct Part: Sendable {
        public var what: String
        public var key: String
        public var bytes: Int
    }

    public private(set) var parts: [Part] = []
    public var total: Int { parts.reduce(0) { $0 &+ $1.bytes } }
    /// Parameters of the model.
    public private(set) var parameters = 0
    /// Floats of activations and gradients one sample takes in one worker's model.
    public private(set) var floatsPerSample = 0

    /// A count or size that does not fit a 64-bit integer: too large to run anywhere.
    struct Overflow: Error { let key: String }

    /// `capacity`: the most samples a worker's model holds at once; `dataBytes`: the data set's
    /// bytes held by this rank.
    public init(config: TrainConfig, threads: Int, capacity: Int, dataBytes: Int) throws {
        do {
            try plan(config: config, threads: threads, capacity: capacity, dataBytes: dataBytes)
        } catch let overflow as Overflow {
            throw ConfigError.invalid(
                key: overflow.key,
                reason: "makes the model's size overflow a 64-bit count; it cannot be trained anywhere")
        }
    }

    /// Floats per sample of the model's buffers (for sizing evaluation chunks), without building it.
    public static func floatsPerSample(_ config: TrainConfig) throws -> Int {
        try MemoryPlan(config: config, threads: 1, capacity: 1, dataBytes: 0).floatsPerSample
    }

    private mutating func plan(config: TrainConfig, threads: Int, capacity: Int, dataBytes: Int) throws {
        func mul(_ a: Int, _ b: Int, _ key: String) throws -> Int {
            let (r, overflow) = a.multipliedReportingOverflow(by: b)
            if overflow { throw Overflow(key: key) }
            return r
        }
        func add(_ a: Int, _ b: Int, _ key: String) throws -> Int {
            let (r, overflow) = a.addingReportingOverflow(b)
            if overflow { throw Overflow(key: key) }
            return r
        }
        var shape = config.inputShape
        var perSample = try shape.reduce(1) { try mul($0, $1, "model.input_shape") }
        var inputFloats = perSample
        var largestLayer = (parameters: 0, key: "model.layers", what: "")
        var workerBytes = 0  // per worker, independent of the batch
        for (i, spec) in config.layers.enumerated() {
            let key = "model.layers[\(i)]"
            var parameters = 0
            switch spec {
            case .flatten:
                shape = [inputFloats]
            case .dense(let units, _, _):
                guard shape.count == 1 else { return }  // Model reports the shape error
                parameters = try add(try mul(shape[0], units, "\(key).units"), units, "\(key).units")
                if units >= 16 {  // SparseRows' lists and DenseInputGradient's columns
                    workerBytes = try add(
                        workerBytes,
                        try mul(try mul(Dense.sparseChunkRows, shape[0], "\(key).units"), 16, "\(key).units"),
                        "\(key).units")
                }
                largestLayer =
                    parameters > largestLayer.parameters
                    ? (parameters, "\(key).units", "\(key) (dense, \(units) units on \(shape[0]) inputs)")
                    : largestLayer
                shape = [units]
            case .conv2d(let filters, let kernel, let stride, let padding, _, _):
                guard shape.count == 3 else { return }
                let field = try mul(try mul(kernel, kernel, "\(key).kernel_size"), shape[2], "\(key).kernel_size")
                parameters = try add(try mul(field, filters, "\(key).filters"), filters, "\(key).filters")
                guard
                    let g = Conv2D.geometry(
                        height: shape[0], width: shape[1], kernel: (kernel, kernel), stride: stride, padding: padding)
                else { return }
                let positions = try mul(g.height, g.width, "\(key).kernel_size")
                // im2col rows and their gradient, and the kept rows' numbers.
                perSample = try add(
                    perSample,
                    try add(
                        try mul(try mul(positions, field, "\(key).kernel_size"), 2, "\(key).kernel_size"), positions,
                        "\(key).kernel_size"), "\(key).kernel_size")
                largestLayer =
                    parameters > largestLayer.parameters
                    ? (
                        parameters, filters >= field ? "\(key).filters" : "\(key).kernel_size",
                        "\(key) (conv2d, \(filters) filters of \(kernel)x\(kernel)x\(shape[2]))"
                    ) : largestLayer
                shape = [g.height, g.width, filters]
            case .maxPooling2d(let pool, let stride):
                guard shape.count == 3, shape[0] >= pool, shape[1] >= pool else { return }
                shape = MaxPooling2D.outputShape(input: shape, pool: pool, stride: stride)
            case .dropout, .activation:
                break
            }
            self.parameters = try add(self.parameters, parameters, key)
            inputFloats = try shape.reduce(1) { try mul($0, $1, key) }
            // The layer's output and its gradient (a flatten's are its input's; a dropout's
            // mask is the size of its output, and the gradient of a first layer is not kept).
            if case .flatten = spec { continue }
            perSample = try add(perSample, try mul(inputFloats, 2, key), key)
        }
        floatsPerSample = perSample
        let blameParameters = largestLayer.parameters > 0 ? largestLayer.key : "model.layers"
        let floats = try mul(parameters, 4, blameParameters)
        // Values; each worker's gradients; the spare buffer several workers write into; the
        // optimizer's moments.
        let optimizerCopies =
            config.optimizer.kind == .sgd ? (config.optimizer.momentum > 0 ? 1 : 0) : (config.optimizer.amsgrad ? 3 : 2)
        let copies = 1 + threads + (threads > 1 ? 1 : 0) + optimizerCopies
        parts.append(
            Part(
                what: "\(parameters) parameters, with their gradients and optimizer state"
                    + (largestLayer.what.isEmpty ? "" : " (most in \(largestLayer.what))"),
                key: blameParameters, bytes: try mul(floats, copies, blameParameters)))
        let batchKey = "training.batch_size"
        let activations = try mul(try mul(try mul(perSample, 4, batchKey), capacity, batchKey), threads, batchKey)
        parts.append(
            Part(
                what: "activations and gradients of \(threads) worker(s) at \(capacity) samples each", key: batchKey,
                bytes: try add(activations, try mul(workerBytes, threads, batchKey), batchKey)))
        parts.append(Part(what: "the data set", key: "data.train_limit", bytes: dataBytes))
    }

    /// Throws, naming the key behind the largest part, when the plan needs more than `available`
    /// bytes (this machine's free memory shared by its `localRanks` ranks).
    public func check(available: Int?, localRanks: Int) throws {
        guard let available, total > available / max(localRanks, 1) else { return }
        let largest = parts.max { $0.bytes < $1.bytes }!
        let share = available / max(localRanks, 1)
        throw ConfigError.invalid(
            key: largest.key,
            reason: "the run needs about \(Self.format(total)) of memory per rank, more than the "
                + "\(Self.format(share)) this machine has free for each of its \(localRanks) rank(s); the largest part is "
                + "\(largest.what): \(Self.format(largest.bytes)). Make it smaller, or use more machines or a smaller batch per rank"
        )
    }

    /// Memory this machine can still give: MemAvailable from /proc/meminfo, or the room left
    /// under this process's cgroup limit when that is smaller; nil where neither is readable.
    public static func availableBytes() -> Int? {
        var best: Int?
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
            let kb = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        {
            best = kb * 1024
        }
        if let max = (try? String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8)).flatMap({
            Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }),
            let used = (try? String(contentsOfFile: "/sys/fs/cgroup/memory.current", encoding: .utf8)).flatMap({
                Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
            })
        {
            best = min(best ?? .max, max - used)
        }
        return best
    }

    /// "3.1 TB", "21.9 GB", "512 MB", "42 KB".
    public static func format(_ bytes: Int) -> String {
        let units = [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "KB")]
        for (scale, name) in units where Double(bytes) >= scale {
            return String(format: Double(bytes) >= 100 * scale ? "%.0f %@" : "%.1f %@", Double(bytes) / scale, name)
        }
        return "\(bytes) bytes"
    }
}
