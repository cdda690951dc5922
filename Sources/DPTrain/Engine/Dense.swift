/// Fully connected layer `y = f(x W + b)` with a Keras-layout kernel `[inputs, units]` and an
/// element-wise activation `f` applied in the same pass as the bias. Glorot-uniform kernel and
/// zero bias, as Keras initialises them.
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

    public init(name: String, inputs: Int, units: Int, activation: ActivationKind = .linear) {
        precondition(activation != .softmax, "softmax is a layer of its own (or fused into the loss)")
        self.activation = activation
        self.name = name
        self.inputs = inputs
        self.units = units
        inputShape = [inputs]
        outputShape = [units]
    }

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

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, context: StepContext) {
        guard batch > 0 else { return }
        sgemm(m: batch, n: units, k: inputs, a: x, lda: inputs, b: w, ldb: units, beta: 0, c: y, ldc: units)
        Activation.addBiasAndApply(activation, y, bias: b, rows: batch, columns: units)
    }

    public func backward(input x: UnsafePointer<Float>, output: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
                         inputGradient dx: UnsafeMutablePointer<Float>?, batch: Int, context: StepContext) {
        guard batch > 0 else {
            dw.update(repeating: 0, count: inputs * units)
            db.update(repeating: 0, count: units)
            return
        }
        // dz = dy * f'(z), in place: dy is this layer's own gradient buffer, read by nobody else;
        // db = column sums of dz in the same pass. Then dW = x^T dz ; dx = dz W^T.
        let dy = UnsafeMutablePointer(mutating: dy)
        Activation.backpropagateSummingBias(activation, output: output, gradient: dy, rows: batch, columns: units, biasGradient: db)
        sgemm(transA: true, m: inputs, n: units, k: batch, a: x, lda: inputs, b: dy, ldb: units, beta: 0, c: dw, ldc: units)
        if let dx {
            sgemm(transB: true, m: batch, n: inputs, k: units, a: dy, lda: units, b: w, ldb: units, beta: 0, c: dx, ldc: inputs)
        }
    }
}
