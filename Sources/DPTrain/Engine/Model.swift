/// A sequential model: layers, their parameters in one `ParameterStore`, the loss head, and
/// every activation and gradient buffer, sized once for `capacity` samples.
///
/// Use: write a batch into `input`, call `forward`, let `head` fill `outputGradient`, call
/// `backward`: the parameter gradients of the batch are then in `store.gradients`. A
/// convolution followed by max pooling runs as one step (`ConvolutionPooling`), with the same
/// results as the two layers in turn.
public final class Model {
    public let inputShape: [Int]
    public let layers: [any Layer]
    /// Where each layer's parameters start in the flat store (one more: the end).
    let parameterStarts: [Int]
    public let head: LossHead
    public let store: ParameterStore
    public let capacity: Int
    /// Kernels with an L2 penalty and its factor.
    public let regularizers: [(entry: ParameterStore.Entry, lambda: Float)]

    /// `activations[0]` is the input, `activations[i+1]` the output of `layers[i]`.
    private var activations: [UnsafeMutablePointer<Float>] = []
    /// `deltas[i]` is the loss gradient with respect to `activations[i]` (nil where nothing needs it).
    private var deltas: [UnsafeMutablePointer<Float>?] = []
    private var buffers: [FloatBuffer] = []
    /// Each convolution (by index) whose max pooling runs with it, a few samples at a time.
    private(set) var convolutionPooling: [Int: ConvolutionPooling] = [:]
    /// Whether a convolution and the max pooling after it run together (the default), or each
    /// on the whole batch in turn (same results; for tests).
    var fusesConvolutionPooling = true

    public var input: UnsafeMutablePointer<Float> { activations[0] }
    public var output: UnsafePointer<Float> { UnsafePointer(activations[layers.count]) }
    public var outputGradient: UnsafeMutablePointer<Float> { deltas[layers.count]! }
    public var outputSize: Int { head.outputs }
    public var parameterCount: Int { store.count }

