import Foundation

/// Element-wise (or, for softmax, row-wise) activation functions, as in Keras's `activation=`.
public enum ActivationKind: String, Sendable, CaseIterable {
    case linear, relu, sigmoid, tanh, softmax
}

/// An activation applied as its own layer. Dense layers with `activation:` in the config are
/// built as Dense followed by this; the output activation is fused into the loss when the loss
/// allows it (softmax + cross-entropy, sigmoid + binary cross-entropy).
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

    public var aliasesInput: Bool { kind == .linear }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, context: StepContext) {
        Self.apply(kind, x, y, rows: batch, columns: inputSize)
    }

    /// `y = f(x)` for `rows` rows of `columns` values; `x` and `y` may be the same memory.
    public static func apply(_ kind: ActivationKind, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, columns: Int) {
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

    public func backward(input: UnsafePointer<Float>, output y: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
                         inputGradient dx: UnsafeMutablePointer<Float>?, batch: Int, context: StepContext) {
        guard let dx else { return }
        let n = batch * inputSize
        switch kind {
        case .linear: if UnsafePointer(dx) != dy { dx.update(from: dy, count: n) }
        case .relu: for i in 0..<n { dx[i] = y[i] > 0 ? dy[i] : 0 }
        case .sigmoid: for i in 0..<n { dx[i] = dy[i] * y[i] * (1 - y[i]) }
        case .tanh: for i in 0..<n { dx[i] = dy[i] * (1 - y[i] * y[i]) }
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
