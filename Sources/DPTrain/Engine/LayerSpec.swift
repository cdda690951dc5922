/// One layer as the config file describes it, before it is built.
public enum LayerSpec: Equatable, Sendable {
    case flatten
    case dense(units: Int, activation: ActivationKind)
    case dropout(rate: Float)
    case activation(ActivationKind)
}