    /// Builds the layers of `specs` for samples of `inputShape`; fuses the last activation into
    /// the loss where the loss allows it. `extraGradientSlots` floats follow the gradients in
    /// `store.gradients` (see `ParameterStore`). A model built `sharingParametersOf` another
    /// (of the same specs) uses that model's parameter values, with gradients and activations
    /// of its own: a worker thread's replica.
    public init(
        specs: [LayerSpec], inputShape: [Int], loss: LossKind, capacity: Int, extraGradientSlots: Int = 0,
        sharingParametersOf primary: Model? = nil
    ) throws {
        self.inputShape = inputShape
        self.capacity = capacity
        var specs = specs
        var fused: ActivationKind?
        // The last layer's activation is fused into the loss when the loss allows it.
        if case .dense(let units, let act, let l2)? = specs.last, act == loss.fusableActivation {
            specs[specs.count - 1] = .dense(units: units, activation: .linear, l2: l2)
            fused = act
        } else if case .activation(let act)? = specs.last, act == loss.fusableActivation {
            specs.removeLast()
            fused = act
        }
        // A convolution's ReLU moves into the max pooling right after it (exact: see MaxPooling2D).
        var poolActivation: [Int: ActivationKind] = [:]
        for i in specs.indices.dropLast() {
            if case .conv2d(let f, let k, let s, let p, .relu, let l2) = specs[i], case .maxPooling2d = specs[i + 1] {
                specs[i] = .conv2d(filters: f, kernel: k, stride: s, padding: p, activation: .linear, l2: l2)
                poolActivation[i + 1] = .relu
            }
        }
        var built: [any Layer] = []
        var shape = inputShape
        var counters: [String: Int] = [:]
        var regularized: [(name: String, lambda: Float)] = []
        func nextName(_ base: String) -> String {
            counters[base, default: 0] += 1
            return "\(base)_\(counters[base]!)"
        }
        for (index, spec) in specs.enumerated() {
            switch spec {
            case .flatten:
                built.append(Flatten(name: nextName("flatten"), shape: shape))
            case .dense(let units, let activation, let l2):
                guard shape.count == 1 else {
                    throw ConfigError.invalid(
                        key: "model.layers[\(index)]",
                        reason: "dense needs a flat input, got shape \(shape); add a flatten layer before it")
                }
                let dense = Dense(
                    name: nextName("dense"), inputs: shape[0], units: units,
                    activation: activation == .softmax ? .linear : activation)
                built.append(dense)
                if l2 > 0 { regularized.append(("\(dense.name).kernel", l2)) }
                if activation == .softmax {
                    built.append(Activation(name: nextName("softmax"), kind: .softmax, shape: [units]))
                }
            case .conv2d(let filters, let kernel, let stride, let padding, let activation, let l2):
                guard shape.count == 3 else {
                    throw ConfigError.invalid(
                        key: "model.layers[\(index)]",
                        reason: "conv2d needs an image input (height, width, channels), got shape \(shape)")
                }
                let conv = try Conv2D(
                    name: nextName("conv2d"), inputShape: shape, filters: filters, kernel: (kernel, kernel),
                    stride: stride,
                    padding: padding, activation: activation == .softmax ? .linear : activation)
                built.append(conv)
                if l2 > 0 { regularized.append(("\(conv.name).kernel", l2)) }
                if activation == .softmax {
                    built.append(Activation(name: nextName("softmax"), kind: .softmax, shape: conv.outputShape))
                }
            case .maxPooling2d(let pool, let stride):
                guard shape.count == 3 else {
                    throw ConfigError.invalid(
                        key: "model.layers[\(index)]",
                        reason: "max_pooling2d needs an image input (height, width, channels), got shape \(shape)")
                }
                built.append(
                    try MaxPooling2D(
                        name: nextName("max_pooling2d"), inputShape: shape, pool: pool, stride: stride,
                        activation: poolActivation[index] ?? .linear))
            case .dropout(let rate):
                built.append(Dropout(name: nextName("dropout"), rate: rate, shape: shape))
            case .activation(let kind):
                built.append(Activation(name: nextName(kind.rawValue), kind: kind, shape: shape))
            }
            shape = built.last!.outputShape
        }
        guard shape.count == 1 else {
            throw ConfigError.invalid(
                key: "model.layers", reason: "the model must end in a flat output, got shape \(shape)")
        }
        if loss == .binaryCrossentropy && shape[0] != 1 {
            throw ConfigError.invalid(
                key: "loss",
                reason: "binary_crossentropy needs a final layer with 1 unit, the model ends with \(shape[0])")
        }
        if loss != .binaryCrossentropy && shape[0] < 2 && loss != .meanSquaredError {
            throw ConfigError.invalid(
                key: "loss",
                reason: "\(loss.rawValue) needs a final layer with one unit per class, the model ends with \(shape[0])")
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
        parameterStarts = built.reduce(into: [0]) { starts, layer in
            starts.append(starts.last! + layer.parameterShapes.reduce(0) { $0 + $1.shape.reduce(1, *) })
        }
        let store = ParameterStore(entries: entries, extraSlots: extraGradientSlots, sharingValuesOf: primary?.store)
        self.store = store
        regularizers = regularized.map { (store.entry(named: $0.name)!, $0.lambda) }
        for layer in built {
            layer.bind(store)
            layer.prepare(capacity: capacity)
        }
        for i in built.indices.dropLast() {
            if let conv = built[i] as? Conv2D, conv.activation == .linear, let pool = built[i + 1] as? MaxPooling2D {
                convolutionPooling[i] = ConvolutionPooling(conv: conv, pool: pool)
            }
        }
        allocateBuffers()
        applySkipsZeroInputs()
    }

    /// Makes `buffer` (of `parameterCount` floats) this model's parameter values from now on:
    /// a trainer that writes each update into a second buffer switches every replica to it.
    public func useValues(_ buffer: FloatBuffer) {
        precondition(buffer.count == store.count)
        store.values = buffer
    }

    /// Makes `buffer` (at least the gradients and extra slots; its contents are overwritten by
    /// the next backward pass) this model's gradient buffer: a trainer places it where the
    /// ranks of a machine sum it (see `GradientSum`).
    public func useGradients(_ buffer: FloatBuffer) {
        precondition(buffer.count >= store.gradients.count)
        store.gradients = buffer
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

    /// Whether Dense layers may multiply only the nonzero values of a mostly-zero input and
    /// convolutions leave out all-zero receptive fields (the default; see `Dense`, `Conv2D`).
    /// A Dense layer's input gradient also leaves out input columns that are zero in whole groups
    /// of rows when the layer before it ignores the gradient of its zero outputs (a ReLU). Off,
    /// every product is a dense sgemm: the work the floor program does.
    public var skipsZeroInputs = true {
        didSet { applySkipsZeroInputs() }
    }

    private func applySkipsZeroInputs() {
        for (i, layer) in layers.enumerated() {
            if let dense = layer as? Dense {
                dense.tuning = skipsZeroInputs ? .forThisBuild : .sgemmOnly
                // The layer that made this input: the nearest before it that is not a view (Flatten).
                let producer = layers[..<i].last { !$0.aliasesInput }
                dense.zeroInputsNeedNoGradient = skipsZeroInputs && producer?.ignoresGradientOfZeroOutputs == true
            }
            if let conv = layer as? Conv2D { conv.skipsZeroFields = skipsZeroInputs }
        }
    }

    /// A table like Keras's `model.summary()`: each layer, its output shape and parameter count.
    public var summary: String {
        func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(n - s.count, 1)) }
        var lines = [pad("Layer (type)", 30) + pad("Output Shape", 20) + "Param #"]
        for layer in layers {
            let params = layer.parameterShapes.reduce(0) { $0 + $1.shape.reduce(1, *) }
            let type = String(describing: Swift.type(of: layer))
            lines.append(
                pad("\(layer.name) (\(type))", 30)
                    + pad("(None, " + layer.outputShape.map(String.init).joined(separator: ", ") + ")", 20)
                    + "\(params)")
        }
        if let fused = head.fused {
            lines.append("output activation \(fused.rawValue), fused into \(head.kind.rawValue)")
        }
        lines.append("Total params: \(parameterCount)")
        return lines.joined(separator: "\n")
    }

