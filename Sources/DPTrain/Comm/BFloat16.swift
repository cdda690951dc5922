/// bfloat16: the top 16 bits of a float32 (its 8 exponent bits and 7 of its 23 mantissa bits),
/// rounded to nearest, ties to even; NaN stays NaN, infinities stay infinite. The gradient's wire
/// format when the allreduce is compressed (`AllreduceCompression.bf16`): half the bytes, the
/// float32 range, 8 significant bits (2-3 decimal digits).
public enum BFloat16 {
    @inline(__always)
    public static func from(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if bits & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(bits >> 16) | 0x0040 }  // NaN: keep it a (quiet) NaN
        return UInt16((bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    @inline(__always)
    public static func float(_ half: UInt16) -> Float { Float(bitPattern: UInt32(half) << 16) }

    public static func compress(
        _ values: UnsafePointer<Float>, into halves: UnsafeMutablePointer<UInt16>, range: Range<Int>
    ) {
        for i in range { halves[i] = from(values[i]) }
    }

    public static func decompress(
        _ halves: UnsafePointer<UInt16>, into values: UnsafeMutablePointer<Float>, range: Range<Int>
    ) {
        for i in range { values[i] = float(halves[i]) }
    }

    /// `accumulated[i] = bf16(float(accumulated[i]) + float(incoming[i]))`: the sum MPI applies
    /// at each step of its reduction (commutative, so MPI may pair ranks as it likes).
    public static func add(
        _ incoming: UnsafePointer<UInt16>, into accumulated: UnsafeMutablePointer<UInt16>, count: Int
    ) {
        for i in 0..<count { accumulated[i] = from(float(accumulated[i]) + float(incoming[i])) }
    }
}

/// The allreduce's wire format for gradients: `none` sums them exactly as float32 (the default,
/// and what makes layouts agree bit for bit); `bf16` sends them as bfloat16, half the bytes,
/// for links slow enough that the allreduce dominates a step (Horovod's `Compression.fp16` and
/// PyTorch's `bf16_compress_hook` make the same trade). With bf16 each gradient sum keeps
/// 8 significant bits, and results depend on how MPI pairs the ranks; the step's loss and
/// counts still travel as float32.
public enum AllreduceCompression: String, Sendable, CaseIterable {
    /// float32; bfloat16; PowerSGD's low-rank factors of the large matrices (`PowerSGD`).
    case none, bf16, powersgd
}
