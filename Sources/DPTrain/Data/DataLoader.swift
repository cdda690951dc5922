import Foundation

/// Reads the splits of a data set as a `DataSpec` describes them, into `Dataset`s with the same
/// sharding, validation split and evaluation whatever the format.
///
/// Features stay as stored where they can: bytes and little-endian Float32 of a raw IDX file,
/// a `.npy` file or a stored `.npz` entry are used in place, mapped; other numeric types are
/// converted to Float32 (a copy), and a NaN or infinite value is an error naming its position.
/// Labels are class ids (whole numbers from 0, one-hot rows, or a CSV column of names); the
/// class count comes from the training labels, and a test label past it is an error. Every
/// problem is one `DataError` naming the file, the position and what is wrong.
public struct DataLoader: Sendable {
    public let spec: DataSpec
    /// The directory relative names are resolved against.
    public let directory: String

    public init(spec: DataSpec, directory: String) {
        self.spec = spec
        self.directory = directory
    }

    /// `split`'s data set (nil when the config names no files for it), its first `limit` samples.
    /// A test split takes the training split's `classes` (count and names), so its ids mean the
    /// same classes. `digest` fills `sourceDigests` (IDX files: MNIST's provenance).
    public func load(
        _ split: Dataset.Split, limit: Int? = nil, classes train: Classes? = nil, digest: Bool = false
    ) throws -> Dataset? {
        guard let names = spec.files(split) else { return nil }
        guard names.count == spec.filesPerSplit else {
            throw DataError.inconsistent(
                path: names.joined(separator: ", "),
                problem:
                    "data.\(split.rawValue) names \(names.count) file(s); \(spec.resolvedFormat.rawValue) takes \(spec.filesPerSplit)"
                    + (spec.filesPerSplit == 2 ? " (features, labels)" : ""))
        }
        let paths = try names.map { try Self.locate($0, in: directory) }
        var data: Dataset
        switch spec.resolvedFormat {
        case .idx: data = try idx(images: paths[0], labels: paths[1], classes: train, digest: digest)
        case .npy:
            data = try numpy(
                features: NumPyArray.read(path: paths[0]), labels: NumPyArray.read(path: paths[1]), classes: train)
        case .npz:
            let archive = try ZipArchive(path: paths[0])
            let (x, y) = ("x_\(split.rawValue)", "y_\(split.rawValue)")
            guard let features = try archive.array(x), let labels = try archive.array(y) else {
                let arrays = archive.entries.map { $0.name.replacingOccurrences(of: ".npy", with: "") }.joined(
                    separator: ", ")
                throw DataError.inconsistent(
                    path: paths[0],
                    problem:
                        "has no \(x) and \(y) arrays (it holds \(arrays)); Keras's layout is x_train, y_train, x_test, y_test"
                )
            }
            data = try numpy(features: features, labels: labels, classes: train)
        case .csv:
            guard let label = spec.labelColumn else {
                throw DataError.inconsistent(
                    path: paths[0],
                    problem: "data.label_column must name the label column (a header name or a 0-based index)")
            }
            // Parsed once per machine: the ranks map what the first one cached.
            let table = try CSVCache.read(
                path: paths[0], label: label, featureColumns: spec.featureColumns, classNames: train?.names)
            var read = Dataset(
                buffer: table.buffer, offset: table.offset, element: .float32, sampleShape: [table.featureNames.count],
                labels: table.labels, numClasses: table.classNames?.count ?? 0, source: paths[0])
            read.classNames = table.classNames
            data = try classes(read, train)
            data.origin = table.origin
        }
        if let limit, limit < data.count { data = data.subset(0..<limit) }
        guard data.count > 0 else { throw DataError.noSamples(what: data.source) }
        return data
    }

    /// Images (or a table) and labels from two IDX files.
    func idx(images: String, labels: String, classes train: Classes?, digest: Bool) throws -> Dataset {
        let imageFile = try IDXFile.read(path: images), labelFile = try IDXFile.read(path: labels)
        guard (2...4).contains(imageFile.dimensions.count) else {
            throw DataError.wrongRank(path: images, expected: 3, found: imageFile.dimensions.count)
        }
        guard labelFile.dimensions.count == 1 else {
            throw DataError.wrongRank(path: labels, expected: 1, found: labelFile.dimensions.count)
        }
        guard imageFile.dimensions[0] == labelFile.dimensions[0] else {
            throw DataError.countMismatch(
                images: images, imageCount: imageFile.dimensions[0], labels: labels, labelCount: labelFile.dimensions[0]
            )
        }
        let ids = UnsafeRawBufferPointer(start: labelFile.buffer.base + labelFile.offset, count: labelFile.count).map(
            Int32.init)
        var data = try classes(
            Dataset(
                buffer: imageFile.buffer, offset: imageFile.offset, element: .uint8,
                sampleShape: Self.sampleShape(Array(imageFile.dimensions.dropFirst())), labels: ids,
                numClasses: 0, source: images), train, labelsPath: labels)
        if digest {
            data.sourceDigests = [
                (images as NSString).lastPathComponent.replacingOccurrences(of: ".gz", with: ""): imageFile.sha256,
                (labels as NSString).lastPathComponent.replacingOccurrences(of: ".gz", with: ""): labelFile.sha256,
            ]
        }
        return data
    }

