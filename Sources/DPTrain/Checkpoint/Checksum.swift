import Foundation

/// Checksums: 64-bit FNV-1a over bytes (cheap, stable across platforms, good enough to tell
/// replicas apart) and the hex form of cryptographic digests.
public enum Checksum {
    public static func fnv1a(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 {
        var h = seed
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        return h
    }

    /// Lower-case hex of a digest's bytes (SHA-256 sums as published).
    public static func hex(_ digest: some Sequence<UInt8>) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
