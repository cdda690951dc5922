import Testing

@testable import DPTrain

/// How the gradient is cut into the buckets that travel while backward runs.
struct BucketTests {
    /// From the gradient's end (the order backward finishes it), each of the size asked for but
    /// the last, which holds the first layers' parameters; together they cover the gradient once.
    @Test func bucketsCoverTheGradientFromItsEnd() {
        #expect(
            OverlappedExchange.buckets(parameters: 693_962, bucketFloats: 262_144) == [
                431_818..<693_962, 169_674..<431_818, 0..<169_674,
            ])
        #expect(OverlappedExchange.buckets(parameters: 40, bucketFloats: 20) == [20..<40, 0..<20])
        #expect(OverlappedExchange.buckets(parameters: 40, bucketFloats: 100) == [0..<40])
    }
}
