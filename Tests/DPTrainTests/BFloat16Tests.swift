import DPTrain
import Testing

@Suite("bfloat16 wire format")
struct BFloat16Tests {
    @Test func exactValuesSurviveTheRoundTrip() {
        for value: Float in [0, -0.0, 1, -2, 0.5, 0x1p127, -0x1p-126, 3 * 0x1p100, .infinity, -.infinity, 1.0 / 128] {
            let half = BFloat16.from(value)
            #expect(BFloat16.float(half).bitPattern == value.bitPattern, "\(value)")
        }
        #expect(BFloat16.from(1) == 0x3F80)
    }

    @Test func roundsToNearestWithTiesToEven() {
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: the tie goes to the even mantissa, 1.
        #expect(BFloat16.float(BFloat16.from(1 + 0x1p-8)) == 1)
        // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
        #expect(BFloat16.float(BFloat16.from(1 + 3 * 0x1p-8)) == 1 + 0x1p-6)
        // Just above a tie rounds up, just below rounds down.
        #expect(BFloat16.float(BFloat16.from((1 + 0x1p-8).nextUp)) == 1 + 0x1p-7)
        #expect(BFloat16.float(BFloat16.from((1 + 0x1p-8).nextDown)) == 1)
        // The largest float rounds to infinity, as float32 arithmetic would.
        #expect(BFloat16.float(BFloat16.from(.greatestFiniteMagnitude)) == .infinity)
        // Half a unit in the last of 8 significant bits: relative error at most 2^-8.
        var x: Float = 1.0e-30
        while x < 1.0e30 {
            let y = BFloat16.float(BFloat16.from(x))
            #expect(abs(y - x) <= x * 0x1p-8, "\(x) -> \(y)")
            x *= 3.7
        }
    }

    @Test func nanStaysNaN() {
        // A NaN whose payload lives only in the low 16 bits would truncate to infinity.
        let lowPayload = Float(bitPattern: 0x7F80_0001)
        #expect(lowPayload.isNaN)
        #expect(BFloat16.float(BFloat16.from(lowPayload)).isNaN)
        #expect(BFloat16.float(BFloat16.from(-Float.nan)).isNaN)
    }

    @Test func compressAddDecompress() {
        let a: [Float] = [1, -2.5, 0.1, 1000]
        let b: [Float] = [0.5, 2.5, 0.2, 1]
        var ha = [UInt16](repeating: 0, count: 4), hb = ha
        BFloat16.compress(a, into: &ha, range: 0..<4)
        BFloat16.compress(b, into: &hb, range: 0..<4)
        BFloat16.add(hb, into: &ha, count: 4)
        var sum = [Float](repeating: .nan, count: 4)
        BFloat16.decompress(ha, into: &sum, range: 0..<4)
        #expect(sum[0] == 1.5 && sum[1] == 0)
        #expect(abs(sum[2] - 0.3) <= 0.3 * 0x1p-7)
        // 1001 needs 10 significant bits; bfloat16 keeps 8: it rounds to 1000.
        #expect(sum[3] == 1000)
    }
}
