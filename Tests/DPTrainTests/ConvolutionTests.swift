@testable import DPTrain
import Foundation
import Testing

@Suite("Convolution and pooling")
struct ConvolutionTests {
    static let cases: [(padding: Conv2D.Padding, stride: Int)] = [(.valid, 1), (.same, 1), (.valid, 2), (.same, 2)]

    @Test(arguments: 0..<4)
    func conv2DGradients(_ index: Int) throws {
        let (padding, stride) = Self.cases[index]
        let conv = try Conv2D(
            name: "conv2d_1", inputShape: [7, 6, 2], filters: 3, kernel: (3, 3), stride: stride, padding: padding,
            activation: index % 2 == 0 ? .tanh : .linear)
        GradientCheckTests.checkLayer(conv, batch: 2) { $0.uniform(-1, 1) }
    }

    /// Mostly zero inputs, as MNIST's are: many receptive fields are all zero and left out of
    /// the GEMMs (a third of the 3x3 fields here), which must change no gradient.
    @Test(arguments: 0..<4)
    func conv2DGradientsWithZeroFields(_ index: Int) throws {
        let (padding, stride) = Self.cases[index]
        let conv = try Conv2D(
            name: "conv2d_1", inputShape: [7, 6, 1], filters: 3, kernel: (3, 3), stride: stride, padding: padding,
            activation: index % 2 == 0 ? .tanh : .linear)
        GradientCheckTests.checkLayer(conv, batch: 3) { rng in rng.uniform(0, 1) < 0.9 ? 0 : rng.uniform(-1, 1) }
    }

    @Test func maxPoolingGradients() throws {
        let pool = try MaxPooling2D(name: "max_pooling2d_1", inputShape: [6, 5, 3], pool: 2, stride: 2)
        // Distinct values, far apart relative to the finite-difference step, so no window's argmax moves.
        var next: Float = 0
        GradientCheckTests.checkLayer(pool, batch: 2) { rng in
            next += 1
            return (next * 0.37).truncatingRemainder(dividingBy: 7) + Float(rng.next(below: 3)) * 0.05
        }
        #expect(pool.outputShape == [3, 2, 3])
    }

