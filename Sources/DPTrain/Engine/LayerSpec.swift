/// One layer as the config file describes it, before it is built. `l2` is Keras's
/// `kernel_regularizer=l2(lambda)`: it adds `lambda * sum(kernel^2)` to the loss.
public enum LayerSpec: Equatable, Sendable {
    case flatten
    case dense(units: Int, activation: ActivationKind, l2: Float)
    case conv2d(filters: Int, kernel: Int, stride: Int, padding: Conv2D.Padding, activation: ActivationKind, l2: Float)
    case maxPooling2d(pool: Int, stride: Int)
    case dropout(rate: Float)
    case activation(ActivationKind)
}
