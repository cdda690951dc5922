/// Adam as Keras 3 computes it (Kingma & Ba, with Keras's epsilon placement):
///
///     m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
///     p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
///
/// Keras defaults: lr 1e-3, b1 0.9, b2 0.999, eps 1e-7. With `amsgrad` the denominator uses the
/// running maximum of `v`. With `weightDecay = wd > 0` it is AdamW (decoupled weight decay, as
/// Keras's `AdamW`): each step first does `p -= lr * wd * p`.
public final class Adam: Optimizer {
    public let beta1: Float, beta2: Float, epsilon: Float
    public let amsgrad: Bool
    public let weightDecay: Float
    public var iterations = 0
    private(set) var m: FloatBuffer, v: FloatBuffer, vMax: FloatBuffer

    public init(
        parameterCount: Int, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7,
        amsgrad: Bool = false, weightDecay: Float = 0
    ) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.amsgrad = amsgrad
        self.weightDecay = weightDecay
        m = FloatBuffer(count: parameterCount)
        v = FloatBuffer(count: parameterCount)
        vMax = FloatBuffer(count: amsgrad ? parameterCount : 0)
    }

    public var state: [(name: String, buffer: FloatBuffer)] {
        [("adam.m", m), ("adam.v", v)] + (amsgrad ? [("adam.vhat", vMax)] : [])
    }

    public func useState(_ buffers: [FloatBuffer]) {
        precondition(buffers.count == state.count && buffers.allSatisfy { $0.count == m.count })
        (m, v) = (buffers[0], buffers[1])
        if amsgrad { vMax = buffers[2] }
    }

    public func update(
        parameters: UnsafePointer<Float>, into updated: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
        range: Range<Int>, learningRate: Float
    ) -> Bool {
        let t = Double(iterations)
        let alpha = Float(Double(learningRate) * (1 - pow(Double(beta2), t)).squareRoot() / (1 - pow(Double(beta1), t)))
        // Pointers to the range's start and loops from 0: the shape the vectoriser handles best.
        var (p, q, g, m, v, count) = (
            parameters + range.lowerBound, updated + range.lowerBound, gradients + range.lowerBound,
            m.pointer + range.lowerBound, v.pointer + range.lowerBound, range.count
        )
        let b1 = beta1, b2 = beta2, eps = epsilon
        if weightDecay > 0 {
            let decay = learningRate * weightDecay
            forEachElement(from: p, to: q, count: count) { i, p, q in q[i] = p[i] - decay * p[i] }
            p = UnsafePointer(q)
        }
        if amsgrad {
            let vhat = vMax.pointer + range.lowerBound
            forEachElement(from: p, to: q, count: count) { i, p, q in
                let gi = g[i]
                let mi = b1 * m[i] + (1 - b1) * gi
                let vi = b2 * v[i] + (1 - b2) * gi * gi
                m[i] = mi
                v[i] = vi
                vhat[i] = max(vhat[i], vi)
                q[i] = p[i] - alpha * mi / (vhat[i].squareRoot() + eps)
            }
            return FiniteCheck.allFinite(g, count: count)
        }
        var worst: UInt32 = 0
        let bits = UnsafeRawPointer(g).assumingMemoryBound(to: UInt32.self)
        forEachElement(from: p, to: q, count: count) { i, p, q in
            worst = max(worst, bits[i] & 0x7F80_0000)
            let gi = g[i]
            let mi = b1 * m[i] + (1 - b1) * gi
            let vi = b2 * v[i] + (1 - b2) * gi * gi
            m[i] = mi
            v[i] = vi
            q[i] = p[i] - alpha * mi / (vi.squareRoot() + eps)
        }
        return worst != 0x7F80_0000
    }
}

import Foundation
