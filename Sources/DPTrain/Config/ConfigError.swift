/// A config file or flag that cannot be used. Each message names the key or flag and says what
/// is wrong with it.
public enum ConfigError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case syntax(path: String, reason: String)
    case unknownKey(key: String, allowed: [String])
    case missing(key: String)
    case wrongType(key: String, expected: String, found: String)
    case invalid(key: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): return "config \(path): cannot read: \(reason)"
        case .syntax(let path, let reason): return "config \(path): not valid YAML: \(reason)"
        case .unknownKey(let key, let allowed):
            return "config key '\(key)' is not known; allowed here: \(allowed.sorted().joined(separator: ", "))"
        case .missing(let key): return "config key '\(key)' is required"
        case .wrongType(let key, let expected, let found):
            return "config key '\(key)' must be \(expected), found \(found)"
        case .invalid(let key, let reason): return "'\(key)': \(reason)"
        }
    }
}
