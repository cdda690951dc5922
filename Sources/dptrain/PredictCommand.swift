import ArgumentParser
import DPTrain
import Foundation

/// `dptrain predict`: class and probabilities for images, from a checkpoint.
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Predict the class of images with a checkpoint.",
        discussion: """
            Images are PGM (P5/P2) or PNG files of the model's input size (28x28 grayscale for MNIST), white \
            digit on black like MNIST, or samples of an IDX image file chosen with --idx and --index. Pixels are \
            scaled to [0, 1] as in training.
            """)

    @Option(name: .long, help: ArgumentHelp("The checkpoint (.safetensors) to predict with.", valueName: "file"))
    var checkpoint: String

    @Option(name: .long, help: ArgumentHelp("An IDX image file (raw or .gz) to take samples from.", valueName: "file"))
    var idx: String?

    @Option(name: .long, parsing: .upToNextOption, help: "Indices of the samples of --idx to predict (default 0).")
    var index: [Int] = []

    @Flag(name: .long, help: "Print one JSON object per image.")
    var json = false

    @Argument(help: ArgumentHelp("PGM or PNG images.", valueName: "image"))
    var images: [String] = []

    func validate() throws {
        if idx == nil && images.isEmpty { throw ValidationError("give image files, or --idx FILE with --index N") }
        if idx == nil && !index.isEmpty { throw ValidationError("--index needs --idx FILE") }
    }

    func run() throws {
        do {
            let file = try Checkpoint.read(path: checkpoint)
            let (config, model) = try file.model(capacity: 1, path: checkpoint)
            let size = config.inputShape.reduce(1, *)
            var inputs: [(name: String, pixels: [UInt8])] = []
            if let idx {
                let data = try IDXFile.read(path: idx)
                guard Array(data.dimensions.dropFirst()) == Array(config.inputShape.prefix(data.dimensions.count - 1)),
                      data.dimensions.dropFirst().reduce(1, *) == size else {
                    throw ValidationError("\(idx): samples are \(data.dimensions.dropFirst().map(String.init).joined(separator: "x")), the model expects \(config.inputShape.map(String.init).joined(separator: "x"))")
                }
                for i in index.isEmpty ? [0] : index {
                    guard i >= 0 && i < data.dimensions[0] else { throw ValidationError("--index \(i) is out of range: \(idx) has \(data.dimensions[0]) samples") }
                    inputs.append(("\(idx)[\(i)]", Array(data.bytes[i * size..<(i + 1) * size])))
                }
            }
            for path in images {
                let image = try ImageFile.read(path: path)
                guard image.height == config.inputShape[0], image.width == config.inputShape[1], config.inputShape[2] == 1 else {
                    throw ImageFile.FormatError(path: path, problem: "image is \(image.width)x\(image.height), the model expects \(config.inputShape[1])x\(config.inputShape[0]) grayscale")
                }
                inputs.append((path, image.pixels))
            }
            var probabilities = [Float](repeating: 0, count: model.outputSize)
            for (name, pixels) in inputs {
                for j in 0..<size { model.input[j] = Float(pixels[j]) / 255 }
                model.forward(batch: 1, context: StepContext(training: false))
                let predicted = model.head.predictedClass(model.output)
                probabilities.withUnsafeMutableBufferPointer { model.head.predictions(model.output, into: $0.baseAddress!, batch: 1) }
                if json {
                    print(JSONValue.object([("input", .string(name)), ("class", .int(predicted)),
                                            ("probabilities", .array(probabilities.map { .number(Double($0)) }))]).encoded)
                } else {
                    let shown = probabilities.enumerated().map { String(format: "%d:%.3f", $0.offset, $0.element) }.joined(separator: " ")
                    print("\(name): class \(predicted)  [\(shown)]")
                }
            }
        } catch {
            Launch.fail(error, comm: SingleProcessCommunicator())
        }
    }
}
