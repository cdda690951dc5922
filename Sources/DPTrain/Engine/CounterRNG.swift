/// Counter-based randomness: a value is a pure function of its key (seed, step, sample index,
/// unit), so dropout masks and shuffles do not depend on how many ranks share the work or in what
/// order they compute.
public enum CounterRNG {
    /// SplitMix64's finaliser: a bijective 64-bit mixer with full avalanche.
    @inline(__always)
    public static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0 &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A 64-bit key from three words.
    @inline(__always)
    public static func key(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> UInt64 {
        mix(mix(mix(a) ^ b) ^ c)
    }

    /// A uniform float in [0, 1) for (key, counter).
    @inline(__always)
    public static func uniform(key: UInt64, counter: UInt64) -> Float {
        Float(mix(key ^ (counter &* 0xD1B5_4A32_D192_ED03)) >> 40) * (1.0 / 16_777_216.0)
    }
}

/// A small seeded generator (SplitMix64) for initialisation and shuffling.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in 0..<bound without modulo bias (Lemire's method).
    public mutating func next(below bound: UInt64) -> UInt64 {
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = next().multipliedFullWidth(by: bound) }
        }
        return m.high
    }

    /// Uniform float in [lo, hi).
    public mutating func uniform(_ lo: Float, _ hi: Float) -> Float {
        lo + (hi - lo) * Float(next() >> 40) * (1.0 / 16_777_216.0)
    }
}
