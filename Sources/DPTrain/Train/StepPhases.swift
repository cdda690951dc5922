import Foundation

/// Seconds spent in each phase of one training step on this rank: gather, forward and backward
/// are the first worker's own; allreduce is the rest of the wait for the slowest worker (thread or
/// rank) and the sum over workers and ranks; optimizer the update. Together, the step.
public struct StepPhases: Sendable {
    public var gather = 0.0, forward = 0.0, backward = 0.0, allreduce = 0.0, optimizer = 0.0
    public static let names = ["gather", "forward", "backward", "allreduce", "optimizer"]
    public var values: [Double] { [gather, forward, backward, allreduce, optimizer] }
}

/// Successive intervals from a monotonic clock.
struct PhaseClock {
    private var last = DispatchTime.now().uptimeNanoseconds
    mutating func lap() -> Double {
        let now = DispatchTime.now().uptimeNanoseconds
        defer { last = now }
        return Double(now - last) * 1e-9
    }
}
