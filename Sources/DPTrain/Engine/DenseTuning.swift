/// Which of its products a `Dense` layer computes its own way instead of with sgemm.
///
/// The defaults (`forThisBuild`) follow the vector width this build was compiled for
/// (`InstructionSet.compiled`): each is where the layer's own product measured faster than
/// OpenBLAS's sgemm at a worker's 16-64 rows, one thread, on the MLP's and the CNN's Dense layers
/// (784 -> 128 and 5408 -> 128; `swift run -c release dptrain-kernels` reruns the sweep, and
/// docs/PERFORMANCE.md has the figures). MNIST's images are 19% nonzero; the CNN's Dense layer
/// reads max-pooled ReLU maps, 50% nonzero at the start, 40-45% after an epoch at batch 128 and
/// 30% after a few thousand steps.
public struct DenseTuning: Sendable, Equatable {
    /// The largest fraction of nonzero inputs for which the forward pass multiplies only the
    /// nonzero ones (`SparseRows`; 0: never).
    public var forwardDensityLimit: Double
    /// The same for the kernel gradient, which first lists the entries column by column and so
    /// pays at lower densities; it goes sparse up to the smaller of the two limits.
    public var kernelGradientDensityLimit: Double
    /// Whether a layer of 16 units or more computes its input gradient with
    /// `DenseInputGradient` (16 rows in the lanes of one vector, input columns zero in a whole
    /// group left out after a ReLU) instead of sgemm.
    public var ownInputGradient: Bool

    public init(forwardDensityLimit: Double, kernelGradientDensityLimit: Double, ownInputGradient: Bool) {
        self.forwardDensityLimit = forwardDensityLimit
        self.kernelGradientDensityLimit = kernelGradientDensityLimit
        self.ownInputGradient = ownInputGradient
    }

    /// Every product an sgemm, as in the floor program (the model's dense mode).
    public static let sgemmOnly = DenseTuning(
        forwardDensityLimit: 0, kernelGradientDensityLimit: 0, ownInputGradient: false)

    /// Measured break-evens, by the compiled vector width:
    /// - 512 bits (Zen 4): the sparse forward product wins up to 45% nonzero, the kernel
    ///   gradient up to 35%; `DenseInputGradient` takes 0.7x sgemm's time at 16 rows.
    /// - 256 bits (AVX2, Zen 3): the forward product wins up to 40% on the CNN's layer at 16-32
    ///   rows (0.84-0.93x) and loses 4-5% there at 64 rows, while the MLP's layer wins up to
    ///   60%; the kernel gradient wins up to 35% everywhere. `DenseInputGradient` takes 1.4-2.4x
    ///   sgemm's time: its 16-lane vectors are two registers each.
    /// - 128 bits (SSE2, a portable build): both break even near 20%; sgemm keeps the input
    ///   gradient.
    public static let forThisBuild: DenseTuning = {
        switch InstructionSet.compiled.vectorBits {
        case 512:
            return DenseTuning(forwardDensityLimit: 0.45, kernelGradientDensityLimit: 0.35, ownInputGradient: true)
        case 256:
            return DenseTuning(forwardDensityLimit: 0.4, kernelGradientDensityLimit: 0.35, ownInputGradient: false)
        default: return DenseTuning(forwardDensityLimit: 0.2, kernelGradientDensityLimit: 0.2, ownInputGradient: false)
        }
    }()
}
