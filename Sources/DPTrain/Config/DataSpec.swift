/// Where a run's data is and how to read it: the config's `data:` section.
///
/// `train` and `test` name the files of each split, relative to the data directory: one file for
/// a CSV table or a NumPy `.npz` archive (Keras's layout: `x_train`, `y_train`, `x_test`,
/// `y_test`), two for IDX and `.npy` (features, labels). The format follows from the extensions
/// unless `format` names it. Without `train`, the four MNIST IDX files are read (raw or `.gz`);
/// with `train` and no `test`, there is no test set (an `.npz` holding `x_test` provides one).
public struct DataSpec: Sendable, Equatable {
    public enum Format: String, Sendable, CaseIterable { case idx, npz, npy, csv }

    /// The directory relative names are in (nil: `--data-dir`, else `$DPTRAIN_DATA`, else
    /// `data/mnist`); `--data-dir` overrides it.
    public var directory: String?
    public var format: Format?
    public var train: [String]?
    public var test: [String]?
    /// A CSV file's label column (a header name or a 0-based index).
    public var labelColumn: CSVTable.Column?
    /// A CSV file's feature columns, in order (nil: every column but the label).
    public var featureColumns: [CSVTable.Column]?
    /// How stored values become inputs (nil: `scale` for bytes, `none` for floats).
    public var normalize: Normalization.Kind?

    public init() {}

    /// MNIST's IDX files, the default.
    public static let mnistFiles: [Dataset.Split: [String]] = [
        .train: ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"],
        .test: ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
    ]

    /// The files of `split` as the config names them (nil: that split has none).
    public func files(_ split: Dataset.Split) -> [String]? {
        guard let train else { return Self.mnistFiles[split] }
        switch split {
        case .train: return train
        case .test: return test ?? (resolvedFormat == .npz ? train : nil)
        }
    }

    /// The format `format` names, or the one the training files' extension gives.
    public var resolvedFormat: Format {
        if let format { return format }
        guard let first = train?.first?.lowercased() else { return .idx }
        if first.hasSuffix(".csv") { return .csv }
        if first.hasSuffix(".npz") { return .npz }
        if first.hasSuffix(".npy") { return .npy }
        return .idx
    }

    /// How many files a split takes in this format.
    var filesPerSplit: Int { [.csv, .npz].contains(resolvedFormat) ? 1 : 2 }
}
