import Foundation

/// How to make a data file that a config names but that is not there yet, for the data sets
/// this repository knows how to fetch: MNIST's IDX files, Keras's `mnist.npz` made from them, and
/// the breast-cancer table of `Configs/binary-tabular.yaml`. The command is a shell line run from
/// the repository root: `Launch/train.sh` runs it (`dptrain data missing` lists it), and the
/// "file not found" error names it.
public enum DataRecipe {
    /// Where the MNIST IDX files go when another file is made from them.
    static let mnistDirectory = "data/mnist"

    /// The shell command that makes the file at `path`, or nil when none is known.
    public static func command(making path: String) -> String? {
        let url = URL(fileURLWithPath: path)
        let name =
            url.lastPathComponent.hasSuffix(".gz")
            ? String(url.lastPathComponent.dropLast(3)) : url.lastPathComponent
        let directory = (path as NSString).deletingLastPathComponent
        let folder = directory.isEmpty ? "." : directory
        if DataSpec.mnistFiles.values.contains(where: { $0.contains(name) }) {
            return "Launch/fetch-mnist.sh \(quoted(folder))"
        }
        if name == "mnist.npz" {
            return "Launch/fetch-mnist.sh \(mnistDirectory) && dptrain data convert --to npz --input \(mnistDirectory) "
                + "--output \(quoted(path))"
        }
        if (name == "train.csv" || name == "test.csv") && (folder as NSString).lastPathComponent == "breast-cancer" {
            return "Launch/fetch-breast-cancer.sh \(quoted(folder))"
        }
        return nil
    }

    /// `text` as one shell word.
    static func quoted(_ text: String) -> String {
        text.allSatisfy { $0.isLetter || $0.isNumber || "/._-+=:,".contains($0) }
            ? text : "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
