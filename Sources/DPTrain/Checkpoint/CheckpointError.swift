/// A checkpoint that cannot be used; each message names the file.
public enum CheckpointError: Error, CustomStringConvertible {
    case missing(path: String)
    case unreadable(path: String, reason: String)
    case invalid(path: String, problem: String)
    case mismatch(path: String, problem: String)
    case noneFound(directory: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .missing(let path): return "\(path): checkpoint file not found"
        case .unreadable(let path, let reason): return "\(path): cannot read checkpoint: \(reason)"
        case .invalid(let path, let problem): return "\(path): not a valid checkpoint: \(problem)"
        case .mismatch(let path, let problem): return "\(path): checkpoint of another model: \(problem)"
        case .noneFound(let directory): return "--resume: no valid checkpoint in \(directory)"
        case .writeFailed(let path, let reason):
            return "cannot write checkpoint \(path): \(reason); the previous checkpoints are untouched"
        }
    }
}
