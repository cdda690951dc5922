@testable import DPTrain
import Foundation
import Testing

@Suite("Optimizers")
struct OptimizerTests {
    /// The streamed update (for parameters other cores read) writes the same bits as `update`, over
    /// ranges whose ends fall off the chunks and off 64-byte boundaries, and nothing outside them.
    @Test func streamedUpdateMatchesUpdate() {
        let n = 10_000
        let optimizers: [() -> any Optimizer] = [
            { Adam(parameterCount: n) }, { Adam(parameterCount: n, amsgrad: true, weightDecay: 0.01) },
            { SGD(parameterCount: n, momentum: 0.9, nesterov: true) },
        ]
        var rng = SplitMix64(seed: 7)
        let parameters = FloatBuffer(count: n), gradients = FloatBuffer(count: n)
        for i in 0..<n { parameters.pointer[i] = rng.uniform(-1, 1) }
        for make in optimizers {
            let (plain, streamed) = (make(), make())
            let (a, b) = (FloatBuffer(count: n), FloatBuffer(count: n))
            a.pointer.update(repeating: 42, count: n)
            b.pointer.update(repeating: 42, count: n)
            for step in 1...3 {
                for i in 0..<n { gradients.pointer[i] = rng.uniform(-1, 1) }
                plain.iterations = step
                streamed.iterations = step
                for range in [3..<4_101, 4_101..<9_999] {
                    let p = plain.update(
                        parameters: parameters.pointer, into: a.pointer, gradients: gradients.pointer, range: range,
                        learningRate: 0.01)
                    let s = streamed.updateStreaming(
                        parameters: parameters.pointer, into: b.pointer, gradients: gradients.pointer, range: range,
                        learningRate: 0.01, chunk: FloatBuffer(count: 1_000))
                    #expect(p && s)
                }
                #expect(a.array.map(\.bitPattern) == b.array.map(\.bitPattern), "\(type(of: plain)) step \(step)")
            }
            #expect(b.pointer[0] == 42 && b.pointer[1] == 42 && b.pointer[2] == 42 && b.pointer[n - 1] == 42)
        }
    }

    /// Adam on two parameters with a known gradient sequence, against the update written out by hand.
    @Test func adamMatchesHandComputedSteps() {
        let adam = Adam(parameterCount: 2)
        let params = FloatBuffer(count: 2)
        params.copy(from: [0.5, -1.0])
        let gradients: [[Float]] = [[0.1, -0.2], [0.3, 0.0], [-0.05, 0.4]]
        // By hand, in Double: lr 1e-3, b1 0.9, b2 0.999, eps 1e-7.
        var p = [0.5, -1.0], m = [0.0, 0.0], v = [0.0, 0.0]
        for (t, g) in gradients.enumerated() {
            _ = g.withUnsafeBufferPointer {
                adam.step(parameters: params.pointer, gradients: $0.baseAddress!, count: 2, learningRate: 1e-3)
            }
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
        _ = g.withUnsafeBufferPointer {
            adam.step(parameters: params.pointer, gradients: $0.baseAddress!, count: 3, learningRate: 0.01)
        }
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
                _ = [Float(g)].withUnsafeBufferPointer {
                    sgd.step(parameters: params.pointer, gradients: $0.baseAddress!, count: 1, learningRate: 0.1)
                }
                v = 0.9 * v - 0.1 * g
                p += nesterov ? 0.9 * v - 0.1 * g : v
                #expect(abs(Double(params.pointer[0]) - p) < 1e-6, "nesterov \(nesterov)")
            }
        }
    }
}

@Suite("Optimizer options and regularisation")
struct OptimizerOptionTests {
    @Test func adamWDecaysBeforeTheAdamStep() {
        let adamw = Adam(parameterCount: 1, weightDecay: 0.1)
        let params = FloatBuffer(count: 1)
        params.copy(from: [2])
        _ = [Float(0.5)].withUnsafeBufferPointer {
            adamw.step(parameters: params.pointer, gradients: $0.baseAddress!, count: 1, learningRate: 0.01)
        }
        // p = 2 - 0.01*0.1*2 = 1.998, then the first Adam step moves it by ~lr against the gradient.
        let alpha = 0.01 * (1 - 0.999).squareRoot() / (1 - 0.9)
        let expected = 1.998 - alpha * 0.05 / ((0.001 * 0.25).squareRoot() + 1e-7)
        #expect(abs(Double(params.pointer[0]) - expected) < 1e-6)
    }

    @Test func amsgradUsesTheRunningMaximumOfV() {
        let ams = Adam(parameterCount: 1, amsgrad: true)
        let params = FloatBuffer(count: 1)
        var p = 0.0, m = 0.0, v = 0.0, vhat = 0.0
        for (t, g) in [1.0, 0.01, 0.01].enumerated() {
            _ = [Float(g)].withUnsafeBufferPointer {
                ams.step(parameters: params.pointer, gradients: $0.baseAddress!, count: 1, learningRate: 0.1)
            }
            let step = Double(t + 1)
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            vhat = max(vhat, v)
            p -= 0.1 * (1 - pow(0.999, step)).squareRoot() / (1 - pow(0.9, step)) * m / (vhat.squareRoot() + 1e-7)
            #expect(abs(Double(params.pointer[0]) - p) < 1e-5, "step \(t + 1)")
        }
    }

    @Test func l2AddsLambdaTimesSquaredNormToLossAndTwiceLambdaWToGradient() throws {
        let model = try Model(
            specs: [.flatten, .dense(units: 3, activation: .softmax, l2: 0.01)], inputShape: [2, 2, 1],
            loss: .sparseCategoricalCrossentropy, capacity: 1)
        model.initialize(seed: 1)
        let kernel = model.parameter("dense_1.kernel")!
        let expected = 0.01 * kernel.reduce(0.0) { $0 + Double($1) * Double($1) }
        model.store.gradients.zero()
        let penalty = model.applyRegularization(to: model.store.gradients.pointer)
        #expect(abs(penalty - expected) <= 1e-6 * expected)
        for i in 0..<kernel.count { #expect(abs(model.store.gradients.pointer[i] - 0.02 * kernel[i]) < 1e-7) }
        #expect(model.store.gradients.pointer[kernel.count] == 0, "the bias is not regularised")
    }

    @Test func learningRateSchedules() {
        var s = LearningRateSchedule(rate: 0.1)
        #expect(s.rate(step: 1000) == 0.1)
        s.kind = .step; s.decaySteps = 10; s.decayRate = 0.5
        #expect(s.rate(step: 9) == 0.1 && abs(s.rate(step: 10) - 0.05) < 1e-9 && abs(s.rate(step: 25) - 0.025) < 1e-9)
        s.kind = .cosine; s.decaySteps = 100; s.alpha = 0
        #expect(abs(s.rate(step: 50) - 0.05) < 1e-7 && s.rate(step: 100) < 1e-9 && s.rate(step: 500) < 1e-9)
        s.warmupSteps = 10
        #expect(
            abs(s.rate(step: 0) - 0.01) < 1e-9 && abs(s.rate(step: 9) - 0.1) < 1e-9
                && abs(s.rate(step: 10) - 0.1) < 1e-7)
    }
}
