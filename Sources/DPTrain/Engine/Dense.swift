/// Fully connected layer `y = f(x W + b)` with a Keras-layout kernel `[inputs, units]` and an
/// element-wise activation `f` applied in the same pass as the bias. Glorot-uniform kernel and
/// zero bias, as Keras initialises them.
///
/// When at most `tuning.forwardDensityLimit` of a batch's input values are nonzero (a first
/// layer fed MNIST's images: 19%), the forward pass, and up to `kernelGradientDensityLimit` the
/// kernel gradient, multiply only the nonzero inputs (`SparseRows`) instead of calling sgemm.
/// Which way a batch goes depends on its values alone, so every layout computes it the same
/// way. With `tuning.ownInputGradient`, the input gradient of a layer of 16 units or more goes
/// through `DenseInputGradient`, which also leaves out input columns zero in whole groups of
/// rows when the layer before throws away the gradient of its zero outputs
/// (`zeroInputsNeedNoGradient`).
public final class Dense: Layer {
    public let name: String
    public let inputShape: [Int]
    public let outputShape: [Int]
    let inputs: Int, units: Int
    public let activation: ActivationKind
    private var kernelTensor: ParameterView!, biasTensor: ParameterView!
    private var w: UnsafeMutablePointer<Float> { kernelTensor.values }
    private var b: UnsafeMutablePointer<Float> { biasTensor.values }
    private var dw: UnsafeMutablePointer<Float> { kernelTensor.gradients }
    private var db: UnsafeMutablePointer<Float> { biasTensor.gradients }

    /// Which products take the layer's own paths (`DenseTuning.forThisBuild`; the model's dense
    /// mode sets `.sgemmOnly`, benchmarks force one path).
    public var tuning = DenseTuning.forThisBuild
    /// Rows the sparse lists hold; a larger batch is taken in chunks of this many.
    static let sparseChunkRows = 64
    private var sparse: SparseRows?
    /// Set by the model when the layer before discards the gradient wherever its output (this
    /// layer's input) is zero, as a ReLU does: the input gradient may then skip those entries.
    public var zeroInputsNeedNoGradient = false
    /// The input gradient's product for layers of at least 16 units; for fewer (the 10-unit
    /// output layer) sgemm's small-matrix kernel is faster (MLP step at batch 128: 0.060 ms of
    /// backward pass against 0.055).
    private let inputGradientProduct: DenseInputGradient?
    /// The input of the last forward pass and, when it went the sparse way, the fraction of its
    /// values that are nonzero (nil after sgemm): backward, which gets the same input, takes the
    /// sparse way when that fraction allows (and reuses the lists when they were one chunk).
    private var lastForward: (input: UnsafePointer<Float>, batch: Int, sparseDensity: Double?)?
    /// Whether the last forward pass multiplied the nonzero inputs only.
    var lastForwardWasSparse: Bool { lastForward?.sparseDensity != nil }

    public init(name: String, inputs: Int, units: Int, activation: ActivationKind = .linear) {
        precondition(activation != .softmax, "softmax is a layer of its own (or fused into the loss)")
        self.activation = activation
        self.name = name
        self.inputs = inputs
        self.units = units
        inputShape = [inputs]
        outputShape = [units]
        inputGradientProduct = units >= 16 ? DenseInputGradient(inputs: inputs, units: units) : nil
    }

    public var ignoresGradientOfZeroOutputs: Bool { activation == .relu }
    public var parameterShapes: [(suffix: String, shape: [Int])] { [("kernel", [inputs, units]), ("bias", [units])] }

    public var gemmFlopsPerSample: (forward: Double, weightGradient: Double, inputGradient: Double) {
        let f = 2 * Double(inputs * units)
        return (f, f, f)
    }

    public func bind(_ store: ParameterStore) {
        kernelTensor = view("kernel", in: store)
        biasTensor = view("bias", in: store)
    }

    public func initialize(_ store: ParameterStore, rng: inout SplitMix64) {
        let limit = (6 / Float(inputs + units)).squareRoot()
        for i in 0..<inputs * units { w[i] = rng.uniform(-limit, limit) }
        b.update(repeating: 0, count: units)
    }

    public func prepare(capacity: Int) {
        // Too few outputs to amortise listing the inputs (the 10-unit output layer).
        if units >= 16 { sparse = SparseRows(rowCapacity: Self.sparseChunkRows, columns: inputs) }
    }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, context: StepContext) {
        guard batch > 0 else { return }
        if let sparse, tuning.forwardDensityLimit > 0,
            SparseRows.isSparse(x, count: batch * inputs, limit: tuning.forwardDensityLimit)
        {
            var nonzero = 0
            for first in stride(from: 0, to: batch, by: sparse.rowCapacity) {
                let rows = min(sparse.rowCapacity, batch - first)
                sparse.load(x + first * inputs, rows: rows)
                sparse.multiply(w, width: units, into: y + first * units)
                nonzero += sparse.entryCount
            }
            lastForward = (x, batch, Double(nonzero) / Double(batch * inputs))
        } else {
            sgemm(m: batch, n: units, k: inputs, a: x, lda: inputs, b: w, ldb: units, beta: 0, c: y, ldc: units)
            lastForward = (x, batch, nil)
        }
        Activation.addBiasAndApply(activation, y, bias: b, rows: batch, columns: units)
    }

    public func backward(
        input x: UnsafePointer<Float>, output: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
        inputGradient dx: UnsafeMutablePointer<Float>?, batch: Int, context: StepContext
    ) {
        guard batch > 0 else {
            dw.update(repeating: 0, count: inputs * units)
            db.update(repeating: 0, count: units)
            return
        }
        // dz = dy * f'(z), in place: dy is this layer's own gradient buffer, read by nobody else;
        // db = column sums of dz in the same pass. Then dW = x^T dz ; dx = dz W^T.
        let dy = UnsafeMutablePointer(mutating: dy)
        Activation.backpropagateSummingBias(
            activation, output: output, gradient: dy, rows: batch, columns: units, biasGradient: db)
        let forwardOnX = lastForward.flatMap { $0.input == x && $0.batch == batch ? $0 : nil }
        let limit = min(tuning.forwardDensityLimit, tuning.kernelGradientDensityLimit)
        let goesSparse =
            forwardOnX.map { $0.sparseDensity.map { $0 <= limit } ?? false }
            ?? (limit > 0 && SparseRows.isSparse(x, count: batch * inputs, limit: limit))
        if let sparse, goesSparse {
            let listed = forwardOnX != nil && batch <= sparse.rowCapacity
            for first in stride(from: 0, to: batch, by: sparse.rowCapacity) {
                if !listed { sparse.load(x + first * inputs, rows: min(sparse.rowCapacity, batch - first)) }
                sparse.multiplyTransposed(dy + first * units, width: units, into: dw, accumulate: first > 0)
            }
        } else {
            sgemm(
                transA: true, m: inputs, n: units, k: batch, a: x, lda: inputs, b: dy, ldb: units, beta: 0, c: dw,
                ldc: units)
        }
        context.parameterGradientsFinal()
        if let dx, let inputGradientProduct, tuning.ownInputGradient {
            inputGradientProduct.compute(
                outputGradient: dy, kernel: w, rows: batch, into: dx,
                skippingZeroColumnsOf: zeroInputsNeedNoGradient ? x : nil)
        } else if let dx {
            sgemm(
                transB: true, m: batch, n: inputs, k: units, a: dy, lda: units, b: w, ldb: units, beta: 0, c: dx,
                ldc: inputs)
        }
    }
}
