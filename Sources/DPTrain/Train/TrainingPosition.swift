/// Where training stands: enough to continue at the exact next sample, at any world size.
public struct TrainingPosition: Sendable, Equatable {
    /// Global steps completed.
    public var step = 0
    /// The epoch in progress (0-based) and the steps of it already done.
    public var epoch = 0
    public var stepInEpoch = 0
    /// Running sums of the epoch in progress, so its reported loss and accuracy survive a resume.
    public var epochLossSum = 0.0
    public var epochCorrect = 0.0
    public var epochSamples = 0
    /// Optimizer updates applied.
    public var optimizerIterations = 0
    /// Early-stopping state.
    public var bestValidationLoss = Double.infinity
    public var epochsWithoutImprovement = 0
    /// Steps skipped because their loss or gradient was not finite.
    public var skippedSteps = 0

    public init() {}

    /// As doubles, for one broadcast from rank 0 (every value is exact in a double).
    var packed: [Double] {
        [
            Double(step), Double(epoch), Double(stepInEpoch), epochLossSum, epochCorrect, Double(epochSamples),
            Double(optimizerIterations), bestValidationLoss, Double(epochsWithoutImprovement), Double(skippedSteps),
        ]
    }

    init(packed p: [Double]) {
        step = Int(p[0]); epoch = Int(p[1]); stepInEpoch = Int(p[2])
        epochLossSum = p[3]; epochCorrect = p[4]; epochSamples = Int(p[5])
        optimizerIterations = Int(p[6]); bestValidationLoss = p[7]
        epochsWithoutImprovement = Int(p[8]); skippedSteps = Int(p[9])
    }
}
