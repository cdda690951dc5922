@testable import DPTrain
import Foundation
import Testing

/// NumPy, .npz and CSV data, and every way such a file can be wrong: each error names the file,
/// the position and the problem.
@Suite("Data formats")
struct DataFormatTests {
    let dir = Support.temporaryDirectory()

    /// `.npy` bytes of `values` (given as doubles) stored as `descr`.
    static func npy(_ descr: String, shape: [Int], _ values: [Double]) -> [UInt8] {
        var data: [UInt8] = []
        let big = descr.hasPrefix(">")
        func append<T: FixedWidthInteger>(_ v: T) {
            data += withUnsafeBytes(of: big ? v.bigEndian : v.littleEndian) { Array($0) }
        }
        for v in values {
            switch descr.dropFirst() {
            case "u1", "b1": data.append(UInt8(v))
            case "i8": append(Int64(v))
            case "i4": append(Int32(v))
            case "f4": append(Float(v).bitPattern)
            case "f8": append(v.bitPattern)
            default: fatalError("no test encoding for \(descr)")
            }
        }
        return data.withUnsafeBytes { NumPyWriter.npy(descr: descr, shape: shape, data: $0) }
    }

    func write(_ bytes: [UInt8], _ name: String) -> String {
        Support.write(bytes, to: "\(dir)/\(name)")
        return "\(dir)/\(name)"
    }

