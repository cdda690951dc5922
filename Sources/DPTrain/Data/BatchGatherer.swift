import CPrefetch

/// Copies samples from a data set into a model's Float32 input, normalising them on the way
/// (`Dataset.normalization`), so stored values stay bytes or floats in their buffer and no
/// per-step buffer is allocated.
public enum BatchGatherer {
    /// Gathers the samples `order[positions]` into `input` (row-major), their labels into
    /// `labels` and their data-set indices into `sampleIndices`.
    @inline(__always)
    public static func gather(
        _ data: Dataset, order: UnsafePointer<Int32>, positions: Range<Int>,
        into input: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>,
        sampleIndices: UnsafeMutablePointer<Int32>
    ) {
        let d = data.sampleSize
        data.labels.withUnsafeBufferPointer { allLabels in
            for (row, position) in positions.enumerated() {
                let index = Int(order[position])
                write(data, sample: index, into: input + row * d)
                labels[row] = allLabels[index]
                sampleIndices[row] = Int32(index)
            }
        }
    }

    /// Gathers the consecutive samples `indices` (for evaluation).
    public static func gather(
        _ data: Dataset, indices: Range<Int>, into input: UnsafeMutablePointer<Float>, labels: inout [Int32]
    ) {
        let d = data.sampleSize
        for (row, index) in indices.enumerated() {
            write(data, sample: index, into: input + row * d)
            labels[row] = data.labels[index]
        }
    }

    /// Writes sample `sample` of `data`, normalised, as `data.sampleSize` floats at `dst`.
    @inline(__always)
    static func write(_ data: Dataset, sample: Int, into dst: UnsafeMutablePointer<Float>) {
        let d = data.sampleSize
        let src = data.base + sample * d * data.elementSize
        switch (data.element, data.normalization) {
        case (.uint8, .scale):
            let bytes = src.assumingMemoryBound(to: UInt8.self), scale: Float = 1 / 255
            for j in 0..<d { dst[j] = Float(bytes[j]) * scale }
        case (.uint8, .none):
            let bytes = src.assumingMemoryBound(to: UInt8.self)
            for j in 0..<d { dst[j] = Float(bytes[j]) }
        case (.float32, .none):
            dst.update(from: src.assumingMemoryBound(to: Float.self), count: d)
        case (.float32, .scale):
            let values = src.assumingMemoryBound(to: Float.self), scale: Float = 1 / 255
            for j in 0..<d { dst[j] = values[j] * scale }
        case (.uint8, .standardize(let mean, let std)):
            let bytes = src.assumingMemoryBound(to: UInt8.self)
            for j in 0..<d { dst[j] = (Float(bytes[j]) - mean[j]) / std[j] }
        case (.float32, .standardize(let mean, let std)):
            let values = src.assumingMemoryBound(to: Float.self)
            for j in 0..<d { dst[j] = (values[j] - mean[j]) / std[j] }
        }
    }

    /// Asks the CPU to start loading the samples `order[positions]` into its caches, without
    /// waiting for them: issued for the next step's samples, which lie at random places in a data
    /// set larger than the caches, it hides their memory latency behind this step's work.
    public static func prefetch(_ data: Dataset, order: UnsafePointer<Int32>, positions: Range<Int>) {
        let bytes = data.sampleSize * data.elementSize
        for position in positions {
            let sample = data.base + Int(order[position]) * bytes
            for offset in stride(from: 0, to: bytes, by: 64) { dptrain_prefetch(sample + offset) }
            dptrain_prefetch(sample + bytes - 1)
        }
    }
}
