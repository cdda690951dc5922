/// What a layer sees of the step it runs in.
public struct StepContext {
    /// Training (dropout active) or inference.
    public var training: Bool
    /// The global step number (keys the dropout masks).
    public var step: Int
    /// The run's seed.
    public var seed: UInt64
    /// For each row of the batch, the index of its sample in the data set (keys dropout masks,
    /// so a sample gets the same mask whichever rank computes it).
    public var sampleIndices: UnsafePointer<Int32>?
    /// With the gradient sent during backward (`Model.backward(done:)`): told that every
    /// parameter from an offset on (in the flat parameter store) has its final gradient.
    public var gradientsFinal: ((Int) -> Void)?
    /// The first parameter of the layer being back-propagated (set by the model).
    public var layerParameterStart = 0
    /// With the last step's update still arriving (`Model.forward`): called before a layer's
    /// forward pass with its parameters (indices into the flat store), returns once they are final.
    public var parametersNeeded: ((Range<Int>) -> Void)?

    /// A layer calls this once its own parameters' gradients are computed, before its input's
    /// gradient, so that they can travel while that is computed.
    public func parameterGradientsFinal() { gradientsFinal?(layerParameterStart) }

    public init(training: Bool, step: Int = 0, seed: UInt64 = 0, sampleIndices: UnsafePointer<Int32>? = nil) {
        self.training = training
        self.step = step
        self.seed = seed
        self.sampleIndices = sampleIndices
    }
}

/// A layer of a sequential model, working on batches of row-major samples.
///
/// Contract: `forward` writes `batch * outputSize` floats to `output` from `batch * inputSize`
/// floats of `input`. `backward` *overwrites* (not accumulates) this layer's parameter
/// gradients with those of the batch, and writes the input gradient when `inputGradient` is not
/// nil (it is nil for the first layers that have nothing to pass it to). Neither allocates.
public protocol Layer: AnyObject {
    /// Unique within the model, e.g. `dense_1`; parameter names are `name.kernel`, `name.bias`.
    var name: String { get }
    var inputShape: [Int] { get }
    var outputShape: [Int] { get }
    /// The parameter tensors this layer needs, by suffix (`kernel`, `bias`).
    var parameterShapes: [(suffix: String, shape: [Int])] { get }
    /// True when the output is the input, unchanged (Flatten): no buffer, no copy.
    var aliasesInput: Bool { get }
    /// True when `backward` ignores the output gradient wherever the output is zero (a ReLU's,
    /// whose derivative is 0 there): the layer after it need not compute those entries.
    var ignoresGradientOfZeroOutputs: Bool { get }

    /// Points the layer at its parameters and gradients in the flat store (called once).
    func bind(_ store: ParameterStore)
    /// Fills this layer's parameters with their initial values (Keras's initialisers).
    func initialize(_ store: ParameterStore, rng: inout SplitMix64)
    /// Allocates per-batch state for up to `capacity` samples (called once).
    func prepare(capacity: Int)

    func forward(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, batch: Int, context: StepContext)
    func backward(
        input: UnsafePointer<Float>, output: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
        inputGradient: UnsafeMutablePointer<Float>?, batch: Int, context: StepContext)

    /// Floating-point operations of this layer's matrix multiplies for one sample: forward,
    /// and backward with and without the input gradient (for benchmarks' GFLOP/s).
    var gemmFlopsPerSample: (forward: Double, weightGradient: Double, inputGradient: Double) { get }
}

extension Layer {
    public var inputSize: Int { inputShape.reduce(1, *) }
    public var outputSize: Int { outputShape.reduce(1, *) }
    public var parameterShapes: [(suffix: String, shape: [Int])] { [] }
    public var aliasesInput: Bool { false }
    public var ignoresGradientOfZeroOutputs: Bool { false }
    public var gemmFlopsPerSample: (forward: Double, weightGradient: Double, inputGradient: Double) { (0, 0, 0) }
    public func bind(_ store: ParameterStore) {}
    public func initialize(_ store: ParameterStore, rng: inout SplitMix64) {}
    public func prepare(capacity: Int) {}

    /// The view of parameter `suffix` of this layer in `store`.
    func view(_ suffix: String, in store: ParameterStore) -> ParameterView {
        guard let entry = store.entry(named: "\(name).\(suffix)") else {
            fatalError("\(name).\(suffix) not in the parameter store")
        }
        return ParameterView(store: store, offset: entry.offset)
    }
}
