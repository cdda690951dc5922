/// A sequential model: layers, their parameters in one `ParameterStore`, the loss head, and
/// every activation and gradient buffer, sized once for `capacity` samples.
///
/// Use: write a batch into `input`, call `forward`, let `head` fill `outputGradient`, call
/// `backward`: the parameter gradients of the batch are then in `store.gradients`.
public final class Model {
    public let inputShape: [Int]
    public let layers: [any Layer]
    public let head: LossHead
    public let store: ParameterStore
    public let capacity: Int

    /// `activations[0]` is the input, `activations[i+1]` the output of `layers[i]`.
    private var activations: [UnsafeMutablePointer<Float>] = []
    /// `deltas[i]` is the loss gradient with respect to `activations[i]` (nil where nothing needs it).
    private var deltas: [UnsafeMutablePointer<Float>?] = []
    private var buffers: [FloatBuffer] = []

    public var input: UnsafeMutablePointer<Float> { activations[0] }
    public var output: UnsafePointer<Float> { UnsafePointer(activations[layers.count]) }
    public var outputGradient: UnsafeMutablePointer<Float> { deltas[layers.count]! }
    public var outputSize: Int { head.outputs }
    public var parameterCount: Int { store.count }

    /// Builds the layers of `specs` for samples of `inputShape`; fuses the last activation into
    /// the loss where the loss allows it. `extraGradientSlots` floats follow the gradients in
    /// `store.gradients` (see `ParameterStore`).
    public init(specs: [LayerSpec], inputShape: [Int], loss: LossKind, capacity: Int, extraGradientSlots: Int = 0) throws {
        self.inputShape = inputShape
        self.capacity = capacity
        var specs = specs
        var fused: ActivationKind?
        // Keras's Dense(activation=) is a Dense then an activation; fuse the last one into the loss.
        if case .dense(let units, let act)? = specs.last, act == loss.fusableActivation {
            specs[specs.count - 1] = .dense(units: units, activation: .linear)
            fused = act
        } else if case .activation(let act)? = specs.last, act == loss.fusableActivation {
            specs.removeLast()
            fused = act
        }
        var built: [any Layer] = []
        var shape = inputShape
        var counters: [String: Int] = [:]
        func nextName(_ base: String) -> String {
            counters[base, default: 0] += 1
            return "\(base)_\(counters[base]!)"
        }
        for (index, spec) in specs.enumerated() {
            switch spec {
            case .flatten:
                built.append(Flatten(name: nextName("flatten"), shape: shape))
            case .dense(let units, let activation):
                guard shape.count == 1 else {
                    throw ConfigError.invalid(key: "model.layers[\(index)]",
                                              reason: "dense needs a flat input, got shape \(shape); add a flatten layer before it")
                }
                built.append(Dense(name: nextName("dense"), inputs: shape[0], units: units))
                if activation != .linear {
                    built.append(Activation(name: nextName(activation.rawValue), kind: activation, shape: [units]))
                }
            case .dropout(let rate):
                built.append(Dropout(name: nextName("dropout"), rate: rate, shape: shape))
            case .activation(let kind):
                built.append(Activation(name: nextName(kind.rawValue), kind: kind, shape: shape))
            }
            shape = built.last!.outputShape
        }
        guard shape.count == 1 else {
            throw ConfigError.invalid(key: "model.layers", reason: "the model must end in a flat output, got shape \(shape)")
        }
        if loss == .binaryCrossentropy && shape[0] != 1 {
            throw ConfigError.invalid(key: "loss", reason: "binary_crossentropy needs a final layer with 1 unit, the model ends with \(shape[0])")
        }
        if loss != .binaryCrossentropy && shape[0] < 2 && loss != .meanSquaredError {
            throw ConfigError.invalid(key: "loss", reason: "\(loss.rawValue) needs a final layer with one unit per class, the model ends with \(shape[0])")
        }
        layers = built
        head = LossHead(kind: loss, fused: fused, outputs: shape[0])

        var entries: [ParameterStore.Entry] = []
        var offset = 0
        for layer in built {
            for (suffix, shape) in layer.parameterShapes {
                entries.append(.init(name: "\(layer.name).\(suffix)", shape: shape, offset: offset))
                offset += shape.reduce(1, *)
            }
        }
        store = ParameterStore(entries: entries, extraSlots: extraGradientSlots)
        for layer in built {
            layer.bind(store)
            layer.prepare(capacity: capacity)
        }
        allocateBuffers()
    }

    private func allocateBuffers() {
        func fresh(_ perSample: Int) -> UnsafeMutablePointer<Float> {
            let buffer = FloatBuffer(count: capacity * perSample)
            buffers.append(buffer)
            return buffer.pointer
        }
        activations = [fresh(inputShape.reduce(1, *))]
        for layer in layers {
            activations.append(layer.aliasesInput ? activations.last! : fresh(layer.outputSize))
        }
        // A layer needs its input gradient only if some layer before it has parameters.
        deltas = [nil]
        var parametersBefore = false
        for (i, layer) in layers.enumerated() {
            parametersBefore = parametersBefore || !layer.parameterShapes.isEmpty
            let needed = parametersBefore || i == layers.count - 1
            if layer.aliasesInput {
                deltas.append(deltas.last!)
            } else {
                deltas.append(needed ? fresh(layer.outputSize) : nil)
            }
        }
        if deltas[layers.count] == nil { deltas[layers.count] = fresh(outputSize) }
    }

    /// Keras's initial values, drawn from `seed` (the same on every rank).
    public func initialize(seed: UInt64) {
        var rng = SplitMix64(seed: CounterRNG.key(seed, 0x1417, 0))
        for layer in layers { layer.initialize(store, rng: &rng) }
    }

    public func forward(batch: Int, context: StepContext) {
        precondition(batch <= capacity)
        for (i, layer) in layers.enumerated() {
            layer.forward(activations[i], activations[i + 1], batch: batch, context: context)
        }
    }

    /// Back-propagates `outputGradient` (which the head wrote) through every layer.
    public func backward(batch: Int, context: StepContext) {
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            guard let dy = deltas[i + 1] else { continue }
            layers[i].backward(input: activations[i], output: activations[i + 1], outputGradient: dy,
                               inputGradient: layers[i].aliasesInput ? nil : deltas[i], batch: batch, context: context)
        }
    }

    /// Parameters of `layers[i]` with `name` — for tests and tools.
    public func parameter(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        store.entry(named: name).map { UnsafeMutableBufferPointer(start: store.values.pointer + $0.offset, count: $0.count) }
    }
}
