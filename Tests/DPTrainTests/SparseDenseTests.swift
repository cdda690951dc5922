@testable import DPTrain
import Testing

/// The sparse path of `Dense` (inputs mostly zero, as MNIST's pixels are) against its sgemm path:
/// the same products summed in another order, so equal to rounding.
@Suite("Dense on sparse inputs")
struct SparseDenseTests {
    /// A layer bound to a store of its own, its parameters drawn from `seed`; its input gradient
    /// is `DenseInputGradient`'s whatever this build's tuning (these tests cover the layer's own paths).
    static func layer(
        inputs: Int, units: Int, activation: ActivationKind, seed: UInt64, batch: Int
    ) -> (Dense, ParameterStore) {
        let dense = Dense(name: "dense", inputs: inputs, units: units, activation: activation)
        dense.tuning.ownInputGradient = true
        var rng = SplitMix64(seed: seed)
        let store = GradientCheckTests.standaloneStore(for: dense, rng: &rng)
        dense.prepare(capacity: batch)
        return (dense, store)
    }

    /// Inputs with about `density` of them nonzero, an all-zero row and an all-zero column, and
    /// some -0.0 (which the sparse lists drop).
    static func sparseInput(batch: Int, inputs: Int, density: Float, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        var x = [Float](repeating: 0, count: batch * inputs)
        for r in 0..<batch where r != batch / 2 {
            for k in 0..<inputs where k != inputs / 3 {
                let u = rng.uniform(0, 1)
                if u < density {
                    x[r * inputs + k] = rng.uniform(-1, 1)
                } else if u < density + 0.02 {
                    x[r * inputs + k] = -0.0
                }
            }
        }
        return x
    }

    /// Forward output, parameter gradients and input gradient, with the sparse path forced on or off.
    static func run(
        sparse: Bool, x: [Float], inputs: Int, units: Int, batch: Int, activation: ActivationKind
    ) -> (y: [Float], grads: [Float], dx: [Float], wentSparse: Bool) {
        let (dense, store) = layer(inputs: inputs, units: units, activation: activation, seed: 5, batch: batch)
        dense.tuning.forwardDensityLimit = sparse ? 1 : 0
        dense.tuning.kernelGradientDensityLimit = 0.35
        let input = FloatBuffer(count: x.count)
        input.copy(from: x)
        let y = FloatBuffer(count: batch * units), dx = FloatBuffer(count: x.count)
        let context = StepContext(training: true)
        dense.forward(input.pointer, y.pointer, batch: batch, context: context)
        let wentSparse = dense.lastForwardWasSparse
        var rng = SplitMix64(seed: 9)
        let dy = FloatBuffer(count: y.count)
        for i in 0..<dy.count { dy.pointer[i] = rng.uniform(-1, 1) }
        dense.backward(
            input: input.pointer, output: y.pointer, outputGradient: dy.pointer, inputGradient: dx.pointer,
            batch: batch, context: context)
        return (y.array, store.gradients.array, dx.array, wentSparse)
    }

    static func expectClose(_ a: [Float], _ b: [Float], _ what: String) {
        #expect(a.count == b.count)
        var worst = (index: 0, error: Float(0))
        for i in 0..<a.count {
            let error = abs(a[i] - b[i]) / max(1, abs(b[i]))
            if !(error <= worst.error) { worst = (i, error) }  // NaN counts as the worst
        }
        #expect(worst.error <= 1e-5, "\(what)[\(worst.index)]: sparse \(a[worst.index]) vs sgemm \(b[worst.index])")
    }

