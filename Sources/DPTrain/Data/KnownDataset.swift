import Crypto
import Foundation

/// The MNIST-format data sets dptrain knows, with the SHA-256 of each file's raw IDX bytes
/// (the same sums as Launch/fetch-mnist.sh checks), so a directory can be verified whether its
/// files are raw or gzip-compressed.
public enum KnownDataset: String, CaseIterable, Sendable {
    case mnist
    case fashionMNIST = "fashion-mnist"

    public static let files = [
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
    ]

    /// Raw-byte SHA-256 per file: MNIST's canonical files; Fashion-MNIST as Debian's
    /// `dataset-fashion-mnist` ships it.
    public var sha256: [String: String] {
        switch self {
        case .mnist:
            return [
                "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            ]
        case .fashionMNIST:
            return [
                "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            ]
        }
    }

    /// The name people write: MNIST, Fashion-MNIST.
    public var displayName: String { self == .mnist ? "MNIST" : "Fashion-MNIST" }

    /// What file digests (stem -> SHA-256 of the raw IDX bytes) say about the data.
    public enum Identity: Sendable, Equatable {
        /// Every file matches this data set's published checksum.
        case verified(KnownDataset)
        /// Some files match this data set; `files` (stems) do not.
        case modified(KnownDataset, files: [String])
        /// No file matches a data set dptrain knows.
        case unknown
    }

    /// Identifies `digests` against the known data sets: the one most files match.
    public static func identify(_ digests: [String: String]) -> Identity {
        let scored = allCases.map { set in (set, digests.filter { set.sha256[$0.key] == $0.value }.count) }
        guard let (set, matches) = scored.max(by: { $0.1 < $1.1 }), matches > 0 else { return .unknown }
        if matches == digests.count { return .verified(set) }
        return .modified(set, files: digests.keys.filter { set.sha256[$0] != digests[$0] }.sorted())
    }

    /// Where a package of this machine's distribution installs the files, if one does.
    public var systemDirectory: (path: String, package: String)? {
        self == .fashionMNIST ? ("/usr/share/datasets/fashion-mnist", "dataset-fashion-mnist") : nil
    }

    /// One file's verification.
    public struct Check: Sendable {
        public var path: String
        public var expected: String
        public var found: String
        public var ok: Bool { expected == found }
    }

    /// Checks each of the four files in `directory` (raw or .gz); a missing or unreadable file throws.
    public func verify(directory: String) throws -> [Check] {
        try Self.files.map { stem in
            let path = try DataLoader.locate(stem, in: directory)
            let file = try DataBuffer(mapping: path)
            let raw = Gzip.isGzip(file.bytes) ? try Gzip.inflate(file.bytes, path: path) : file
            let digest = Checksum.hex(SHA256.hash(data: raw.bytes))
            return Check(path: path, expected: sha256[stem]!, found: digest)
        }
    }
}
