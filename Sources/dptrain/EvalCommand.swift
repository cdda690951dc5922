import ArgumentParser
import DPTrain
import Foundation

/// `dptrain eval`: test-set loss, accuracy, confusion matrix and per-class accuracy of a checkpoint.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a checkpoint on the test set.",
        discussion:
            "Rebuilds the model from the config stored in the checkpoint, so no --config is needed. One process.")

    @Option(name: .long, help: ArgumentHelp("The checkpoint (.safetensors) to evaluate.", valueName: "file"))
    var checkpoint: String

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The data directory (default: the stored config's data.dir, else $DPTRAIN_DATA, else data/mnist).",
            valueName: "dir"))
    var dataDir: String?

    @Option(name: .long, parsing: .unconditional, help: "Evaluate on the first N test images only.")
    var testLimit: Int?

    @Flag(name: .long, help: "Print one JSON object instead of the table.")
    var json = false

    func run() throws {
        do {
            let file = try Checkpoint.read(path: checkpoint)
            var (config, model) = try file.model(capacity: 1000, path: checkpoint)
            config.testLimit = testLimit
            guard
                var test = try config.loadDataset(
                    directory: config.dataDirectory(flag: dataDir), split: .test, classes: file.classes)
            else {
                throw ValidationError(
                    "the config stored in \(checkpoint) names no test data (data.test): nothing to evaluate on")
            }
            if let standardize = file.standardization { test.normalization = standardize }
            let e = Evaluator.evaluate(model, on: test)
            let classes = e.confusion.count
            let perClass = (0..<classes).map { c -> Double in
                let total = e.confusion[c].reduce(0, +)
                return total == 0 ? 0 : Double(e.confusion[c][c]) / Double(total)
            }
            if json {
                let out = JSONValue.object([
                    ("checkpoint", .string(checkpoint)), ("loss", .number(e.loss)), ("accuracy", .number(e.accuracy)),
                    ("samples", .int(e.count)), ("per_class_accuracy", .array(perClass.map(JSONValue.number))),
                    ("confusion", .array(e.confusion.map { .array($0.map(JSONValue.int)) })),
                ])
                print(out.encoded)
                return
            }
            print(
                String(
                    format: "%@: test loss %.4f, accuracy %.4f on %d samples", checkpoint, e.loss, e.accuracy, e.count))
            print("\nconfusion matrix (rows: true class, columns: predicted)")
            print("     " + (0..<classes).map { String(format: "%6d", $0) }.joined() + "   accuracy")
            for c in 0..<classes {
                print(
                    String(format: "%4d ", c) + e.confusion[c].map { String(format: "%6d", $0) }.joined()
                        + String(format: "   %.4f", perClass[c]))
            }
        } catch {
            Launch.fail(error, comm: SingleProcessCommunicator())
        }
    }
}