    // Units: a multiple of 64, one of 16 plus a remainder, exactly 16. Batches past the 64-row
    // chunk of the sparse lists, and one within it. Inputs: one 64-column block of the forward
    // product or part of one, 13 blocks (784), and 3 blocks of which the last starts after the
    // last full 16 columns (140).
    @Test(arguments: [(784, 128, 150), (50, 70, 64), (33, 16, 130), (784, 130, 7), (140, 20, 70)])
    func sparseMatchesSgemm(_ shape: (inputs: Int, units: Int, batch: Int)) {
        // At 40% nonzero the forward pass goes sparse and the kernel gradient through sgemm.
        for (activation, density) in [(ActivationKind.relu, Float(0.2)), (.linear, 0.2), (.relu, 0.4)] {
            let x = Self.sparseInput(
                batch: shape.batch, inputs: shape.inputs, density: density, seed: UInt64(shape.units))
            let s = Self.run(
                sparse: true, x: x, inputs: shape.inputs, units: shape.units, batch: shape.batch, activation: activation
            )
            let d = Self.run(
                sparse: false, x: x, inputs: shape.inputs, units: shape.units, batch: shape.batch,
                activation: activation)
            #expect(s.wentSparse && !d.wentSparse)
            let name = "\(shape) \(activation) \(density)"
            Self.expectClose(s.y, d.y, "\(name) output")
            Self.expectClose(s.grads, d.grads, "\(name) kernel and bias gradients")
            Self.expectClose(s.dx, d.dx, "\(name) input gradient")
        }
    }

