import Foundation

/// Element-wise (or, for softmax, row-wise) activation functions, as in Keras's `activation=`.
public enum ActivationKind: String, Sendable, CaseIterable {
    case linear, relu, sigmoid, tanh, softmax
}

/// An activation applied as its own layer: Keras's `Activation(...)`, and softmax when it is not
/// fused into the loss. Dense and Conv2D apply element-wise activations themselves, in the same
/// pass as their bias; the output activation is fused into the loss when the loss allows it
/// (softmax + cross-entropy, sigmoid + binary cross-entropy).
public final class Activation: Layer {
    public let name: String
    public let kind: ActivationKind
    public let inputShape: [Int]
    public var outputShape: [Int] { inputShape }

    public init(name: String, kind: ActivationKind, shape: [Int]) {
        self.name = name
        self.kind = kind
        self.inputShape = shape
    }

    public var ignoresGradientOfZeroOutputs: Bool { kind == .relu }
    public var aliasesInput: Bool { kind == .linear }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, context: StepContext) {
        Self.apply(kind, x, y, rows: batch, columns: inputSize)
    }

    /// `y = f(x)` for `rows` rows of `columns` values; `x` and `y` may be the same memory.
    public static func apply(
        _ kind: ActivationKind, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, columns: Int
    ) {
        let n = rows * columns
        switch kind {
        case .linear: if UnsafePointer(y) != x { y.update(from: x, count: n) }
        case .relu: for i in 0..<n { y[i] = max(x[i], 0) }
        case .sigmoid: for i in 0..<n { y[i] = 1 / (1 + exp(-x[i])) }
        case .tanh: for i in 0..<n { y[i] = Foundation.tanh(x[i]) }
        case .softmax:
            for r in 0..<rows {
                let xr = x + r * columns, yr = y + r * columns
                var m = xr[0]
                for j in 1..<columns { m = max(m, xr[j]) }
                var s: Float = 0
                for j in 0..<columns { yr[j] = exp(xr[j] - m); s += yr[j] }
                let inv = 1 / s
                for j in 0..<columns { yr[j] *= inv }
            }
        }
    }

    /// `y = f(y + bias)` row by row, in place: the bias add and an element-wise activation in one
    /// pass over a layer's output (Dense and Conv2D call it after their GEMM).
    static func addBiasAndApply(
        _ kind: ActivationKind, _ y: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, rows: Int, columns: Int
    ) {
        precondition(kind != .softmax, "softmax is row-wise: it is its own layer or fused into the loss")
        for r in 0..<rows {
            let row = y + r * columns
            switch kind {
            case .linear: for j in 0..<columns { row[j] += bias[j] }
            case .relu: for j in 0..<columns { row[j] = max(row[j] + bias[j], 0) }
            case .sigmoid: for j in 0..<columns { row[j] = 1 / (1 + exp(-(row[j] + bias[j]))) }
            case .tanh: for j in 0..<columns { row[j] = Foundation.tanh(row[j] + bias[j]) }
            case .softmax: break
            }
        }
    }

    /// The backward of `addBiasAndApply`, in one pass: turns `dy` (the gradient with respect to
    /// the layer's output `y`) into the gradient with respect to its pre-activation, in place,
    /// and writes the bias gradient, the column sums of that gradient, to `biasGradient`.
    static func backpropagateSummingBias(
        _ kind: ActivationKind, output y: UnsafePointer<Float>, gradient dy: UnsafeMutablePointer<Float>,
        rows: Int, columns: Int, biasGradient db: UnsafeMutablePointer<Float>
    ) {
        db.update(repeating: 0, count: columns)
        if kind == .linear {  // dy is already the pre-activation gradient: only sum it
            for r in 0..<rows {
                let dyr = dy + r * columns
                for j in 0..<columns { db[j] += dyr[j] }
            }
            return
        }
        withChainRule(kind) { chain in
            for r in 0..<rows {
                let (yr, dyr) = (y + r * columns, dy + r * columns)
                for j in 0..<columns {
                    let g = chain(yr[j], dyr[j])
                    dyr[j] = g
                    db[j] += g
                }
            }
        }
    }

    /// Turns the gradient with respect to an activation's output `y` into the gradient with
    /// respect to its input, in place (element-wise activations only).
    static func backpropagateInPlace(
        _ kind: ActivationKind, output y: UnsafePointer<Float>, gradient dy: UnsafeMutablePointer<Float>, count n: Int
    ) {
        withChainRule(kind) { chain in
            for i in 0..<n { dy[i] = chain(y[i], dy[i]) }
        }
    }

    /// Calls `body` with `(y, g) -> f'(z) * g` for `kind`, written from the output `y = f(z)`
    /// (identity for softmax, whose backward is row-wise or fused into the loss). Inlined, so
    /// each kind's loop is specialised and vectorised.
    @inline(__always)
    private static func withChainRule(_ kind: ActivationKind, _ body: ((Float, Float) -> Float) -> Void) {
        switch kind {
        case .linear, .softmax: body { _, g in g }
        case .relu: body { y, g in y > 0 ? g : 0 }
        case .sigmoid: body { y, g in g * (y * (1 - y)) }
        case .tanh: body { y, g in g * (1 - y * y) }
        }
    }

    public func backward(
        input: UnsafePointer<Float>, output y: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
        inputGradient dx: UnsafeMutablePointer<Float>?, batch: Int, context: StepContext
    ) {
        guard let dx else { return }
        let n = batch * inputSize
        switch kind {
        case .linear, .relu, .sigmoid, .tanh:
            if UnsafePointer(dx) != dy { dx.update(from: dy, count: n) }
            Self.backpropagateInPlace(kind, output: y, gradient: dx, count: n)
        case .softmax:
            // dx_j = y_j (dy_j - sum_k dy_k y_k)
            let c = inputSize
            for r in 0..<batch {
                let yr = y + r * c, dyr = dy + r * c, dxr = dx + r * c
                var dot: Float = 0
                for j in 0..<c { dot += dyr[j] * yr[j] }
                for j in 0..<c { dxr[j] = yr[j] * (dyr[j] - dot) }
            }
        }
    }
}
