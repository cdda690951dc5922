import ArgumentParser
import DPTrain
import Foundation

/// `dptrain predict`: class and probabilities for images, rows of a table or samples of an
/// array, from a checkpoint.
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Predict the class of images, table rows or array samples with a checkpoint.",
        discussion: """
            Inputs: PGM (P5/P2) or PNG files of the model's input size (28x28 grayscale for MNIST), white digit \
            on black like MNIST; samples of an IDX image file or a NumPy .npy array (--idx or --npy, with \
            --index); or every row of a CSV file (--csv) with the columns the model was trained on (a label \
            column may be there or not). Values are normalised as in training (scaled, standardised with the \
            statistics the checkpoint keeps, or as they are).
            """)

    @Option(name: .long, help: ArgumentHelp("The checkpoint (.safetensors) to predict with.", valueName: "file"))
    var checkpoint: String

    @Option(name: .long, help: ArgumentHelp("An IDX image file (raw or .gz) to take samples from.", valueName: "file"))
    var idx: String?

    @Option(
        name: .long,
        help: ArgumentHelp("A NumPy .npy array to take samples from (the first axis numbers them).", valueName: "file"))
    var npy: String?

    @Option(name: .long, help: ArgumentHelp("A CSV file whose every row is predicted.", valueName: "file"))
    var csv: String?

    @Option(
        name: .long, parsing: .upToNextOption, help: "Indices of the samples of --idx or --npy to predict (default 0).")
    var index: [Int] = []

    @Flag(name: .long, help: "Print one JSON object per input.")
    var json = false

    @Argument(help: ArgumentHelp("PGM or PNG images.", valueName: "image"))
    var images: [String] = []

    func validate() throws {
        let sources = [idx, npy, csv].compactMap { $0 }.count
        if sources == 0 && images.isEmpty {
            throw ValidationError("give image files, --idx or --npy FILE with --index N, or --csv FILE")
        }
        if sources > 1 { throw ValidationError("give one of --idx, --npy and --csv") }
        if idx == nil && npy == nil && !index.isEmpty { throw ValidationError("--index needs --idx or --npy FILE") }
    }

    func run() throws {
        do {
            let file = try Checkpoint.read(path: checkpoint)
            let (config, model) = try file.model(capacity: 1, path: checkpoint)
            let size = config.inputShape.reduce(1, *)
            let shape = config.inputShape.map(String.init).joined(separator: "x")
            // Each input: a name, and a data set holding it as sample `sample`.
            var inputs: [(name: String, data: Dataset, sample: Int)] = []
            func pick(_ data: Dataset, from path: String, count: Int) throws {
                guard data.sampleSize == size else {
                    throw ValidationError(
                        "\(path): samples are \(data.sampleShape.map(String.init).joined(separator: "x")), the model expects \(shape)"
                    )
                }
                for i in index.isEmpty ? [0] : index {
                    guard i >= 0 && i < count else {
                        throw ValidationError("--index \(i) is out of range: \(path) has \(count) samples")
                    }
                    inputs.append(("\(path)[\(i)]", data, i))
                }
            }
            if let idx {
                let f = try IDXFile.read(path: idx)
                let n = f.dimensions.first ?? 0
                try pick(
                    Dataset(
                        buffer: f.buffer, offset: f.offset, element: .uint8,
                        sampleShape: Array(f.dimensions.dropFirst()),
                        labels: [Int32](repeating: 0, count: n), numClasses: 1, source: idx), from: idx, count: n)
            }
            if let npy {
                let a = try NumPyArray.read(path: npy)
                let n = a.shape.first ?? 0
                let labels = [Int32](repeating: 0, count: n), sampleShape = Array(a.shape.dropFirst())
                let data =
                    a.element == .uint8 || a.element.isNativeFloat32
                    ? Dataset(
                        buffer: a.buffer, offset: a.offset, element: a.element == .uint8 ? .uint8 : .float32,
                        sampleShape: sampleShape,
                        labels: labels, numClasses: 1, source: npy)
                    : Dataset(
                        features: try a.floats(), labels: labels, sampleShape: sampleShape, numClasses: 1, source: npy)
                try pick(data, from: npy, count: n)
            }
            if let csv {
                let table = try CSVTable(
                    path: csv, label: config.data.labelColumn, featureColumns: config.data.featureColumns,
                    labelOptional: true)
                guard table.featureNames.count == size else {
                    throw ValidationError(
                        "\(csv): rows have \(table.featureNames.count) feature columns (\(table.featureNames.joined(separator: ", "))), the model expects \(size)"
                    )
                }
                let rows = table.rows
                let data = Dataset(
                    buffer: table.features, element: .float32, sampleShape: [size],
                    labels: [Int32](repeating: 0, count: rows), numClasses: 1, source: csv)
                for r in 0..<rows { inputs.append(("\(csv) row \(r + 1)", data, r)) }
            }
            for path in images {
                let image = try ImageFile.read(path: path)
                guard config.inputShape.count == 3, image.height == config.inputShape[0],
                    image.width == config.inputShape[1], config.inputShape[2] == 1
                else {
                    throw ImageFile.FormatError(
                        path: path,
                        problem:
                            "image is \(image.width)x\(image.height), the model expects \(shape) (grayscale images)")
                }
                inputs.append(
                    (path, Dataset(images: image.pixels, labels: [0], imageShape: config.inputShape, numClasses: 1), 0))
            }
            let names = file.classes?.names
            var probabilities = [Float](repeating: 0, count: model.outputSize)
            for (name, var data, sample) in inputs {
                // As in training: the checkpoint's standardisation, else the config's, else the data's own default.
                if let standardize = file.standardization {
                    data.normalization = standardize
                } else if let kind = config.data.normalize, kind != .standardize {
                    data.normalization = kind == .none ? .none : .scale
                }
                let values = data.input(sample)
                for j in 0..<size { model.input[j] = values[j] }
                model.forward(batch: 1, context: StepContext(training: false))
                let predicted = model.head.predictedClass(model.output)
                probabilities.withUnsafeMutableBufferPointer {
                    model.head.predictions(model.output, into: $0.baseAddress!, batch: 1)
                }
                let className = names.flatMap { predicted < $0.count ? $0[predicted] : nil }
                if json {
                    let named: [(String, JSONValue)] = className.map { [("class_name", .string($0))] } ?? []
                    print(
                        JSONValue.object(
                            [("input", .string(name)), ("class", .int(predicted))] + named
                                + [("probabilities", .array(probabilities.map { .number(Double($0)) }))]
                        ).encoded)
                } else {
                    let shown = probabilities.enumerated().map { String(format: "%d:%.3f", $0.offset, $0.element) }
                        .joined(separator: " ")
                    print("\(name): class \(predicted)\(className.map { " (\($0))" } ?? "")  [\(shown)]")
                }
            }
        } catch {
            Launch.fail(error, comm: SingleProcessCommunicator())
        }
    }
}
