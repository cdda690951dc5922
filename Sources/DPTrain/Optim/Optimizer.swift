/// Updates the flat parameter buffer from the flat (already averaged) gradient buffer.
/// Every rank calls `step` with identical inputs, so every replica stays identical.
public protocol Optimizer: AnyObject {
    /// How many updates have been applied.
    var iterations: Int { get set }
    /// Named state buffers (e.g. Adam's `m` and `v`), each `parameterCount` long, for checkpoints.
    var state: [(name: String, buffer: FloatBuffer)] { get }
    /// Applies one update with learning rate `learningRate`. Returns false when some gradient
    /// was NaN or infinite (checked in the same pass, so it costs no extra memory traffic); the
    /// parameters are then no longer trustworthy and training must stop.
    @discardableResult
    func step(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, count: Int, learningRate: Float) -> Bool
}