    /// The input gradient (`DenseInputGradient`) against `dz W^T` summed in Double: everywhere,
    /// or, for a layer after a ReLU (`zeroInputsNeedNoGradient`), where the input is nonzero, with
    /// 0 in each column zero in all 16 rows of a group. 37 rows: two groups and a tail of 5; 100
    /// inputs: 12 blocks of 8 columns and a tail of 4; a column zero in every row and one nonzero
    /// only in the tail group. A layer of fewer than 16 units uses sgemm and skips nothing.
    @Test(arguments: [(100, 20, 37), (5408, 128, 16), (40, 16, 3), (128, 10, 5)])
    func inputGradientIsDzTimesWTransposed(_ shape: (inputs: Int, units: Int, batch: Int)) {
        let (inputs, units, batch) = shape
        var x = Self.sparseInput(batch: batch, inputs: inputs, density: 0.3, seed: 12)
        let lateColumn = inputs - 2
        for r in 0..<batch { x[r * inputs + lateColumn] = r == batch - 1 ? 0.5 : 0 }
        for afterReLU in [false, true] {
            let (dense, store) = Self.layer(inputs: inputs, units: units, activation: .relu, seed: 5, batch: batch)
            dense.zeroInputsNeedNoGradient = afterReLU
            let skipping = afterReLU && units >= 16
            let (dx, y, dy) = Self.inputGradient(dense, x: x, batch: batch)
            let w = store.values.pointer  // the kernel, [inputs, units], comes first
            var zeroed = 0
            for r in 0..<batch {
                let group = (r / 16 * 16)..<min(r / 16 * 16 + 16, batch)
                for k in 0..<inputs {
                    let i = r * inputs + k
                    var expected = 0.0
                    for j in 0..<units where y[r * units + j] > 0 {
                        expected += Double(dy[r * units + j]) * Double(w[k * units + j])
                    }
                    if skipping && group.allSatisfy({ x[$0 * inputs + k] == 0 }) {
                        #expect(dx[i] == 0 && dx[i].sign == .plus, "row \(r), column \(k) is zero in its group")
                        zeroed += 1
                    } else if !skipping || x[i] != 0 {
                        #expect(
                            abs(Double(dx[i]) - expected) <= 1e-5 * max(1, abs(expected)),
                            "row \(r), column \(k): \(dx[i]) vs \(expected)")
                    }
                }
            }
            #expect(
                zeroed >= (skipping ? batch : 0),
                "the all-zero column (and the late one outside the tail group) are skipped")
            // Each entry is the same sum whichever rows share its group: one row alone gives the same bits.
            for r in [0, batch - 1] where units >= 16 {
                let alone = Self.inputGradient(dense, x: Array(x[r * inputs..<(r + 1) * inputs]), batch: 1, dyRow: r).dx
                for k in 0..<inputs where !skipping || x[r * inputs + k] != 0 {
                    #expect(alone[k] == dx[r * inputs + k], "row \(r), column \(k) alone")
                }
            }
        }
    }

    /// The input gradient of `dense` for the gradient rows `run` draws (from row `dyRow` on),
    /// with the layer's output and those rows.
    static func inputGradient(
        _ dense: Dense, x: [Float], batch: Int, dyRow: Int = 0
    ) -> (dx: [Float], y: [Float], dy: [Float]) {
        let units = dense.units
        let input = FloatBuffer(count: x.count), y = FloatBuffer(count: batch * units), dx = FloatBuffer(count: x.count)
        input.copy(from: x)
        dx.pointer.update(repeating: .nan, count: dx.count)  // every entry must be written
        let context = StepContext(training: true)
        dense.forward(input.pointer, y.pointer, batch: batch, context: context)
        var rng = SplitMix64(seed: 9)
        var all = [Float](repeating: 0, count: (dyRow + batch) * units)
        for i in all.indices { all[i] = rng.uniform(-1, 1) }
        let rows = Array(all[(dyRow * units)...])
        let dy = FloatBuffer(count: batch * units)
        dy.copy(from: rows)
        dense.backward(
            input: input.pointer, output: y.pointer, outputGradient: dy.pointer, inputGradient: dx.pointer,
            batch: batch, context: context)
        return (dx.array, y.array, rows)
    }

    @Test func denseAfterAReLUSkipsZeroInputsInItsInputGradient() throws {
        func flags(_ specs: [LayerSpec], inputShape: [Int], skips: Bool = true) throws -> [Bool] {
            let model = try Model(
                specs: specs, inputShape: inputShape, loss: .sparseCategoricalCrossentropy, capacity: 4)
            model.skipsZeroInputs = skips
            let dense = model.layers.compactMap { $0 as? Dense }
            #expect(
                dense.allSatisfy { $0.tuning == (skips ? .forThisBuild : .sgemmOnly) },
                "dense mode: every product an sgemm")
            return dense.map(\.zeroInputsNeedNoGradient)
        }
        let cnn: [LayerSpec] = [
            .conv2d(filters: 4, kernel: 3, stride: 1, padding: .valid, activation: .relu, l2: 0),
            .maxPooling2d(pool: 2, stride: 2), .flatten,
            .dense(units: 16, activation: .relu, l2: 0), .dense(units: 16, activation: .tanh, l2: 0),
            .dense(units: 3, activation: .softmax, l2: 0),
        ]
        #expect(try flags(cnn, inputShape: [8, 8, 1]) == [true, true, false])
        #expect(try flags(cnn, inputShape: [8, 8, 1], skips: false) == [false, false, false])
        let mlp: [LayerSpec] = [
            .flatten, .dense(units: 16, activation: .relu, l2: 0), .dropout(rate: 0.2),
            .dense(units: 3, activation: .softmax, l2: 0),
        ]
        #expect(try flags(mlp, inputShape: [4, 4]) == [false, false])
    }

    @Test func nanInputPropagatesAsInSgemm() {
        var x = Self.sparseInput(batch: 70, inputs: 40, density: 0.2, seed: 3)
        x[66 * 40 + 5] = .nan
        let s = Self.run(sparse: true, x: x, inputs: 40, units: 32, batch: 70, activation: .linear)
        let poisoned = s.y[(66 * 32)..<(67 * 32)].allSatisfy(\.isNaN)
        let othersClean = !s.y[0..<(66 * 32)].contains(where: \.isNaN)
        let gradientPoisoned = s.grads[(5 * 32)..<(6 * 32)].allSatisfy(\.isNaN)
        #expect(poisoned, "a NaN input poisons its sample's outputs")
        #expect(othersClean, "and no other sample's")
        #expect(gradientPoisoned, "and the kernel gradient of its input")
    }

    @Test func densityPicksThePath() {
        let batch = 32, inputs = 100, units = 64
        let sparse = Self.sparseInput(batch: batch, inputs: inputs, density: 0.15, seed: 4)
        let dense = Self.sparseInput(batch: batch, inputs: inputs, density: 0.9, seed: 4)
        for (x, expected) in [(sparse, true), (dense, false)] {
            let (layer, _) = Self.layer(inputs: inputs, units: units, activation: .relu, seed: 1, batch: batch)
            let input = FloatBuffer(count: x.count), y = FloatBuffer(count: batch * units)
            input.copy(from: x)
            layer.forward(input.pointer, y.pointer, batch: batch, context: StepContext(training: false))
            #expect(layer.lastForwardWasSparse == expected, "\(expected ? "15%" : "90%") nonzero")
        }
        // Too few units to pay for the lists: always sgemm.
        let (small, _) = Self.layer(inputs: inputs, units: 10, activation: .linear, seed: 1, batch: batch)
        let input = FloatBuffer(count: sparse.count), y = FloatBuffer(count: batch * 10)
        input.copy(from: sparse)
        small.forward(input.pointer, y.pointer, batch: batch, context: StepContext(training: false))
        #expect(!small.lastForwardWasSparse)
    }

    @Test func sparsityIsCountedExactly() {
        // 3000 values (two 1024-value blocks, a partial one and a 8-value tail), k of them nonzero.
        for k in [0, 899, 900, 901, 3000] {
            var x = [Float](repeating: 0, count: 3000)
            for i in 0..<k { x[(i * 7) % 3000] = Float(i + 1) }  // 7 and 3000 are coprime: k distinct places
            let sparse = x.withUnsafeBufferPointer { SparseRows.isSparse($0.baseAddress!, count: 3000, limit: 0.3) }
            #expect(sparse == (k <= 900), "\(k) of 3000 nonzero")
        }
    }

    // 37 columns: two 16-lane groups and a remainder of 5, one column block; 140: three column
    // blocks, the last starting in the remainder.
    @Test(arguments: [37, 140])
    func listsHoldExactlyTheNonzeroEntries(columns: Int) {
        let rows = 9
        let x = Self.sparseInput(batch: rows, inputs: columns, density: 0.3, seed: 8)
        let lists = SparseRows(rowCapacity: 16, columns: columns)
        x.withUnsafeBufferPointer { lists.load($0.baseAddress!, rows: rows) }
        lists.transpose()
        var byRow: [[Int]] = [], byColumn = [[Int]](repeating: [], count: columns)
        for r in 0..<rows {
            var listed: [Int] = []
            for e in Int(lists.rowStart[r])..<Int(lists.rowStart[r + 1]) {
                let k = Int(lists.columnOf[e])
                listed.append(k)
                #expect(lists.rowValue[e] == x[r * columns + k])
            }
            byRow.append(listed)
        }
        for k in 0..<columns {
            for e in Int(lists.columnStart[k])..<Int(lists.columnStart[k + 1]) {
                let r = Int(lists.rowOf[e])
                byColumn[k].append(r)
                #expect(lists.columnValue[e] == x[r * columns + k])
            }
        }
        for r in 0..<rows {
            let nonzero = (0..<columns).filter { x[r * columns + $0] != 0 }
            #expect(byRow[r] == nonzero, "row \(r)")
            let width = SparseRows.blockColumns
            #expect(lists.blocks == (columns + width - 1) / width)
            for b in 0..<lists.blocks {
                let starts = lists.blockStart + r * (lists.blocks + 1)
                let inBlock = (Int(starts[b])..<Int(starts[b + 1])).map { Int(lists.columnOf[$0]) }
                #expect(inBlock == nonzero.filter { $0 / width == b }, "row \(r), block \(b)")
            }
        }
        for k in 0..<columns {
            let nonzero = (0..<rows).filter { x[$0 * columns + k] != 0 }
            #expect(byColumn[k] == nonzero, "column \(k)")
        }
        #expect(byRow[rows / 2].isEmpty && byColumn[columns / 3].isEmpty)
    }
}
