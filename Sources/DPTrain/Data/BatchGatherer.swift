/// Copies samples from a byte data set into a model's Float32 input, normalising to [0, 1]
/// (x / 255) on the way, so images stay bytes in memory and no per-step buffer is allocated.
public enum BatchGatherer {
    /// Gathers the samples `order[positions]` into `input` (row-major), their labels into
    /// `labels` and their data-set indices into `sampleIndices`.
    @inline(__always)
    public static func gather(_ data: Dataset, order: UnsafePointer<Int32>, positions: Range<Int>,
                              into input: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<UInt8>,
                              sampleIndices: UnsafeMutablePointer<Int32>) {
        let d = data.sampleSize
        let scale: Float = 1 / 255
        data.images.withUnsafeBufferPointer { images in
            data.labels.withUnsafeBufferPointer { allLabels in
                for (row, position) in positions.enumerated() {
                    let index = Int(order[position])
                    let src = images.baseAddress! + index * d
                    let dst = input + row * d
                    for j in 0..<d { dst[j] = Float(src[j]) * scale }
                    labels[row] = allLabels[index]
                    sampleIndices[row] = Int32(index)
                }
            }
        }
    }

    /// Gathers the consecutive samples `indices` (for evaluation).
    public static func gather(_ data: Dataset, indices: Range<Int>, into input: UnsafeMutablePointer<Float>, labels: inout [UInt8]) {
        let d = data.sampleSize
        let scale: Float = 1 / 255
        data.images.withUnsafeBufferPointer { images in
            for (row, index) in indices.enumerated() {
                let src = images.baseAddress! + index * d
                let dst = input + row * d
                for j in 0..<d { dst[j] = Float(src[j]) * scale }
                labels[row] = data.labels[index]
            }
        }
    }
}
