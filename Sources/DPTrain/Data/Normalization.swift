/// How a data set's stored values become a model's inputs when a batch is gathered (Keras
/// tutorials do it by hand: `x / 255`, or a `Normalization` layer adapted to the training data).
public enum Normalization: Sendable, Equatable {
    /// Values as stored (float data's default).
    case none
    /// `x / 255` (byte data's default: pixels to [0, 1]).
    case scale
    /// `(x - mean) / std` per feature, from the training part alone; stored in checkpoints, so
    /// `eval` and `predict` apply the same.
    case standardize(mean: [Float], std: [Float])

    /// The names a config's `data.normalize` takes.
    public enum Kind: String, Sendable, CaseIterable { case none, scale, standardize }

    public var kind: Kind {
        switch self {
        case .none: return .none
        case .scale: return .scale
        case .standardize: return .standardize
        }
    }

    /// Per-feature mean and standard deviation of `data` (in Float64), a constant feature's
    /// deviation taken as 1 so it maps to 0.
    public static func standardizing(_ data: Dataset) -> Normalization {
        let d = data.sampleSize, n = max(data.count, 1)
        var sum = [Double](repeating: 0, count: d), squares = [Double](repeating: 0, count: d)
        for i in 0..<data.count {
            for j in 0..<d {
                let v = Double(data.storedValue(sample: i, feature: j))
                sum[j] += v
                squares[j] += v * v
            }
        }
        let mean = sum.map { $0 / Double(n) }
        let std = (0..<d).map { j -> Double in
            let variance = max(squares[j] / Double(n) - mean[j] * mean[j], 0)
            return variance > 1e-24 ? variance.squareRoot() : 1
        }
        return .standardize(mean: mean.map(Float.init), std: std.map(Float.init))
    }
}
