import Foundation

/// Where rank 0 sends metrics events (`step`, `epoch`, `eval`, `checkpoint`, `summary`), each
/// with named fields. Writers must not throw: a metrics problem never stops training.
public protocol MetricsSink: AnyObject {
    func write(_ event: String, _ fields: [(String, JSONValue)])
}
