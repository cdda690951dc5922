import Foundation

/// The learning rate at each global step: a base rate, an optional linear warm-up, then a decay.
///
/// - `constant`: the base rate.
/// - `step`: `rate * decayRate ^ floor(t / decaySteps)` (Keras's staircase `ExponentialDecay`).
/// - `cosine`: `rate * ((1 - alpha) * (1 + cos(pi * min(t, decaySteps) / decaySteps)) / 2 + alpha)`
///   (Keras's `CosineDecay`).
///
/// With `warmupSteps = w > 0` the rate rises linearly, `rate * (t + 1) / w` for `t < w`, and the
/// decay then counts `t - w` — the warm-up Horovod recommends for large global batches.
public struct LearningRateSchedule: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable { case constant, step, cosine }

    public var kind: Kind = .constant
    public var rate: Double
    public var warmupSteps = 0
    public var decaySteps = 1
    public var decayRate = 0.5
    public var alpha = 0.0

    public init(rate: Double) { self.rate = rate }

    public func rate(step t: Int) -> Float {
        if t < warmupSteps { return Float(rate * Double(t + 1) / Double(warmupSteps)) }
        let s = Double(t - warmupSteps)
        switch kind {
        case .constant: return Float(rate)
        case .step: return Float(rate * pow(decayRate, (s / Double(decaySteps)).rounded(.down)))
        case .cosine:
            let progress = min(s, Double(decaySteps)) / Double(decaySteps)
            return Float(rate * ((1 - alpha) * 0.5 * (1 + cos(Double.pi * progress)) + alpha))
        }
    }
}
