import Testing

@testable import DPTrain

/// PowerSGD's parts that need no network: which tensors it compresses, the refusal of a rank
/// larger than a matrix, and the orthonormalisation of P. (Its sums over machines are tested end
/// to end on simulated hosts.)
@Suite("PowerSGD")
struct PowerSGDTests {
    /// 784 -> 128 -> 10: the 784 x 128 kernel is compressed, the small 128 x 10 kernel and the
    /// biases travel whole.
    func mlp() throws -> Model {
        try Model(
            specs: [
                .flatten, .dense(units: 128, activation: .relu, l2: 0), .dense(units: 10, activation: .softmax, l2: 0),
            ],
            inputShape: [28, 28, 1], loss: .sparseCategoricalCrossentropy, capacity: 1)
    }

    @Test func compressesTheLargeKernelsOnly() throws {
        let model = try mlp()
        let power = try PowerSGD(store: model.store, rank: 4, warmupSteps: 0, minimumSize: 4096, seed: 1)
        #expect(power.matrices.map(\.name) == ["dense_1.kernel"])
        #expect(power.matrices[0].rows == 784 && power.matrices[0].cols == 128)
        let (sent, whole) = power.wireFloats
        #expect(whole == model.store.count)
        #expect(sent == (784 + 128) * 4 + 128 + 128 * 10 + 10)
    }

    @Test func aRankAboveAMatrixsSmallerSideIsAnErrorNamingTheKey() throws {
        let model = try mlp()
        #expect {
            try PowerSGD(store: model.store, rank: 129, warmupSteps: 0, minimumSize: 4096, seed: 1)
        } throws: { error in
            "\(error)".contains("training.powersgd.rank") && "\(error)".contains("dense_1.kernel (784 x 128)")
        }
        for bad in ["rank: 0", "warmup_steps: -1", "min_size: 0", "bf16: maybe"] {
            let key = "training.powersgd." + bad.prefix { $0 != ":" }
            #expect {
                try TrainConfig.parse(yaml: ConfigTests.minimal + "\ntraining:\n  powersgd: {\(bad)}\n")
            } throws: { "\($0)".contains(key) }
        }
        let set = try TrainConfig.parse(
            yaml: ConfigTests.minimal
                + "\ntraining:\n  allreduce_compression: powersgd\n"
                + "  powersgd: {rank: 2, warmup_steps: 7, min_size: 10, bf16: true}\n"
        )
        #expect(
            set.allreduceCompression == .powersgd && set.powerSGDRank == 2 && set.powerSGDWarmupSteps == 7
                && set.powerSGDMinimumSize == 10 && set.powerSGDBF16)
        #expect(try !TrainConfig.parse(yaml: ConfigTests.minimal).powerSGDBF16)
    }

    @Test func orthonormalizesTheColumns() {
        var rng = SplitMix64(seed: 9)
        let (rows, cols) = (50, 4)
        var a = (0..<rows * cols).map { _ in rng.uniform(-1, 1) }
        for row in 0..<rows { a[row * cols + 3] = 0 }  // a column of zeros stays zero
        let scratch = UnsafeMutablePointer<Double>.allocate(capacity: rows * cols)
        defer { scratch.deallocate() }
        a.withUnsafeMutableBufferPointer {
            PowerSGD.orthonormalizeColumns($0.baseAddress!, rows: rows, cols: cols, scratch: scratch)
        }
        for i in 0..<cols {
            for j in 0..<cols {
                var dot: Float = 0
                for row in 0..<rows { dot += a[row * cols + i] * a[row * cols + j] }
                let expected: Float = i == j && i < 3 ? 1 : 0
                #expect(abs(dot - expected) < 1e-5, "columns \(i), \(j): \(dot)")
            }
        }
    }
}
