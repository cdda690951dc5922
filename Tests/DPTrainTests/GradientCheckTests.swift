@testable import DPTrain
import Foundation
import Testing

/// Central finite differences against the analytic backward pass, in Float32: steps and
/// tolerances are chosen for single precision (h = 1e-2 on smooth functions).
@Suite("Gradient checks")
struct GradientCheckTests {
    static let h: Float = 1e-2

    static func close(_ numeric: Double, _ analytic: Double, _ what: String) {
        let tolerance = 3e-3 + 2e-2 * abs(analytic)
        #expect(abs(numeric - analytic) <= tolerance, "\(what): numeric \(numeric) vs analytic \(analytic)")
    }

    /// Checks a single layer on f(x, params) = sum(layer(x) * r): input and parameter gradients.
    /// Binds `layer` to a store of its own and initialises it from `rng`, biases made nonzero too.
    static func standaloneStore(for layer: any Layer, rng: inout SplitMix64) -> ParameterStore {
        var entries: [ParameterStore.Entry] = []
        var offset = 0
        for (suffix, shape) in layer.parameterShapes {
            entries.append(.init(name: "\(layer.name).\(suffix)", shape: shape, offset: offset))
            offset += shape.reduce(1, *)
        }
        let store = ParameterStore(entries: entries)
        layer.bind(store)
        layer.initialize(store, rng: &rng)
        for i in 0..<store.count { store.values.pointer[i] += rng.uniform(-0.1, 0.1) }
        return store
    }

    static func checkLayer(_ layer: any Layer, batch: Int, inputs: (inout SplitMix64) -> Float) {
        var rng = SplitMix64(seed: 11)
        let store = standaloneStore(for: layer, rng: &rng)
        layer.prepare(capacity: batch)
        let x = FloatBuffer(count: batch * layer.inputSize)
        for i in 0..<x.count { x.pointer[i] = inputs(&rng) }
        let r = FloatBuffer(count: batch * layer.outputSize)
        for i in 0..<r.count { r.pointer[i] = rng.uniform(-1, 1) }
        let y = FloatBuffer(count: batch * layer.outputSize)
        let dx = FloatBuffer(count: batch * layer.inputSize)
        let context = StepContext(training: false)

        func f() -> Double {
            layer.forward(x.pointer, y.pointer, batch: batch, context: context)
            var s = 0.0
            for i in 0..<y.count { s += Double(y.pointer[i]) * Double(r.pointer[i]) }
            return s
        }
        _ = f()
        // Layers may turn their output gradient into the pre-activation one in place: pass a copy.
        let dy = FloatBuffer(count: r.count)
        dy.copy(from: r.array)
        layer.backward(
            input: x.pointer, output: y.pointer, outputGradient: dy.pointer, inputGradient: dx.pointer, batch: batch,
            context: context)
        let analyticParams = store.gradients.array
        let analyticInput = dx.array

        func numeric(_ p: UnsafeMutablePointer<Float>) -> Double {
            let saved = p.pointee
            p.pointee = saved + h
            let up = f()
            p.pointee = saved - h
            let down = f()
            p.pointee = saved
            return (up - down) / (2 * Double(h))
        }
        for i in stride(from: 0, to: x.count, by: max(1, x.count / 40)) {
            close(numeric(x.pointer + i), Double(analyticInput[i]), "\(layer.name) input[\(i)]")
        }
        for i in stride(from: 0, to: store.count, by: max(1, store.count / 40)) {
            close(numeric(store.values.pointer + i), Double(analyticParams[i]), "\(layer.name) parameter[\(i)]")
        }
    }

    @Test(arguments: [ActivationKind.linear, .relu, .sigmoid, .tanh])
    func dense(_ activation: ActivationKind) {
        Self.checkLayer(Dense(name: "dense_1", inputs: 7, units: 5, activation: activation), batch: 3) {
            $0.uniform(-1, 1)
        }
    }

    @Test(arguments: [ActivationKind.relu, .sigmoid, .tanh, .softmax, .linear])
    func activation(_ kind: ActivationKind) {
        // Inputs kept away from ReLU's kink, where the derivative is undefined.
        Self.checkLayer(Activation(name: "act", kind: kind, shape: [6]), batch: 4) { rng in
            let v = rng.uniform(0.1, 1.5)
            return rng.next() & 1 == 0 ? v : -v
        }
    }

