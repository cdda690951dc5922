/// Training that cannot go on.
public enum TrainingError: Error, CustomStringConvertible {
    case nonFinite(step: Int, epoch: Int)
    case replicasDiverged(step: Int, ranks: [Int])

    public var description: String {
        switch self {
        case .nonFinite(let step, let epoch):
            return "the loss or gradient became non-finite (NaN or infinity) at global step \(step) (epoch \(epoch)); "
                + "no checkpoint of this state was written. Lower optimizer.learning_rate, or set training.on_nonfinite: skip"
        case .replicasDiverged(let step, let ranks):
            return
                "after global step \(step) the parameters of rank(s) \(ranks.map(String.init).joined(separator: ", ")) differ from rank 0's (replicas diverged)"
        }
    }
}
