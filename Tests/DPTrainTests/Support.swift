import DPTrain
import Foundation
import Testing

/// Helpers shared by the tests: temporary directories, tiny IDX data sets, launching processes.
enum Support {
    static let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "dptrain-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Configs/mlp.yaml with `training` lines added, written as `tmp/name.yaml`; returns its path.
    static func mlpConfig(_ name: String, in tmp: String, adding training: String) throws -> String {
        let text = try String(
            contentsOfFile: packageRoot.appendingPathComponent("Configs/mlp.yaml").path, encoding: .utf8)
        let path = "\(tmp)/\(name).yaml"
        try text.replacingOccurrences(of: "training:\n", with: "training:\n" + training)
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A run stopped by a non-finite loss or gradient: it failed naming the global step, and no
    /// checkpoint in `checkpoints` is of that step or a later one.
    static func expectNonFiniteStopWithoutCheckpointOfIt(_ r: ProcessResult, checkpoints: String) throws {
        #expect(r.status != 0)
        let message = try #require(r.stderr.split(separator: "\n").first { $0.contains("non-finite") }, "\(r.stderr)")
        let step = try #require(Int(message.split(separator: "global step ")[1].prefix { $0.isNumber }))
        for file in Checkpointer(directory: checkpoints).files() {
            let c = try Checkpoint.read(path: file)
            #expect(c.integer("step")! < step, "\(file) was written at or after the failing step \(step)")
        }
    }

    static func write(_ bytes: [UInt8], to path: String) {
        precondition(FileManager.default.createFile(atPath: path, contents: Data(bytes)), "could not write \(path)")
    }

    /// A small MNIST-format directory with `train` and `test` samples of 28x28 images whose
    /// class is readable from the pixels (a bright bar at a row that depends on the label).
    static func makeTinyMNIST(train: Int = 256, test: Int = 64, seed: UInt64 = 7) -> String {
        let dir = temporaryDirectory()
        var rng = SplitMix64(seed: seed)
        for (stem, count) in [("train", train), ("t10k", test)] {
            var images = [UInt8](), labels = [UInt8]()
            for _ in 0..<count {
                let label = UInt8(rng.next(below: 10))
                var image = (0..<784).map { _ in UInt8(rng.next(below: 40)) }
                for col in 4..<24 { image[(2 + Int(label) * 2) * 28 + col] = 250 }
                images += image
                labels.append(label)
            }
            write(IDXFile.encode(dimensions: [count, 28, 28], bytes: images), to: "\(dir)/\(stem)-images-idx3-ubyte")
            write(IDXFile.encode(dimensions: [count], bytes: labels), to: "\(dir)/\(stem)-labels-idx1-ubyte")
        }
        return dir
    }

    struct ProcessResult {
        var status: Int32
        var stdout: String
        var stderr: String
        var seconds: Double
    }

    /// A process started from the package root that runs while the test goes on: signal it,
    /// then `wait` for its status and output.
    final class Running: @unchecked Sendable {
        let process = Process()
        private let group = DispatchGroup()
        private var out = Data(), err = Data()
        let started = Date()

        init(_ executable: String, _ arguments: [String], environment: [String: String]) throws {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.currentDirectoryURL = packageRoot
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            let (outPipe, errPipe) = (Pipe(), Pipe())
            process.standardOutput = outPipe
            process.standardError = errPipe
            // The child takes the signal mask of the thread that starts it, and the test
            // runner's threads block most signals: a child would never see one a test sends it.
            var all = sigset_t(), saved = sigset_t()
            sigemptyset(&all)
            pthread_sigmask(SIG_SETMASK, &all, &saved)
            defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
            try process.run()
            // Read both pipes concurrently so a chatty child never blocks on a full pipe.
            DispatchQueue.global().async(group: group) { self.out = outPipe.fileHandleForReading.readDataToEndOfFile() }
            DispatchQueue.global().async(group: group) { self.err = errPipe.fileHandleForReading.readDataToEndOfFile() }
        }

        func signal(_ number: Int32) { kill(process.processIdentifier, number) }

        /// Waits for the process to end, killing it after `timeout` seconds.
        func wait(timeout: Double = 300) -> ProcessResult {
            let deadline = started.addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning {
                process.terminate()
                usleep(500_000)
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
            process.waitUntilExit()
            group.wait()
            return ProcessResult(
                status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
                stderr: String(decoding: err, as: UTF8.self), seconds: Date().timeIntervalSince(started))
        }
    }

    static func start(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:]
    ) throws -> Running {
        try Running(executable, arguments, environment: environment)
    }

    /// Runs `executable` with `arguments` from the package root; kills it after `timeout` seconds.
    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], timeout: Double = 300
    ) throws -> ProcessResult {
        try start(executable, arguments, environment: environment).wait(timeout: timeout)
    }

    /// Polls `condition` every 50 ms until it holds (true) or `timeout` seconds pass (false).
    static func eventually(timeout: Double = 60, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }

    /// The release binary the end-to-end tests launch: $DPTRAIN_BIN (Launch/test.sh sets it),
    /// else .build/release/dptrain.
    static func binary() throws -> String {
        let path =
            ProcessInfo.processInfo.environment["DPTRAIN_BIN"]
            ?? packageRoot.appendingPathComponent(".build/release/dptrain").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestSetupError("no release binary at \(path): run `swift build -c release` or use Launch/test.sh")
        }
        return path
    }

    /// Real MNIST for end-to-end tests: $DPTRAIN_TEST_DATA (Launch/test.sh sets it), else $DPTRAIN_DATA.
    static func realMNIST() throws -> String {
        let env = ProcessInfo.processInfo.environment
        guard let dir = env["DPTRAIN_TEST_DATA"] ?? env["DPTRAIN_DATA"] else {
            throw TestSetupError("set DPTRAIN_TEST_DATA or DPTRAIN_DATA to the MNIST directory, or use Launch/test.sh")
        }
        return dir
    }

    static var mpirunScript: String { packageRoot.appendingPathComponent("Launch/mpirun.sh").path }

    /// Reads a JSON Lines metrics file into dictionaries.
    static func readMetrics(_ path: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try text.split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
