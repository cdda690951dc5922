/// Inverted dropout (Keras's `Dropout(rate)`): in training each unit is zeroed with probability
/// `rate` and the others scaled by `1 / (1 - rate)`; in inference it passes values through.
///
/// The mask of unit `j` of a sample is a pure function of (seed, step, sample index, j), so it
/// does not depend on the world size or on which rank computes the sample.
public final class Dropout: Layer {
    public let name: String
    public let rate: Float
    public let inputShape: [Int]
    public var outputShape: [Int] { inputShape }
    private var mask = FloatBuffer(count: 0)

    public init(name: String, rate: Float, shape: [Int]) {
        self.name = name
        self.rate = rate
        self.inputShape = shape
    }

    public func prepare(capacity: Int) { mask = FloatBuffer(count: capacity * inputSize) }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, context: StepContext) {
        let n = inputSize
        guard context.training, rate > 0, let samples = context.sampleIndices else {
            y.update(from: x, count: batch * n)
            return
        }
        let scale = 1 / (1 - rate)
        let m = mask.pointer
        for r in 0..<batch {
            let key = CounterRNG.key(context.seed, UInt64(context.step), UInt64(samples[r]))
            for j in 0..<n {
                let keep: Float = CounterRNG.uniform(key: key, counter: UInt64(j)) >= rate ? scale : 0
                m[r * n + j] = keep
                y[r * n + j] = x[r * n + j] * keep
            }
        }
    }

    public func backward(
        input: UnsafePointer<Float>, output: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
        inputGradient dx: UnsafeMutablePointer<Float>?, batch: Int, context: StepContext
    ) {
        guard let dx else { return }
        let count = batch * inputSize
        if context.training && rate > 0 {
            let m = mask.pointer
            for i in 0..<count { dx[i] = dy[i] * m[i] }
        } else {
            dx.update(from: dy, count: count)
        }
    }
}