    @Test func dropoutInTrainingScalesKeptUnits() {
        let layer = Dropout(name: "dropout_1", rate: 0.5, shape: [1000])
        layer.prepare(capacity: 2)
        let x = FloatBuffer(count: 2000), y = FloatBuffer(count: 2000), dx = FloatBuffer(count: 2000)
        for i in 0..<2000 { x.pointer[i] = 1 }
        let indices: [Int32] = [5, 9]
        indices.withUnsafeBufferPointer { idx in
            let context = StepContext(training: true, step: 3, seed: 1, sampleIndices: idx.baseAddress)
            layer.forward(x.pointer, y.pointer, batch: 2, context: context)
            layer.backward(
                input: x.pointer, output: y.pointer, outputGradient: x.pointer, inputGradient: dx.pointer, batch: 2,
                context: context)
        }
        let kept = y.array.filter { $0 != 0 }
        #expect(kept.allSatisfy { $0 == 2 })
        #expect(abs(kept.count - 1000) < 120, "about half the units are kept, got \(kept.count) of 2000")
        #expect(dx.array == y.array, "the backward pass routes through the same mask")
    }

    @Test func dropoutMaskDependsOnlyOnSampleNotOnRow() {
        let layer = Dropout(name: "dropout_1", rate: 0.3, shape: [64])
        layer.prepare(capacity: 3)
        let x = FloatBuffer(count: 192), a = FloatBuffer(count: 192), b = FloatBuffer(count: 192)
        for i in 0..<192 { x.pointer[i] = 1 }
        let order1: [Int32] = [10, 20, 30], order2: [Int32] = [30, 10, 20]
        order1.withUnsafeBufferPointer {
            layer.forward(
                x.pointer, a.pointer, batch: 3,
                context: StepContext(training: true, step: 4, seed: 9, sampleIndices: $0.baseAddress))
        }
        order2.withUnsafeBufferPointer {
            layer.forward(
                x.pointer, b.pointer, batch: 3,
                context: StepContext(training: true, step: 4, seed: 9, sampleIndices: $0.baseAddress))
        }
        // sample 30 is row 2 in the first batch and row 0 in the second.
        #expect(Array(a.array[128..<192]) == Array(b.array[0..<64]))
        #expect(Array(a.array[0..<64]) == Array(b.array[64..<128]))
    }

    static let headCases: [(LossKind, ActivationKind?, Int)] = [
        (.sparseCategoricalCrossentropy, .softmax, 5), (.categoricalCrossentropy, .softmax, 5),
        (.sparseCategoricalCrossentropy, nil, 5), (.binaryCrossentropy, .sigmoid, 1),
        (.binaryCrossentropy, nil, 1), (.meanSquaredError, nil, 5), (.meanSquaredError, nil, 1),
    ]

    @Test(arguments: 0..<7)
    func lossHead(_ index: Int) {
        let (kind, fused, outputs) = Self.headCases[index]
        let head = LossHead(kind: kind, fused: fused, outputs: outputs)
        var rng = SplitMix64(seed: UInt64(index))
        let batch = 4
        let out = FloatBuffer(count: batch * outputs), grad = FloatBuffer(count: batch * outputs)
        // Unfused cross-entropies take probabilities: keep the outputs in (0.05, 0.95).
        for i in 0..<out.count {
            out.pointer[i] = fused == nil && kind != .meanSquaredError ? rng.uniform(0.05, 0.95) : rng.uniform(-2, 2)
        }
        let labels: [Int32] = (0..<batch).map { _ in Int32(rng.next(below: UInt64(max(outputs, 2)))) }
        let scale: Float = 0.5
        let f: () -> Double = {
            labels.withUnsafeBufferPointer {
                head.evaluate(out.pointer, labels: $0.baseAddress!, batch: batch, gradient: nil, scale: 1).loss
            }
        }
        _ = labels.withUnsafeBufferPointer {
            head.evaluate(out.pointer, labels: $0.baseAddress!, batch: batch, gradient: grad.pointer, scale: scale)
        }
        let eps: Float = 1e-3
        for i in 0..<out.count {
            let saved = out.pointer[i]
            out.pointer[i] = saved + eps
            let up = f()
            out.pointer[i] = saved - eps
            let down = f()
            out.pointer[i] = saved
            Self.close(
                (up - down) / (2 * Double(eps)) * Double(scale), Double(grad.pointer[i]),
                "\(kind) fused \(String(describing: fused)) output[\(i)]")
        }
    }

