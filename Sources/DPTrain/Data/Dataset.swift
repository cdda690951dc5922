import Foundation

/// Labelled samples: each a row-major array of `sampleShape` values stored as bytes or as
/// Float32 in a `DataBuffer` (memory of this process, or a file mapped read-only and shared
/// with the other ranks of the machine), and a class id. Values become model inputs only when a
/// batch is gathered, through `normalization`. A subset shares the buffer: nothing is copied.
public struct Dataset: Sendable {
    /// How each value is stored.
    public enum Element: String, Sendable { case uint8, float32 }

    public let buffer: DataBuffer
    /// Where sample 0 starts in `buffer`.
    public let offset: Int
    public let element: Element
    /// The shape of one sample: `[height, width, channels]` for images, `[features]` for a table.
    public let sampleShape: [Int]
    public let labels: [Int32]
    public let numClasses: Int
    /// Applied when a batch is gathered.
    public var normalization: Normalization
    /// When the labels were names (a CSV column of words): the name of each class id.
    public var classNames: [String]?
    /// SHA-256 of each source file's raw IDX bytes by file stem (`train-images-idx3-ubyte`, ...);
    /// filled only when asked (`DataLoader`, for MNIST's provenance line).
    public var sourceDigests: [String: String] = [:]
    /// How the samples were obtained when that is worth saying (a CSV table: parsed, or read
    /// from the cache of parsed tables; see `CSVCache`).
    public var origin: String?
    /// The files the samples come from, for messages.
    public var source: String

    public var count: Int { labels.count }
    public var sampleSize: Int { sampleShape.reduce(1, *) }
    var elementSize: Int { element == .uint8 ? 1 : 4 }
    /// The first byte of sample 0.
    var base: UnsafeRawPointer { buffer.base + offset }

    /// `labels.count` samples of `element` values from `offset` on in `buffer`, which must hold them.
    public init(
        buffer: DataBuffer, offset: Int = 0, element: Element, sampleShape: [Int], labels: [Int32], numClasses: Int,
        normalization: Normalization? = nil, source: String
    ) {
        precondition(
            offset + labels.count * sampleShape.reduce(1, *) * (element == .uint8 ? 1 : 4) <= buffer.count,
            "samples and labels disagree")
        self.buffer = buffer
        self.offset = offset
        self.element = element
        self.sampleShape = sampleShape
        self.labels = labels
        self.numClasses = numClasses
        self.normalization = normalization ?? (element == .uint8 ? .scale : .none)
        self.source = source
    }

    /// Byte images in memory (tests and tools), scaled to [0, 1] when gathered.
    public init(images: [UInt8], labels: [UInt8], imageShape: [Int], numClasses: Int) {
        self.init(
            buffer: DataBuffer(images), element: .uint8, sampleShape: imageShape, labels: labels.map(Int32.init),
            numClasses: numClasses, source: "memory")
    }

    /// Float32 samples in memory (tables, tests).
    public init(features: [Float], labels: [Int32], sampleShape: [Int], numClasses: Int, source: String) {
        let buffer = DataBuffer(count: features.count * 4) { region in
            features.withUnsafeBytes { region.copyMemory(from: $0) }
        }
        self.init(
            buffer: buffer, element: .float32, sampleShape: sampleShape, labels: labels, numClasses: numClasses,
            source: source)
    }

    /// The samples `range` of this data set, in order, sharing its buffer.
    public func subset(_ range: Range<Int>) -> Dataset {
        var d = Dataset(
            buffer: buffer, offset: offset + range.lowerBound * sampleSize * elementSize, element: element,
            sampleShape: sampleShape, labels: Array(labels[range]), numClasses: numClasses,
            normalization: normalization, source: source)
        d.classNames = classNames
        d.origin = origin
        return d
    }

    /// The same samples with labels mapped through `f` into `0..<classes`.
    public func relabeled(classes: Int, _ f: (Int32) -> Int32) -> Dataset {
        var d = Dataset(
            buffer: buffer, offset: offset, element: element, sampleShape: sampleShape, labels: labels.map(f),
            numClasses: classes, normalization: normalization, source: source)
        d.sourceDigests = sourceDigests
        return d
    }

    /// Value `feature` of sample `sample` as stored (before normalisation).
    @inline(__always)
    public func storedValue(sample: Int, feature: Int) -> Float {
        let i = sample * sampleSize + feature
        return element == .uint8
            ? Float(base.load(fromByteOffset: i, as: UInt8.self)) : base.load(fromByteOffset: 4 * i, as: Float.self)
    }

    /// Sample `sample` as the model sees it (normalised), for tools.
    public func input(_ sample: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: sampleSize) { out, n in
            BatchGatherer.write(self, sample: sample, into: out.baseAddress!)
            n = sampleSize
        }
    }

    /// The classes the labels number: the training split's, which its test split and a
    /// checkpoint's evaluation take.
    public var classes: Classes { Classes(count: numClasses, names: classNames) }

    /// Which half of a data set a file holds.
    public enum Split: String, Sendable {
        case train, test
    }
}

/// How many classes the labels of a data set number, and their names when the labels were names
/// (a CSV column of words): what a test split and a checkpoint must agree on with training.
public struct Classes: Sendable, Equatable {
    public var count: Int
    public var names: [String]?

    public init(count: Int, names: [String]? = nil) {
        self.count = count
        self.names = names
    }
}
