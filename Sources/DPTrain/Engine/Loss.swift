import Foundation

/// The losses of the Keras tutorials. Targets are always class ids (an Int32 per sample); the
/// losses that need one-hot targets (categorical cross-entropy, MSE) expand them on the fly.
public enum LossKind: String, Sendable, CaseIterable {
    case sparseCategoricalCrossentropy = "sparse_categorical_crossentropy"
    case categoricalCrossentropy = "categorical_crossentropy"
    case binaryCrossentropy = "binary_crossentropy"
    case meanSquaredError = "mean_squared_error"

    /// The output activation this loss absorbs into a numerically stable fused form.
    var fusableActivation: ActivationKind? {
        switch self {
        case .sparseCategoricalCrossentropy, .categoricalCrossentropy: return .softmax
        case .binaryCrossentropy: return .sigmoid
        case .meanSquaredError: return nil
        }
    }
}

/// The model's last step: turns its outputs into a loss, an accuracy count and the gradient
/// that starts the backward pass.
///
/// When `fused` is set, the model's outputs are the logits *before* the final activation
/// (softmax for cross-entropy, sigmoid for binary cross-entropy) and the head applies it, which
/// gives the stable forms `p - y`. Otherwise the outputs are taken as they are: probabilities
/// for cross-entropy (clipped to [1e-7, 1 - 1e-7] as Keras does), values for MSE.
public struct LossHead: Sendable {
    public let kind: LossKind
    public let fused: ActivationKind?
    public let outputs: Int

    public init(kind: LossKind, fused: ActivationKind?, outputs: Int) {
        self.kind = kind
        self.fused = fused
        self.outputs = outputs
    }

    static let epsilon: Float = 1e-7

    /// Sum of the per-sample losses and the number of correct predictions for `batch` samples;
    /// writes `scale * dLoss/dOutput` into `gradient` when it is given.
    public func evaluate(
        _ out: UnsafePointer<Float>, labels: UnsafePointer<Int32>, batch: Int,
        gradient: UnsafeMutablePointer<Float>?, scale: Float
    ) -> (loss: Double, correct: Int) {
        var total: Double = 0
        var correct = 0
        let c = outputs
        for r in 0..<batch {
            let o = out + r * c
            let label = Int(labels[r])
            let g = gradient.map { $0 + r * c }
            var loss: Float = 0
            switch (kind, fused) {
            case (.sparseCategoricalCrossentropy, .softmax?), (.categoricalCrossentropy, .softmax?):
                var m = o[0]
                for j in 1..<c { m = max(m, o[j]) }
                var s: Float = 0
                for j in 0..<c { s += exp(o[j] - m) }
                let logSum = log(s) + m
                loss = logSum - o[label]
                if let g {
                    for j in 0..<c { g[j] = scale * (exp(o[j] - logSum) - (j == label ? 1 : 0)) }
                }
                correct += argmax(o, c) == label ? 1 : 0
            case (.sparseCategoricalCrossentropy, _), (.categoricalCrossentropy, _):
                // Keras normalises the probabilities per row before the log; so do we.
                var s: Float = 0
                for j in 0..<c { s += o[j] }
                let p = min(max(o[label] / s, Self.epsilon), 1 - Self.epsilon)
                loss = -log(p)
                if let g {
                    for j in 0..<c { g[j] = scale * (1 / s - (j == label ? 1 / max(o[label], Self.epsilon) : 0)) }
                }
                correct += argmax(o, c) == label ? 1 : 0
            case (.binaryCrossentropy, .sigmoid?):
                let z = o[0], y = Float(label)
                loss = max(z, 0) - z * y + log1p(exp(-abs(z)))
                let p = 1 / (1 + exp(-z))
                g?[0] = scale * (p - y)
                correct += (p >= 0.5 ? 1 : 0) == label ? 1 : 0
            case (.binaryCrossentropy, _):
                let y = Float(label)
                let p = min(max(o[0], Self.epsilon), 1 - Self.epsilon)
                loss = -(y * log(p) + (1 - y) * log(1 - p))
                g?[0] = scale * (p - y) / (p * (1 - p))
                correct += (o[0] >= 0.5 ? 1 : 0) == label ? 1 : 0
            case (.meanSquaredError, _):
                for j in 0..<c {
                    let t: Float = c == 1 ? Float(label) : (j == label ? 1 : 0)
                    let d = o[j] - t
                    loss += d * d
                    g?[j] = scale * 2 * d / Float(c)
                }
                loss /= Float(c)
                correct += (c == 1 ? (o[0] >= 0.5 ? 1 : 0) : argmax(o, c)) == label ? 1 : 0
            }
            total += Double(loss)
        }
        return (total, correct)
    }

    /// The model's predictions (probabilities after the fused activation) for `batch` rows.
    public func predictions(_ out: UnsafePointer<Float>, into p: UnsafeMutablePointer<Float>, batch: Int) {
        Activation.apply(fused ?? .linear, out, p, rows: batch, columns: outputs)
    }

    /// The predicted class of one row of model outputs.
    public func predictedClass(_ o: UnsafePointer<Float>) -> Int {
        outputs == 1 ? (fused == .sigmoid ? (o[0] >= 0 ? 1 : 0) : (o[0] >= 0.5 ? 1 : 0)) : argmax(o, outputs)
    }

    @inline(__always)
    func argmax(_ o: UnsafePointer<Float>, _ c: Int) -> Int {
        var best = 0
        for j in 1..<c where o[j] > o[best] { best = j }
        return best
    }
}
