import ArgumentParser
import DPTrain
import Foundation

/// `dptrain inspect`: what a checkpoint holds, and whether it is intact.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a checkpoint's tensors, metadata and config, and verify its checksum.",
        discussion:
            "Exits non-zero, naming the problem, when the file is corrupt, truncated or not a dptrain checkpoint.")

    @Argument(help: ArgumentHelp("The checkpoint (.safetensors).", valueName: "checkpoint"))
    var path: String

    func run() throws {
        do {
            let c = try Checkpoint.read(path: path)
            print("\(path): checksum OK (\(c.metadata["checksum"] ?? "?"))")
            print("\ntensors:")
            for t in c.tensors {
                print(
                    "  " + t.name.padding(toLength: max(t.name.count + 2, 34), withPad: " ", startingAt: 0)
                        + "F32 [" + t.shape.map(String.init).joined(separator: ", ") + "]")
            }
            print("\nmetadata:")
            for (key, value) in c.metadata.sorted(by: { $0.key < $1.key }) where key != "config" {
                print("  \(key): \(value)")
            }
            print("\nconfig it was trained with:")
            print(
                (c.metadata["config"] ?? "(none)").split(separator: "\n", omittingEmptySubsequences: false).map {
                    "  " + $0
                }.joined(separator: "\n"))
        } catch {
            Launch.fail(error, comm: SingleProcessCommunicator())
        }
    }
}
