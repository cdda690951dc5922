/// Stochastic gradient descent with optional momentum and Nesterov momentum, as Keras's `SGD`:
///
///     v = momentum * v - lr * g
///     p += v                        (plain momentum)
///     p += momentum * v - lr * g    (Nesterov)
///
/// With momentum 0 this is `p -= lr * g`.
public final class SGD: Optimizer {
    public let momentum: Float
    public let nesterov: Bool
    public var iterations = 0
    private(set) var velocity: FloatBuffer

    public init(parameterCount: Int, momentum: Float = 0, nesterov: Bool = false) {
        self.momentum = momentum
        self.nesterov = nesterov
        velocity = FloatBuffer(count: momentum > 0 ? parameterCount : 0)
    }

    public var state: [(name: String, buffer: FloatBuffer)] { momentum > 0 ? [("sgd.velocity", velocity)] : [] }

    public func useState(_ buffers: [FloatBuffer]) {
        precondition(buffers.count == state.count && buffers.allSatisfy { $0.count == velocity.count })
        if momentum > 0 { velocity = buffers[0] }
    }

    public func update(
        parameters: UnsafePointer<Float>, into updated: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
        range: Range<Int>, learningRate lr: Float
    ) -> Bool {
        let (p, q, g, v, count) = (
            parameters + range.lowerBound, updated + range.lowerBound, gradients + range.lowerBound,
            velocity.pointer + range.lowerBound, range.count
        )
        let mu = momentum
        if momentum == 0 {
            forEachElement(from: p, to: q, count: count) { i, p, q in q[i] = p[i] - lr * g[i] }
        } else if nesterov {
            forEachElement(from: p, to: q, count: count) { i, p, q in
                let vi = mu * v[i] - lr * g[i]
                v[i] = vi
                q[i] = p[i] + (mu * vi - lr * g[i])
            }
        } else {
            forEachElement(from: p, to: q, count: count) { i, p, q in
                let vi = mu * v[i] - lr * g[i]
                v[i] = vi
                q[i] = p[i] + vi
            }
        }
        return FiniteCheck.allFinite(g, count: count)
    }
}
