/// Whether a float buffer holds only finite values, checked on the exponent bits so the loop
/// vectorises (an integer max reduction).
public enum FiniteCheck {
    public static func allFinite(_ p: UnsafePointer<Float>, count: Int) -> Bool {
        var worst: UInt32 = 0
        p.withMemoryRebound(to: UInt32.self, capacity: count) { bits in
            for i in 0..<count { worst = max(worst, bits[i] & 0x7F80_0000) }
        }
        return worst != 0x7F80_0000
    }
}
