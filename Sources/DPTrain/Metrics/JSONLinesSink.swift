import Foundation

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
