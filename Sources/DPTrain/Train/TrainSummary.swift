/// What a finished run reports (every rank returns the same training figures; evaluation
/// figures are rank 0's).
public struct TrainSummary: Sendable {
    public var testLoss: Double?
    public var testAccuracy: Double?
    public var epochs: Int
    public var steps: Int
    public var epochSeconds: [Double]
    public var samplesPerSecond: Double
    public var worldSize: Int
    public var skippedSteps: Int
    public var stoppedEarly: Bool
    /// Whether the run stopped because a rank received SIGTERM, SIGINT or SIGUSR1 (see
    /// `StopSignals`); the last checkpoint, if a directory was set, holds the step it stopped at.
    public var stoppedBySignal: Bool
    public var parameterChecksum: UInt64
}
