import Foundation

/// One JSON value of a metrics event. Non-finite numbers are written as `null` (JSON has no NaN).
public enum JSONValue: Sendable, Equatable {
    case number(Double), int(Int), string(String), bool(Bool), array([JSONValue]), object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool { a.encoded == b.encoded }

    public var encoded: String {
        switch self {
        case .number(let d): return d.isFinite ? "\(d)" : "null"
        case .int(let i): return "\(i)"
        case .bool(let b): return b ? "true" : "false"
        case .string(let s): return JSONValue.quote(s)
        case .array(let a): return "[" + a.map(\.encoded).joined(separator: ",") + "]"
        case .object(let o): return "{" + o.map { JSONValue.quote($0.0) + ":" + $0.1.encoded }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}

/// Where rank 0 sends metrics events (`step`, `epoch`, `eval`, `checkpoint`, `summary`), each
/// with named fields. Writers must not throw: a metrics problem never stops training.
public protocol MetricsSink: AnyObject {
    func write(_ event: String, _ fields: [(String, JSONValue)])
}

/// Sends every event to each of several sinks.
public final class MetricsFanout: MetricsSink {
    let sinks: [any MetricsSink]
    public init(_ sinks: [any MetricsSink]) { self.sinks = sinks }
    public func write(_ event: String, _ fields: [(String, JSONValue)]) {
        for sink in sinks { sink.write(event, fields) }
    }
}

/// Writes metrics as JSON Lines: one object per event, `event` first, flushed per line so a
/// crashed run keeps everything up to the crash.
public final class JSONLinesSink: MetricsSink {
    private let handle: FileHandle
    public let path: String

    public init(path: String) throws {
        self.path = path
        let url = URL(fileURLWithPath: path)
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw ConfigError.invalid(key: "--metrics-file", reason: "cannot create \(path)")
        }
        handle = try FileHandle(forWritingTo: url)
    }

    deinit { try? handle.close() }

    public func write(_ event: String, _ fields: [(String, JSONValue)]) {
        let line = JSONValue.object([("event", .string(event))] + fields).encoded + "\n"
        handle.write(Data(line.utf8))
    }
}
