@testable import DPTrain
import Foundation
import Testing

@Suite("Optimizers")
struct OptimizerTests {
    /// Adam on two parameters with a known gradient sequence, against the update written out by hand.
    @Test func adamMatchesHandComputedSteps() {
        let adam = Adam(parameterCount: 2)
        let params = FloatBuffer(count: 2)
        params.copy(from: [0.5, -1.0])
        let gradients: [[Float]] = [[0.1, -0.2], [0.3, 0.0], [-0.05, 0.4]]
        // By hand, in Double: lr 1e-3, b1 0.9, b2 0.999, eps 1e-7.
        var p = [0.5, -1.0], m = [0.0, 0.0], v = [0.0, 0.0]
        for (t, g) in gradients.enumerated() {
            g.withUnsafeBufferPointer { adam.step(parameters: params.pointer, gradients: $0.baseAddress!, count: 2, learningRate: 1e-3) }
            let step = Double(t + 1)
            let alpha = 1e-3 * (1 - pow(0.999, step)).squareRoot() / (1 - pow(0.9, step))
            for i in 0..<2 {
                m[i] = 0.9 * m[i] + 0.1 * Double(g[i])
                v[i] = 0.999 * v[i] + 0.001 * Double(g[i]) * Double(g[i])
                p[i] -= alpha * m[i] / (v[i].squareRoot() + 1e-7)
            }
            for i in 0..<2 { #expect(abs(Double(params.pointer[i]) - p[i]) < 1e-6, "step \(t + 1) parameter \(i)") }
        }
        // First step moves each parameter by about lr against the gradient's sign.
        #expect(adam.iterations == 3)
    }

    @Test func adamFirstStepIsLearningRateTimesSign() {
        let adam = Adam(parameterCount: 3)
        let params = FloatBuffer(count: 3)
        let g: [Float] = [2, -0.01, 0]
        g.withUnsafeBufferPointer { adam.step(parameters: params.pointer, gradients: $0.baseAddress!, count: 3, learningRate: 0.01) }
        #expect(abs(params.pointer[0] + 0.01) < 1e-6)
        #expect(abs(params.pointer[1] - 0.01) < 1e-5)
        #expect(params.pointer[2] == 0)
    }

    @Test func sgdMomentumAndNesterovMatchHandComputedSteps() {
        for nesterov in [false, true] {
            let sgd = SGD(parameterCount: 1, momentum: 0.9, nesterov: nesterov)
            let params = FloatBuffer(count: 1)
            params.copy(from: [1])
            var p = 1.0, v = 0.0
            for g in [0.5, -0.25, 1.0] {
                [Float(g)].withUnsafeBufferPointer { sgd.step(parameters: params.pointer, gradients: $0.baseAddress!, count: 1, learningRate: 0.1) }
                v = 0.9 * v - 0.1 * g
                p += nesterov ? 0.9 * v - 0.1 * g : v
                #expect(abs(Double(params.pointer[0]) - p) < 1e-6, "nesterov \(nesterov)")
            }
        }
    }
}
