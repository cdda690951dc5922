import Foundation

/// Labelled images held as bytes (one byte per pixel, as on disk), normalised to [0, 1] only
/// when a batch is gathered. Samples are row-major `height x width x channels`.
public struct Dataset: Sendable {
    public let images: [UInt8]
    public let labels: [UInt8]
    /// Height, width, channels.
    public let imageShape: [Int]
    public let numClasses: Int
    /// SHA-256 of each source file's raw IDX bytes by file stem (`train-images-idx3-ubyte`, ...);
    /// filled only by `load(..., digest: true)`.
    public var sourceDigests: [String: String] = [:]

    public var count: Int { labels.count }
    public var sampleSize: Int { imageShape.reduce(1, *) }

    public init(images: [UInt8], labels: [UInt8], imageShape: [Int], numClasses: Int) {
        precondition(images.count == labels.count * imageShape.reduce(1, *), "images and labels disagree")
        self.images = images
        self.labels = labels
        self.imageShape = imageShape
        self.numClasses = numClasses
    }

    /// The samples `range` of this data set, in order.
    public func subset(_ range: Range<Int>) -> Dataset {
        let s = sampleSize
        return Dataset(images: Array(images[range.lowerBound * s..<range.upperBound * s]),
                       labels: Array(labels[range]), imageShape: imageShape, numClasses: numClasses)
    }

    /// The same images with labels mapped through `f` into `0..<classes`.
    public func relabeled(classes: Int, _ f: (UInt8) -> UInt8) -> Dataset {
        var d = Dataset(images: images, labels: labels.map(f), imageShape: imageShape, numClasses: classes)
        d.sourceDigests = sourceDigests
        return d
    }

    /// Which half of an MNIST-format directory to read.
    public enum Split: String, Sendable {
        case train, test
        var imagesStem: String { self == .train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte" }
        var labelsStem: String { self == .train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte" }
    }

    /// Reads `split` from an MNIST-format directory: the raw IDX file or its `.gz`, whichever is
    /// there (raw first). Validates shapes, counts and label range (`0..<numClasses`).
    /// `limit` keeps only the first `limit` samples; `digest` fills `sourceDigests` (whole files).
    public static func load(directory: String, split: Split, numClasses: Int = 10, limit: Int? = nil, digest: Bool = false) throws -> Dataset {
        let imagesPath = try locate(directory: directory, stem: split.imagesStem)
        let labelsPath = try locate(directory: directory, stem: split.labelsStem)
        let imageFile = try IDXFile.read(path: imagesPath)
        let labelFile = try IDXFile.read(path: labelsPath)
        var data = try make(images: imageFile, labels: labelFile, numClasses: numClasses, limit: limit)
        if digest { data.sourceDigests = [split.imagesStem: imageFile.sha256, split.labelsStem: labelFile.sha256] }
        return data
    }

    /// Builds a data set from parsed IDX files, validating them against each other.
    public static func make(images: IDXFile, labels: IDXFile, numClasses: Int, limit: Int? = nil) throws -> Dataset {
        guard images.dimensions.count == 3 || images.dimensions.count == 4 else {
            throw DataError.wrongRank(path: images.path, expected: 3, found: images.dimensions.count)
        }
        guard labels.dimensions.count == 1 else {
            throw DataError.wrongRank(path: labels.path, expected: 1, found: labels.dimensions.count)
        }
        let imageCount = images.dimensions[0]
        guard imageCount == labels.dimensions[0] else {
            throw DataError.countMismatch(images: images.path, imageCount: imageCount,
                                          labels: labels.path, labelCount: labels.dimensions[0])
        }
        for (i, label) in labels.bytes.enumerated() where Int(label) >= numClasses {
            throw DataError.labelOutOfRange(path: labels.path, index: i, value: Int(label), classes: numClasses)
        }
        let shape = images.dimensions.count == 4 ? Array(images.dimensions[1...]) : Array(images.dimensions[1...]) + [1]
        let n = min(imageCount, limit ?? imageCount)
        guard n > 0 else { throw DataError.noSamples(what: images.path) }
        let sampleSize = shape.reduce(1, *)
        return Dataset(images: n == imageCount ? images.bytes : Array(images.bytes[0..<n * sampleSize]),
                       labels: n == imageCount ? labels.bytes : Array(labels.bytes[0..<n]),
                       imageShape: shape, numClasses: numClasses)
    }

    /// The paths `load` would read for `split` in `directory`, those that are there (for
    /// `IDXPrefetch`; a missing one is `load`'s to report).
    public static func paths(directory: String, split: Split) -> [String] {
        [split.imagesStem, split.labelsStem].compactMap { try? locate(directory: directory, stem: $0) }
    }

    /// The path of `stem` (raw) or `stem.gz` in `directory`; a missing one throws naming it and the fix.
    public static func locate(directory: String, stem: String) throws -> String {
        let raw = (directory as NSString).appendingPathComponent(stem)
        if FileManager.default.fileExists(atPath: raw) { return raw }
        if FileManager.default.fileExists(atPath: raw + ".gz") { return raw + ".gz" }
        var isDirectory: ObjCBool = false
        let hint = FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) && isDirectory.boolValue
            ? "Neither \(stem) nor \(stem).gz is in \(directory); run Launch/fetch-mnist.sh or pass --data-dir."
            : "The data directory \(directory) does not exist; run Launch/fetch-mnist.sh, set DPTRAIN_DATA or pass --data-dir."
        throw DataError.missingFile(path: raw, hint: hint)
    }
}