    /// Finite differences over every parameter of `model` for the batch already in its input;
    /// returns how many disagree with the backward pass. `h` is small: a larger step may cross
    /// a ReLU kink or move a pooling argmax.
    static func checkModel(_ model: Model, labels: [Int32], h: Float = 1e-3) -> Int {
        let batch = labels.count
        let context = StepContext(training: false)
        func loss(gradient: Bool) -> Double {
            model.forward(batch: batch, context: context)
            return labels.withUnsafeBufferPointer {
                model.head.evaluate(
                    model.output, labels: $0.baseAddress!, batch: batch,
                    gradient: gradient ? model.outputGradient : nil, scale: 1
                ).loss
            }
        }
        _ = loss(gradient: true)
        model.backward(batch: batch, context: context)
        let analytic = model.store.gradients.array
        let p = model.store.values.pointer
        var failures = 0
        for i in 0..<model.store.count {
            let saved = p[i]
            p[i] = saved + h
            let up = loss(gradient: false)
            p[i] = saved - h
            let down = loss(gradient: false)
            p[i] = saved
            let numeric = (up - down) / (2 * Double(h))
            if abs(numeric - Double(analytic[i])) > 3e-3 + 2e-2 * abs(Double(analytic[i])) {
                failures += 1
                print("parameter \(i): numeric \(numeric) vs analytic \(analytic[i])")
            }
        }
        return failures
    }

    /// A small MLP (3x3 inputs, Dense 6 / 4 / 3, no dropout) with a batch of 5 in its input.
    static func smallMLP() throws -> Model {
        let specs: [LayerSpec] = [
            .flatten, .dense(units: 6, activation: .relu, l2: 0), .dense(units: 4, activation: .tanh, l2: 0),
            .dense(units: 3, activation: .softmax, l2: 0),
        ]
        let model = try Model(specs: specs, inputShape: [3, 3, 1], loss: .sparseCategoricalCrossentropy, capacity: 5)
        model.initialize(seed: 3)
        var rng = SplitMix64(seed: 5)
        for i in 0..<45 { model.input[i] = rng.uniform(0, 1) }
        return model
    }

    @Test func wholeMLPWithoutDropout() throws {
        #expect(Self.checkModel(try Self.smallMLP(), labels: [0, 1, 2, 1, 0]) == 0)
    }

    /// `backward(done:)` may say a Dense layer's parameters are done before it computes its
    /// input's gradient (so they travel meanwhile): every offset it reports must already hold the
    /// final gradient from there to the end, and each Dense layer reports once more than the
    /// others (before its input's gradient as well as after the layer).
    @Test func backwardReportsEachGradientOnlyOnceFinal() throws {
        let model = try Self.smallMLP()
        let context = StepContext(training: true)
        model.forward(batch: 5, context: context)
        let labels: [Int32] = [0, 1, 2, 1, 0]
        _ = labels.withUnsafeBufferPointer {
            model.head.evaluate(
                model.output, labels: $0.baseAddress!, batch: 5, gradient: model.outputGradient, scale: 1)
        }
        let count = model.store.count
        model.store.gradients.pointer.update(repeating: .nan, count: count)
        var reports: [(offset: Int, gradient: [Float])] = []
        model.backward(batch: 5, context: context) { offset in
            reports.append(
                (
                    offset,
                    Array(UnsafeBufferPointer(start: model.store.gradients.pointer + offset, count: count - offset))
                ))
        }
        let final = model.store.gradients.array
        #expect(final.allSatisfy { $0.isFinite })
        for (offset, gradient) in reports {
            #expect(gradient == Array(final[offset...]), "reported at offset \(offset) before its gradient was final")
        }
        // Every layer reports after it runs; the Dense layers also before their input's gradient.
        #expect(reports.count == model.layers.count + 3)
    }
}