    /// Ties (as after a ReLU, where whole windows are 0), overlapping windows (stride 1), windows
    /// that leave a row uncovered (height 5) and windows that tile the input (height 6): the
    /// gradient goes to the first maximal position of each window, in row-major window order,
    /// exactly as a direct loop over the windows computes it; every other position gets 0. 2x2
    /// windows have a path of their own; 3x3 ones take the general one.
    @Test(arguments: [(5, 1, 2), (5, 2, 2), (6, 2, 2), (7, 2, 3), (6, 3, 3)])
    func maxPoolingRoutesToTheFirstMaximumOnTies(height h: Int, stride: Int, pool: Int) throws {
        let (w, c, batch) = (6, 3, 2)
        let layer = try MaxPooling2D(name: "p", inputShape: [h, w, c], pool: pool, stride: stride)
        var rng = SplitMix64(seed: 11)
        let x = FloatBuffer(count: batch * h * w * c), dy = FloatBuffer(count: batch * layer.outputSize)
        for i in 0..<x.count { x.pointer[i] = Float(rng.next(below: 3)) }  // values 0, 1, 2: many ties
        for i in 0..<dy.count { dy.pointer[i] = Float(i % 7) + 0.5 }
        let y = FloatBuffer(count: dy.count), dx = FloatBuffer(count: x.count)
        for i in 0..<dx.count { dx.pointer[i] = 99 }  // stale values from an earlier step
        layer.prepare(capacity: batch)
        let context = StepContext(training: true)
        layer.forward(x.pointer, y.pointer, batch: batch, context: context)
        layer.backward(
            input: x.pointer, output: y.pointer, outputGradient: dy.pointer, inputGradient: dx.pointer, batch: batch,
            context: context)

        var expectedY = [Float](repeating: 0, count: dy.count), expectedDx = [Float](repeating: 0, count: x.count)
        let (oh, ow) = (layer.outputShape[0], layer.outputShape[1])
        for n in 0..<batch {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    for ch in 0..<c {
                        var best = -Float.infinity, at = -1
                        for py in 0..<pool {
                            for px in 0..<pool {
                                let i = ((n * h + oy * stride + py) * w + ox * stride + px) * c + ch
                                if x.pointer[i] > best { (best, at) = (x.pointer[i], i) }
                            }
                        }
                        let o = ((n * oh + oy) * ow + ox) * c + ch
                        expectedY[o] = best
                        expectedDx[at] += dy.pointer[o]
                    }
                }
            }
        }
        #expect(y.array == expectedY)
        #expect(dx.array == expectedDx)
    }

    /// The model moves a convolution's ReLU after the max pooling that follows it; outputs and
    /// every gradient must be bit for bit those of the ReLU applied before the pooling.
    @Test(arguments: [2, 1])
    func reluMovedAfterMaxPoolingChangesNoBit(poolStride: Int) throws {
        func build(_ specs: [LayerSpec]) throws -> Model {
            let m = try Model(specs: specs, inputShape: [9, 8, 2], loss: .sparseCategoricalCrossentropy, capacity: 3)
            m.initialize(seed: 4)
            return m
        }
        let tail: [LayerSpec] = [
            .maxPooling2d(pool: 2, stride: poolStride), .flatten, .dense(units: 5, activation: .softmax, l2: 0),
        ]
        let conv = { (a: ActivationKind) in
            LayerSpec.conv2d(filters: 4, kernel: 3, stride: 1, padding: .valid, activation: a, l2: 0)
        }
        let fused = try build([conv(.relu)] + tail)
        let explicit = try build([conv(.linear), .activation(.relu)] + tail)
        #expect(
            (fused.layers[1] as? MaxPooling2D)?.activation == .relu
                && (fused.layers[0] as? Conv2D)?.activation == .linear)
        var rng = SplitMix64(seed: 9)
        // Sample 0 is all zeros: with the zero initial bias its convolution is exactly 0, a
        // maximum of 0 that must pass no gradient (ReLU'(0) = 0), as in the explicit model.
        let inputs = (0..<3 * 9 * 8 * 2).map { $0 < 9 * 8 * 2 ? 0 : rng.uniform(-1, 1) }
        let labels: [Int32] = [0, 3, 4]
        var results: [([Float], [Float])] = []
        for model in [fused, explicit] {
            for i in inputs.indices { model.input[i] = inputs[i] }
            let context = StepContext(training: true)
            model.forward(batch: 3, context: context)
            _ = labels.withUnsafeBufferPointer {
                model.head.evaluate(
                    model.output, labels: $0.baseAddress!, batch: 3, gradient: model.outputGradient, scale: 1)
            }
            model.backward(batch: 3, context: context)
            results.append(
                (
                    Array(UnsafeBufferPointer(start: model.output, count: 3 * 5)),
                    Array(model.store.gradients.buffer.prefix(model.store.count))
                ))
        }
        #expect(results[0].0 == results[1].0)
        #expect(results[0].1 == results[1].1)
        #expect(results[0].1.contains { $0 != 0 } && inputs.count > 0)
    }

    /// A convolution and the max pooling after it run a few samples at a time
    /// (`ConvolutionPooling`); outputs and every gradient must be those of the two layers run one
    /// after the other on the whole batch. The first pair takes 2 samples a chunk and needs no
    /// input gradient: with overlapping windows (3x3, stride 2) or with windows that tile its
    /// output (2x2, 36 filters: two 16-lane blocks and a tail of 4), whose gradient rows are
    /// gathered without writing the output's gradient; the second takes more samples a chunk and
    /// passes an input gradient back; all-zero fields skipped and kept.
    ///
    /// A batch of 2 is one chunk for both pairs, so every sgemm call has the shape the layers'
    /// calls have: the same bits on any BLAS. A batch of 20 is 10 chunks for the first pair and
    /// two for the second: each chunk is a call of its own, and a BLAS may round a row
    /// differently depending on its place in a call (OpenBLAS's AVX2 kernels compute the last
    /// rows of a call with another micro-kernel), so there the results agree to float rounding:
    /// each tensor within 1e-5 of its largest value (measured: under 1e-6). A wrong row, chunk or
    /// pooling position moves a value by its own size.
    @Test(arguments: [(true, 3), (false, 3), (true, 2), (false, 2)], [2, 20])
    func convolutionAndPoolingTogetherMatchTheLayersApart(
        _ variant: (skipsZeroInputs: Bool, firstPool: Int), batch: Int
    ) throws {
        let filters = variant.firstPool == 2 ? 36 : 32
        let specs: [LayerSpec] = [
            .conv2d(filters: filters, kernel: 3, stride: 1, padding: .same, activation: .relu, l2: 0),
            .maxPooling2d(pool: variant.firstPool, stride: 2),
            .conv2d(filters: 24, kernel: 3, stride: 1, padding: .same, activation: .relu, l2: 0),
            .maxPooling2d(pool: 2, stride: 2),
            .flatten, .dense(units: 10, activation: .softmax, l2: 0),
        ]
        let model = try Model(
            specs: specs, inputShape: [28, 28, 1], loss: .sparseCategoricalCrossentropy, capacity: batch)
        model.initialize(seed: 6)
        model.skipsZeroInputs = variant.skipsZeroInputs
        #expect(model.convolutionPooling.keys.sorted() == [0, 2])
        #expect(
            model.convolutionPooling[0]?.chunk == 2
                && model.convolutionPooling[0]?.pool.tiles == (variant.firstPool == 2))
        #expect(model.convolutionPooling[2].map { $0.chunk > 20 / 2 && $0.chunk < 20 } == true)
        var rng = SplitMix64(seed: 10)
        for i in 0..<batch * 28 * 28 { model.input[i] = rng.uniform(0, 1) < 0.8 ? 0 : rng.uniform(0, 1) }
        let labels = (0..<batch).map { Int32($0 % 10) }
        var results: [(output: [Float], gradients: [Float])] = []
        for together in [true, false] {
            model.fusesConvolutionPooling = together
            let context = StepContext(training: true)
            model.forward(batch: batch, context: context)
            _ = labels.withUnsafeBufferPointer {
                model.head.evaluate(
                    model.output, labels: $0.baseAddress!, batch: batch, gradient: model.outputGradient, scale: 1)
            }
            model.backward(batch: batch, context: context)
            results.append(
                (
                    Array(UnsafeBufferPointer(start: model.output, count: batch * 10)),
                    Array(model.store.gradients.buffer.prefix(model.store.count))
                ))
        }
        let (fused, apart) = (results[0], results[1])
        #expect(fused.gradients.prefix(filters * 9).contains { $0 != 0 })  // the first kernel's gradient
        if batch <= model.convolutionPooling[0]!.chunk {
            // The first differing value, if any (not the whole arrays, on failure).
            func difference(_ a: [Float], _ b: [Float]) -> Int? {
                a.count == b.count ? a.indices.first { a[$0] != b[$0] } : -1
            }
            #expect(difference(fused.output, apart.output) == nil, "outputs")
            #expect(difference(fused.gradients, apart.gradients) == nil, "gradients")
            return
        }
        /// The largest difference over the largest magnitude of `a[range]`.
        func relativeDifference(_ a: [Float], _ b: [Float], _ range: Range<Int>) -> Float {
            let scale = a[range].map(abs).max()!
            return range.map { abs(a[$0] - b[$0]) }.max()! / max(scale, .leastNormalMagnitude)
        }
        #expect(relativeDifference(fused.output, apart.output, fused.output.indices) <= 1e-5, "outputs")
        for entry in model.store.entries {
            let d = relativeDifference(fused.gradients, apart.gradients, entry.offset..<entry.offset + entry.count)
            #expect(d <= 1e-5, "gradient of \(entry.name): relative difference \(d)")
        }
    }

    @Test func outputShapesFollowKeras() throws {
        #expect(
            try Conv2D(name: "c", inputShape: [28, 28, 1], filters: 32, kernel: (3, 3), stride: 1, padding: .valid)
                .outputShape == [26, 26, 32])
        #expect(
            try Conv2D(name: "c", inputShape: [28, 28, 1], filters: 8, kernel: (3, 3), stride: 1, padding: .same)
                .outputShape == [28, 28, 8])
        #expect(
            try Conv2D(name: "c", inputShape: [28, 28, 1], filters: 8, kernel: (3, 3), stride: 2, padding: .same)
                .outputShape == [14, 14, 8])
        #expect(
            try Conv2D(name: "c", inputShape: [28, 28, 1], filters: 8, kernel: (5, 5), stride: 2, padding: .valid)
                .outputShape == [12, 12, 8])
        #expect(try MaxPooling2D(name: "p", inputShape: [26, 26, 32], pool: 2, stride: 2).outputShape == [13, 13, 32])
    }

    /// The im2col + GEMM forward pass against a direct convolution written from the definition;
    /// cases 4-7 repeat 0-3 on inputs with all-zero regions (the second sample wholly zero, the
    /// first zero above its middle row), whose fields are left out of the GEMM; 8-11 repeat 4-7
    /// with every field kept (`--dense-inputs`).
    @Test(arguments: 0..<12)
    func forwardMatchesDirectConvolution(_ index: Int) throws {
        let (padding, stride) = Self.cases[index % 4]
        let (h, w, cin, f, k) = (9, 8, 3, 4, 3)
        let conv = try Conv2D(
            name: "conv2d_1", inputShape: [h, w, cin], filters: f, kernel: (k, k), stride: stride, padding: padding)
        conv.skipsZeroFields = index < 8
        let store = ParameterStore(entries: [
            .init(name: "conv2d_1.kernel", shape: [k, k, cin, f], offset: 0),
            .init(name: "conv2d_1.bias", shape: [f], offset: k * k * cin * f),
        ])
        conv.bind(store)
        var rng = SplitMix64(seed: 2)
        for i in 0..<store.count { store.values.pointer[i] = rng.uniform(-1, 1) }
        let batch = 2
        conv.prepare(capacity: batch)
        var x = (0..<batch * h * w * cin).map { _ in rng.uniform(-1, 1) }
        if index >= 4 {
            for i in 0..<x.count where i >= h * w * cin || i < (h / 2) * w * cin { x[i] = i % 5 == 0 ? -0.0 : 0 }
        }
        let (oh, ow) = (conv.outputShape[0], conv.outputShape[1])
        var y = [Float](repeating: 0, count: batch * oh * ow * f)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer {
                conv.forward(xp.baseAddress!, $0.baseAddress!, batch: batch, context: StepContext(training: false))
            }
        }
        // TensorFlow's 'same': total padding max((o-1)*s + k - i, 0), the smaller half on top/left.
        let padTop = padding == .same ? max((oh - 1) * stride + k - h, 0) / 2 : 0
        let padLeft = padding == .same ? max((ow - 1) * stride + k - w, 0) / 2 : 0
        let kernel = Array(store.values.buffer[0..<k * k * cin * f]),
            bias = Array(store.values.buffer[k * k * cin * f..<store.count])
        for n in 0..<batch {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    for o in 0..<f {
                        var sum = Double(bias[o])
                        for ky in 0..<k {
                            for kx in 0..<k {
                                let (iy, ix) = (oy * stride + ky - padTop, ox * stride + kx - padLeft)
                                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                for c in 0..<cin {
                                    sum +=
                                        Double(x[((n * h + iy) * w + ix) * cin + c])
                                        * Double(kernel[((ky * k + kx) * cin + c) * f + o])
                                }
                            }
                        }
                        let got = y[((n * oh + oy) * ow + ox) * f + o]
                        #expect(
                            abs(Double(got) - sum) < 1e-4,
                            "\(padding) stride \(stride) at n\(n) y\(oy) x\(ox) f\(o): \(got) vs \(sum)")
                    }
                }
            }
        }
    }

    @Test func wholeCNN() throws {
        let specs: [LayerSpec] = [
            .conv2d(filters: 3, kernel: 3, stride: 1, padding: .same, activation: .relu, l2: 0),
            .maxPooling2d(pool: 2, stride: 2), .flatten,
            .dense(units: 5, activation: .tanh, l2: 0), .dense(units: 4, activation: .softmax, l2: 0),
        ]
        let model = try Model(specs: specs, inputShape: [6, 6, 1], loss: .sparseCategoricalCrossentropy, capacity: 3)
        model.initialize(seed: 8)
        var rng = SplitMix64(seed: 9)
        for i in 0..<3 * 36 { model.input[i] = rng.uniform(0, 1) }
        let failures = GradientCheckTests.checkModel(model, labels: [0, 3, 1])
        #expect(failures <= model.store.count / 100, "\(failures) of \(model.store.count) parameters disagree")
    }
}