    /// Floats of activation and gradient buffers per sample of capacity (for sizing batches by memory).
    public var bufferFloatsPerSample: Int { buffers.reduce(0) { $0 + $1.count } / max(capacity, 1) }

    /// GEMM floating-point operations of one training step (forward and backward) per sample.
    public var trainingFlopsPerSample: Double {
        layers.indices.reduce(0) { sum, i in
            let f = layers[i].gemmFlopsPerSample
            let passesInputGradient = !layers[i].aliasesInput && deltas[i] != nil
            return sum + f.forward + f.weightGradient + (passesInputGradient ? f.inputGradient : 0)
        }
    }

    /// Keras's initial values, drawn from `seed` (the same on every rank).
    public func initialize(seed: UInt64) {
        var rng = SplitMix64(seed: CounterRNG.key(seed, 0x1417, 0))
        for layer in layers { layer.initialize(store, rng: &rng) }
    }

    public func forward(batch: Int, context: StepContext) {
        precondition(batch <= capacity)
        var i = 0
        while i < layers.count {
            let fused = fusesConvolutionPooling ? convolutionPooling[i] : nil
            if let needed = context.parametersNeeded {
                needed(parameterStarts[i]..<parameterStarts[i + (fused == nil ? 1 : 2)])
            }
            if let pair = fused {
                pair.forward(activations[i], activations[i + 2], batch: batch)
                i += 2
            } else {
                layers[i].forward(activations[i], activations[i + 1], batch: batch, context: context)
                i += 1
            }
        }
    }

    /// Back-propagates `outputGradient` (which the head wrote) through every layer, from the
    /// last; after each layer (and where a layer says so, before its input's gradient),
    /// `done(offset)` says that every parameter from `offset` on (in the flat store) has its gradient.
    public func backward(batch: Int, context: StepContext, done: ((Int) -> Void)? = nil) {
        var context = context
        context.gradientsFinal = done  // layers may say so before computing their input's gradient
        var i = layers.count - 1
        while i >= 0 {
            if fusesConvolutionPooling, i > 0, let pair = convolutionPooling[i - 1], let dy = deltas[i + 1],
                let convolutionGradient = deltas[i]
            {
                pair.backward(
                    outputGradient: dy, inputGradient: deltas[i - 1], keptGradients: convolutionGradient, batch: batch)
                done?(parameterStarts[i - 1])
                i -= 2
            } else {
                if let dy = deltas[i + 1] {
                    context.layerParameterStart = parameterStarts[i]
                    layers[i].backward(
                        input: activations[i], output: activations[i + 1], outputGradient: dy,
                        inputGradient: layers[i].aliasesInput ? nil : deltas[i], batch: batch, context: context)
                }
                done?(parameterStarts[i])
                i -= 1
            }
        }
    }

    /// Adds the L2 penalties' gradients `2 lambda W` to `gradients` and returns the penalty
    /// `sum lambda ||W||^2` (added to the reported loss, as Keras does).
    public func applyRegularization(to gradients: UnsafeMutablePointer<Float>) -> Double {
        applyRegularization(to: gradients, range: 0..<store.count)
        return regularizationPenalty()
    }

    /// The L2 penalty of the current values: the sum over regularised tensors of lambda x |w|^2.
    public func regularizationPenalty() -> Double {
        var penalty = 0.0
        for (entry, lambda) in regularizers {
            let w = store.values.pointer + entry.offset
            var sum: Float = 0
            for i in 0..<entry.count { sum += w[i] * w[i] }
            penalty += Double(lambda) * Double(sum)
        }
        return penalty
    }

    /// Adds the L2 penalty's gradient (2 lambda w) to the elements of `gradients` in `range` of
    /// the flat parameter index: each element on its own, so slices may be done apart. `values`:
    /// the parameters w (nil: the model's current ones).
    public func applyRegularization(
        to gradients: UnsafeMutablePointer<Float>, range: Range<Int>, values: UnsafePointer<Float>? = nil
    ) {
        for (entry, lambda) in regularizers {
            let part = range.clamped(to: entry.offset..<entry.offset + entry.count)
            let w = values ?? UnsafePointer(store.values.pointer), g = gradients
            for i in part { g[i] += 2 * lambda * w[i] }
        }
    }

    /// Parameters of `layers[i]` with `name` — for tests and tools.
    public func parameter(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        store.entry(named: name).map {
            UnsafeMutableBufferPointer(start: store.values.pointer + $0.offset, count: $0.count)
        }
    }
}
