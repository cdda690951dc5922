import Foundation

/// A mapping read from YAML that remembers which keys were read, so unknown keys become
/// errors naming them (a typo must not silently fall back to a default).
struct YAMLNode {
    let path: String
    let values: [String: Any]
    private(set) var used: Set<String> = []

    init(path: String, values: [String: Any]) {
        self.path = path
        self.values = values
    }

    init(path: String, any: Any?) throws {
        guard let map = any as? [String: Any] else {
            throw ConfigError.wrongType(key: path, expected: "a mapping", found: YAMLNode.describe(any))
        }
        self.init(path: path, values: map)
    }

    func key(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    static func describe(_ value: Any?) -> String {
        switch value {
        case nil, is NSNull: return "nothing"
        case let s as String: return "the string '\(s)'"
        case is Bool: return "a boolean"
        case let i as Int: return "the number \(i)"
        case let d as Double: return "the number \(d)"
        case is [Any]: return "a list"
        case is [String: Any]: return "a mapping"
        default: return "\(value!)"
        }
    }

    mutating func raw(_ name: String) -> Any? {
        used.insert(name)
        if let v = values[name], !(v is NSNull) { return v }
        return nil
    }

    mutating func int(_ name: String) throws -> Int? {
        guard let v = raw(name) else { return nil }
        if let i = v as? Int { return i }
        if let d = v as? Double, d == d.rounded(), abs(d) < 1e15 { return Int(d) }
        throw ConfigError.wrongType(key: key(name), expected: "a whole number", found: Self.describe(v))
    }

    mutating func double(_ name: String) throws -> Double? {
        guard let v = raw(name) else { return nil }
        if let d = v as? Double { return d }
        if let i = v as? Int { return Double(i) }
        if let s = v as? String, let d = Double(s) { return d }  // YAML 1.1 reads 1e-3 as a string
        throw ConfigError.wrongType(key: key(name), expected: "a number", found: Self.describe(v))
    }

    mutating func bool(_ name: String) throws -> Bool? {
        guard let v = raw(name) else { return nil }
        if let b = v as? Bool { return b }
        throw ConfigError.wrongType(key: key(name), expected: "true or false", found: Self.describe(v))
    }

    mutating func string(_ name: String) throws -> String? {
        guard let v = raw(name) else { return nil }
        if let s = v as? String { return s }
        throw ConfigError.wrongType(key: key(name), expected: "a string", found: Self.describe(v))
    }

    mutating func node(_ name: String) throws -> YAMLNode? {
        guard let v = raw(name) else { return nil }
        return try YAMLNode(path: key(name), any: v)
    }

    mutating func list(_ name: String) throws -> [Any]? {
        guard let v = raw(name) else { return nil }
        if let l = v as? [Any] { return l }
        throw ConfigError.wrongType(key: key(name), expected: "a list", found: Self.describe(v))
    }

    /// Throws for the first key that was never read.
    func finish() throws {
        if let unknown = values.keys.sorted().first(where: { !used.contains($0) }) {
            throw ConfigError.unknownKey(key: key(unknown), allowed: Array(used))
        }
    }
}
