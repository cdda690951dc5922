/// Keras's `Flatten()`: a sample of shape `h x w x c` becomes a vector of `h*w*c` values.
/// Samples are already stored row-major, so this is a view: no buffer, no copy.
public final class Flatten: Layer {
    public let name: String
    public let inputShape: [Int]
    public var outputShape: [Int] { [inputSize] }

    public init(name: String, shape: [Int]) {
        self.name = name
        self.inputShape = shape
    }

    public var aliasesInput: Bool { true }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, context: StepContext) {
    }
    public func backward(
        input: UnsafePointer<Float>, output: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
        inputGradient: UnsafeMutablePointer<Float>?, batch: Int, context: StepContext
    ) {}
}