    /// Features and labels from two NumPy arrays.
    func numpy(features x: NumPyArray, labels y: NumPyArray, classes train: Classes?) throws -> Dataset {
        guard x.shape.count >= 2 else {
            throw DataError.invalidNumPy(
                path: x.path, problem: "features need a sample axis and at least one more; the shape is \(x.shape)")
        }
        guard y.shape.count == 1 || y.shape.count == 2 else {
            throw DataError.invalidNumPy(
                path: y.path,
                problem:
                    "labels must be class ids [samples] or one-hot rows [samples, classes]; the shape is \(y.shape)")
        }
        guard x.shape[0] == y.shape[0] else {
            throw DataError.countMismatch(
                images: x.path, imageCount: x.shape[0], labels: y.path, labelCount: y.shape[0])
        }
        let shape = Self.sampleShape(Array(x.shape.dropFirst()))
        var ids: [Int32], classes: Int?
        if y.shape.count == 2 && y.shape[1] > 1 {
            (ids, classes) = (try Self.oneHot(y), y.shape[1])
        } else {
            (ids, classes) = (try y.classIDs(), nil)
        }
        let data: Dataset
        if x.element == .uint8 || x.element.isNativeFloat32 {
            data = Dataset(
                buffer: x.buffer, offset: x.offset, element: x.element == .uint8 ? .uint8 : .float32,
                sampleShape: shape,
                labels: ids, numClasses: classes ?? 0, source: x.path)
            if data.element == .float32 { try Self.requireFinite(data) }
        } else {
            data = Dataset(
                features: try x.floats(), labels: ids, sampleShape: shape, numClasses: classes ?? 0, source: x.path)
        }
        return try self.classes(data, train, labelsPath: y.path)
    }

    /// `data` with its class count: the training split's, else one more than its largest label.
    func classes(_ data: Dataset, _ train: Classes?, labelsPath: String? = nil) throws -> Dataset {
        let count = train?.count ?? max(data.numClasses, Int(data.labels.max() ?? 0) + 1)
        if let (i, label) = data.labels.enumerated().first(where: { Int($0.element) >= count }) {
            throw DataError.labelOutOfRange(
                path: labelsPath ?? data.source, index: i, value: Int(label), classes: count)
        }
        var d = Dataset(
            buffer: data.buffer, offset: data.offset, element: data.element, sampleShape: data.sampleShape,
            labels: data.labels, numClasses: count, source: data.source)
        d.classNames = data.classNames ?? train?.names
        return d
    }

    /// Class ids from one-hot rows: exactly one 1 per row, zeros elsewhere.
    static func oneHot(_ y: NumPyArray) throws -> [Int32] {
        let k = y.shape[1]
        return try (0..<y.shape[0]).map { r in
            var hot = -1
            for j in 0..<k {
                let v = y.value(r * k + j)
                guard v == 0 || v == 1, v == 0 || hot < 0 else {
                    throw DataError.invalidNumPy(
                        path: y.path, problem: "row \(r) of the labels is not one-hot (one 1, zeros elsewhere)")
                }
                if v == 1 { hot = j }
            }
            guard hot >= 0 else {
                throw DataError.invalidNumPy(path: y.path, problem: "row \(r) of the labels is all zeros, not one-hot")
            }
            return Int32(hot)
        }
    }

    /// Every stored Float32 is finite.
    static func requireFinite(_ data: Dataset) throws {
        let values = data.base.assumingMemoryBound(to: Float.self)
        for i in 0..<data.count * data.sampleSize where !values[i].isFinite {
            throw DataError.inconsistent(
                path: data.source,
                problem:
                    "sample \(i / data.sampleSize), feature \(i % data.sampleSize) is \(values[i]), not a finite number"
            )
        }
    }

    /// A sample's shape from a file's dimensions after the first: `[h, w]` images get a channel.
    static func sampleShape(_ dims: [Int]) -> [Int] { dims.count == 2 ? dims + [1] : dims }

    /// The path of `name` in `directory` (absolute names as they are); for IDX names without an
    /// extension, the raw file or its `.gz`, whichever is there. A missing file throws naming it.
    public static func locate(_ name: String, in directory: String) throws -> String {
        let raw = name.hasPrefix("/") ? name : (directory as NSString).appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: raw) { return raw }
        if FileManager.default.fileExists(atPath: raw + ".gz") { return raw + ".gz" }
        var isDirectory: ObjCBool = false
        let make = DataRecipe.command(making: raw).map { " Make it with: \($0) (Launch/train.sh does this)." } ?? ""
        let hint =
            FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) && isDirectory.boolValue
            ? "It is not in \(directory)" + (name.contains(".") ? "." : " (nor \(name).gz).")
                + (make.isEmpty ? " Pass --data-dir, or put the file there." : make + " Or pass --data-dir.")
            : "The data directory \(directory) does not exist."
                + (make.isEmpty ? " Pass --data-dir, set data.dir or DPTRAIN_DATA." : make + " Or pass --data-dir.")
        throw DataError.missingFile(path: raw, hint: hint)
    }

    /// The paths `load` would read for `split` that exist (for `IDXPrefetch`: IDX files only).
    public func idxPaths(_ split: Dataset.Split) -> [String] {
        guard spec.resolvedFormat == .idx, let names = spec.files(split) else { return [] }
        return names.compactMap { try? Self.locate($0, in: directory) }
    }
}
