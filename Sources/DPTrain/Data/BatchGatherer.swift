import CPrefetch

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

    /// Asks the CPU to start loading the samples `order[positions]` into its caches, without
    /// waiting for them: issued for the next step's samples, which lie at random places in a data
    /// set larger than the caches, it hides their memory latency behind this step's work.
    public static func prefetch(_ data: Dataset, order: UnsafePointer<Int32>, positions: Range<Int>) {
        let d = data.sampleSize
        data.images.withUnsafeBufferPointer { images in
            for position in positions {
                let sample = images.baseAddress! + Int(order[position]) * d
                for offset in stride(from: 0, to: d, by: 64) { dptrain_prefetch(sample + offset) }
                dptrain_prefetch(sample + d - 1)
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