    func expectDataError(_ contains: [String], _ body: () throws -> Any?) {
        do {
            _ = try body()
            Issue.record("expected an error containing \(contains)")
        } catch {
            let text = "\(error)"
            for piece in contains { #expect(text.contains(piece), "'\(piece)' missing from: \(text)") }
        }
    }

    @Test func npyRoundTripsAndIsMapped() throws {
        let path = write(Self.npy("|u1", shape: [3, 2, 2], (0..<12).map(Double.init)), "x.npy")
        let a = try NumPyArray.read(path: path)
        #expect(a.shape == [3, 2, 2] && a.element == .uint8 && a.buffer.isMapped && a.offset % 64 == 0)
        #expect(try a.floats() == (0..<12).map(Float.init))
    }

    /// Other numeric types are converted (float64 to float32, integers to class ids); big-endian
    /// data reads the same.
    @Test func otherTypesConvert() throws {
        let values: [Double] = [1.5, -2.25, 3, 1e10]
        for descr in ["<f8", ">f4", "<f4"] {
            #expect(
                try NumPyArray.read(path: write(Self.npy(descr, shape: [4], values), "v.npy")).floats()
                    == values.map(Float.init), "\(descr)")
        }
        for descr in ["<i8", ">i4", "|b1"] {
            let ids = descr == "|b1" ? [0.0, 1, 1, 0] : [3.0, 0, 7, 2]
            #expect(
                try NumPyArray.read(path: write(Self.npy(descr, shape: [4], ids), "l.npy")).classIDs()
                    == ids.map { Int32($0) }, "\(descr)")
        }
    }

    @Test func badNumPyFilesAreClearErrors() throws {
        let good = Self.npy("<f4", shape: [2, 3], [1, 2, 3, 4, 5, 6])
        expectDataError(["t.npy", "truncated", "calls for 24 data bytes, found 20"]) {
            try NumPyArray.read(path: self.write(Array(good.dropLast(4)), "t.npy"))
        }
        expectDataError(["m.npy", "no \\x93NUMPY magic"]) {
            try NumPyArray.read(path: self.write(Array(good.dropFirst(1)), "m.npy"))
        }
        /// `good` with `old` replaced by `new` (as long: the header keeps its length) in its header.
        func swapped(_ old: String, _ new: String) -> [UInt8] {
            var bytes = good
            let (o, n) = (Array(old.utf8), Array(new.utf8).padded(to: old.utf8.count))
            let at = (0...bytes.count - o.count).first { Array(bytes[$0..<$0 + o.count]) == o }!
            bytes.replaceSubrange(at..<at + o.count, with: n)
            return bytes
        }
        for (descr, name) in [("<c8", "complex"), ("|O", "object"), ("<U5", "string")] {
            expectDataError(["\(name).npy", "element type '\(descr)' is not supported"]) {
                try NumPyArray.read(path: self.write(swapped("'<f4'", "'\(descr)'"), "\(name).npy"))
            }
        }
        let fortran = swapped("False", "True")
        expectDataError(["f.npy", "Fortran order"]) { try NumPyArray.read(path: self.write(fortran, "f.npy")) }
        let nan = Self.npy("<f8", shape: [2], [1, .nan])
        expectDataError(["n.npy", "element 1 ([1]) is nan"]) {
            try NumPyArray.read(path: self.write(nan, "n.npy")).floats()
        }
        expectDataError(["l.npy", "label 1 is 2.5"]) {
            try NumPyArray.read(path: self.write(Self.npy("<f4", shape: [2], [1, 2.5]), "l.npy")).classIDs()
        }
    }

    /// A loader over `format` with `train` (and `test`) files in `dir`.
    func loader(
        _ train: [String], test: [String]? = nil, label: CSVTable.Column? = nil, features: [CSVTable.Column]? = nil
    ) -> DataLoader {
        var spec = DataSpec()
        spec.train = train
        spec.test = test
        spec.labelColumn = label
        spec.featureColumns = features
        return DataLoader(spec: spec, directory: dir)
    }

    @Test(arguments: [false, true])
    func npzInKerasLayoutLoadsBothSplits(compressed: Bool) throws {
        let x = (0..<5 * 16).map { Double($0 % 200) }, y: [Double] = [0, 1, 2, 1, 0]
        try NumPyWriter.npz(
            [
                ("x_train", Self.npy("|u1", shape: [5, 4, 4], x)), ("y_train", Self.npy("<i8", shape: [5], y)),
                ("x_test", Self.npy("|u1", shape: [2, 4, 4], Array(x.prefix(32)))),
                ("y_test", Self.npy("|u1", shape: [2], [2, 0])),
            ],
            to: "\(dir)/d.npz", compressed: compressed)
        let l = loader(["d.npz"])
        let train = try #require(try l.load(.train))
        #expect(
            train.count == 5 && train.sampleShape == [4, 4, 1] && train.numClasses == 3
                && train.labels == [0, 1, 2, 1, 0])
        #expect(train.buffer.isMapped == !compressed && train.element == .uint8)
        #expect(train.input(1) == (16..<32).map { Float($0) * (1 / 255) })
        let test = try #require(try l.load(.test, classes: train.classes))
        #expect(test.count == 2 && test.labels == [2, 0])
    }

    @Test func badArchivesAreClearErrors() throws {
        try NumPyWriter.npz(
            [("x_train", Self.npy("|u1", shape: [2, 2], [1, 2, 3, 4]))], to: "\(dir)/a.npz", compressed: true)
        expectDataError(["a.npz", "has no x_train and y_train arrays (it holds x_train)"]) {
            try self.loader(["a.npz"]).load(.train)
        }
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/a.npz")))
        bytes[45] ^= 0x55  // inside the deflated data
        expectDataError(["b.npz", "x_train.npy"]) { try ZipArchive(path: self.write(bytes, "b.npz")).array("x_train") }
        expectDataError(["c.npz", "not a ZIP archive"]) {
            try ZipArchive(
                path: self.write(
                    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22], "c.npz"))
        }
    }

    /// One-hot labels give class ids and the class count; features and labels that disagree,
    /// rows that are not one-hot, an empty split and a test label past the training classes are
    /// errors naming the file.
    @Test func numpyPairsAndTheirMistakes() throws {
        let x = write(Self.npy("<f4", shape: [3, 2], [1, 2, 3, 4, 5, 6]), "x.npy")
        _ = x
        _ = write(Self.npy("|u1", shape: [3, 4], [0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1]), "onehot.npy")
        let data = try #require(try loader(["x.npy", "onehot.npy"]).load(.train))
        #expect(
            data.labels == [2, 0, 3] && data.numClasses == 4 && data.sampleShape == [2] && data.element == .float32
                && data.normalization == .none)
        _ = write(Self.npy("|u1", shape: [3, 2], [1, 1, 0, 0, 1, 0]), "twohot.npy")
        expectDataError(["twohot.npy", "row 0 of the labels is not one-hot"]) {
            try self.loader(["x.npy", "twohot.npy"]).load(.train)
        }
        _ = write(Self.npy("<i8", shape: [2], [0, 1]), "short.npy")
        expectDataError(["x.npy holds 3 images but", "short.npy holds 2 labels"]) {
            try self.loader(["x.npy", "short.npy"]).load(.train)
        }
        _ = write(Self.npy("<f4", shape: [0, 2], []), "empty.npy")
        _ = write(Self.npy("<i8", shape: [0], []), "none.npy")
        expectDataError(["empty.npy", "no samples"]) { try self.loader(["empty.npy", "none.npy"]).load(.train) }
        _ = write(Self.npy("<i8", shape: [3], [0, 5, 1]), "y.npy")
        expectDataError(["y.npy", "label 5 at index 1 is out of range 0..<4"]) {
            try self.loader(["x.npy", "onehot.npy"], test: ["x.npy", "y.npy"]).load(.test, classes: Classes(count: 4))
        }
        _ = write(Self.npy("<f4", shape: [3, 2], [1, .nan, 3, 4, 5, 6]), "xnan.npy")
        expectDataError(["xnan.npy", "sample 0, feature 1 is nan"]) {
            try self.loader(["xnan.npy", "y.npy"]).load(.train)
        }
    }

    @Test func csvWithNamedLabelsQuotesAndColumnChoices() throws {
        let path = write(Array("a,\"b, quoted\",label,c\r\n1.5,2,yes,9\r\n\"3\",4,no,8\n5,6,yes,7\n".utf8), "t.csv")
        let table = try CSVTable(path: path, label: .name("label"))
        #expect(table.featureNames == ["a", "b, quoted", "c"] && table.values == [1.5, 2, 9, 3, 4, 8, 5, 6, 7])
        #expect(table.labels == [1, 0, 1] && table.classNames == ["no", "yes"])
        let picked = try CSVTable(path: path, label: .index(2), featureColumns: [.name("c"), .index(0)])
        #expect(picked.values == [9, 1.5, 8, 3, 7, 5])
        let l = loader(["t.csv"], label: .name("label"))
        let data = try #require(try l.load(.train))
        #expect(data.numClasses == 2 && data.classNames == ["no", "yes"] && data.sampleShape == [3])
    }

    /// A table cut into parts at record starts, quoted fields with line breaks and CRLF among
    /// them, reads the same with 1 thread as with 5; a bad value far into the file is named with
    /// its own line.
    @Test func csvPartsReadAsOneAndNameTheirLines() throws {
        var text = "a,b,label\r\n"
        var rng = SplitMix64(seed: 3)
        for r in 0..<300_000 {  // 6 MB: parts of at least 1 MB each
            let (x, y) = (Float(rng.next(below: 100_000)) / 7, Float(rng.next(below: 1000)) - 500)
            switch r % 1000 {
            case 17: text += "\"\(x)\",\(y),\"two\nlines\"\r\n"
            case 500: text += "\n"  // a blank line
            default: text += "\(x), \(y) ,\(r % 3 == 0 ? "cat" : "dog")\r\n"
            }
        }
        let path = write(Array(text.utf8), "parts.csv")
        let one = try CSVTable(path: path, label: .name("label"), threads: 1)
        let five = try CSVTable(path: path, label: .name("label"), threads: 5)
        #expect(one.rows == 299_700 && five.rows == one.rows)
        #expect(one.values == five.values && one.labels == five.labels && one.classNames == five.classNames)
        #expect(one.classNames == ["cat", "dog", "two\nlines"])
        // (By bytes: Swift takes "\r\n" as one Character.)
        let lines = Array(text.utf8).split(separator: 0x0A, omittingEmptySubsequences: false)
        let bad = 250_001
        #expect(String(decoding: lines[bad - 1], as: UTF8.self).hasSuffix("dog\r"))
        let broken = lines.enumerated().map { $0.offset == bad - 1 ? Array("1.5,x7,cat\r".utf8) : Array($0.element) }
        let badPath = write(Array(broken.joined(separator: [0x0A])), "bad-parts.csv")
        expectDataError(["bad-parts.csv, line \(bad)", "column 'b' (1): 'x7' is not a number"]) {
            try CSVTable(path: badPath, label: .name("label"), threads: 5)
        }
    }

    /// The cache gives what the parse gives; where the data folder cannot take it (here
    /// `.dptrain-cache` is a file), the cache goes to the user's cache folder instead.
    @Test func csvCacheGivesWhatTheParseGives() throws {
        let path = write(Array("x,y,label\n1.5,2,b\n3,4.25,a\n".utf8), "c.csv")
        let parsed = try CSVTable(path: path, label: .name("label"))
        let first = try CSVCache.read(path: path, label: .name("label"))
        let second = try CSVCache.read(path: path, label: .name("label"))
        #expect(
            first.origin == "parsed and cached in \(dir)/.dptrain-cache"
                && second.origin == "cached in \(dir)/.dptrain-cache")
        for table in [first, second] {
            let values = UnsafeBufferPointer(
                start: (table.buffer.base + table.offset).assumingMemoryBound(to: Float.self), count: table.rows * 2)
            #expect(Array(values) == parsed.values && table.labels == parsed.labels && table.classNames == ["a", "b"])
            #expect(table.buffer.isMapped && table.featureNames == ["x", "y"])
        }
        let other = Support.temporaryDirectory()
        Support.write(Array("x,label\n7,0\n".utf8), to: "\(other)/t.csv")
        Support.write([], to: "\(other)/.dptrain-cache")
        let fallback = try CSVCache.read(path: "\(other)/t.csv", label: .name("label"))
        #expect(fallback.rows == 1 && fallback.labels == [0] && !fallback.origin.contains("\(other)/.dptrain-cache"))
    }

    @Test func badCSVRowsNameTheLineAndColumn() throws {
        func fails(_ text: String, _ pieces: [String], label: CSVTable.Column = .name("y")) {
            let path = write(Array(text.utf8), "bad.csv")
            expectDataError([path] + pieces) { try CSVTable(path: path, label: label) }
        }
        fails("x,y\n1,0\n2\n", ["line 3", "1 fields where the header has 2"])
        fails("x,y\n1,0\nabc,1\n", ["line 3", "column 'x' (0): 'abc' is not a number"])
        fails("x,y\n1,0\n,1\n", ["line 3", "column 'x' (0): empty"])
        fails("x,y\n1,0\nnan,1\n", ["line 3", "'nan' is not a finite number"])
        fails("x,y\n1,0\n2,-1\n", ["line 3", "-1 is negative"])
        fails("x,y\n\"1,0\n", ["line 2", "a quoted field is never closed"])
        fails("x,y\n1,0\n", ["label column 'z' is not in the header (x, y)"], label: .name("z"))
        fails("x,y\n", ["a header and no rows"])
        fails("x,y\r1,0\r", ["line 1", "its lines end in a carriage return alone"])
        let train = write(Array("x,y\n1,cat\n2,dog\n".utf8), "train.csv")
        _ = train
        _ = write(Array("x,y\n1,cat\n2,bird\n".utf8), "test.csv")
        let l = loader(["train.csv"], test: ["test.csv"], label: .name("y"))
        let classes = try #require(try l.load(.train)).classes
        expectDataError(["test.csv, line 3", "'bird' is not one of the classes cat, dog"]) {
            try l.load(.test, classes: classes)
        }
    }

    /// Standardisation comes from the training part alone: the validation rows (the last 25%
    /// here, far from the rest) do not move it.
    @Test func standardizationUsesTheTrainingPartOnly() throws {
        let values: [Float] = [1, 2, 3, 4, 5, 6, 1000, 2000]  // 4 rows of 2 features; the last row is held out
        let data = Dataset(features: values, labels: [0, 1, 0, 1], sampleShape: [2], numClasses: 2, source: "memory")
        var config = try TrainConfig.parse(
            yaml: "model:\n  input_shape: [2]\n  layers:\n    - {type: dense, units: 2, activation: softmax}\n")
        config.data.normalize = .standardize
        config.validationSplit = 0.25
        let trainer = try Trainer(config: config, comm: SingleProcessCommunicator(), train: data, test: nil)
        guard case .standardize(let mean, let std) = trainer.train.normalization else {
            Issue.record("not standardised"); return
        }
        #expect(mean == [3, 4] && abs(std[0] - (8 as Float / 3).squareRoot()) < 1e-6, "\(mean) \(std)")
        #expect(trainer.validation?.normalization == trainer.train.normalization)
    }

    /// The model's output must have a unit per class of the labels; the error names both.
    @Test func aModelWithTooFewOutputsForTheClassesIsRefused() throws {
        let data = Dataset(
            features: [0, 1, 2, 3], labels: [0, 25], sampleShape: [2], numClasses: 26, source: "letters.npy")
        let config = try TrainConfig.parse(
            yaml: "model:\n  input_shape: [2]\n  layers:\n    - {type: dense, units: 10, activation: softmax}\n")
        expectDataError(["'model.layers[0].units'", "10 output unit(s)", "letters.npy have 26 classes"]) {
            try Trainer(config: config, comm: SingleProcessCommunicator(), train: data, test: nil)
        }
    }
}

extension Array where Element == UInt8 {
    /// Padded with spaces to `count` bytes.
    func padded(to count: Int) -> [UInt8] { self + [UInt8](repeating: 0x20, count: Swift.max(count - self.count, 0)) }
}
