/// Sends every event to each of several sinks.
public final class MetricsFanout: MetricsSink {
    let sinks: [any MetricsSink]
    public init(_ sinks: [any MetricsSink]) { self.sinks = sinks }
    public func write(_ event: String, _ fields: [(String, JSONValue)]) {
        for sink in sinks { sink.write(event, fields) }
    }
}
