import ArgumentParser
import DPTrain
import Foundation

/// `dptrain export`: a checkpoint as a model file other runtimes load.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a checkpoint as an ONNX model (for ONNX Runtime and frameworks that import ONNX).",
        discussion: """
            The model takes one input, `input`: float32 [N, ...input_shape], samples as they are stored \
            (pixels 0-255, a CSV's features as written): its first nodes normalise them as training did \
            (x / 255, or the standardisation the checkpoint keeps). One output, `probabilities`: \
            [N, classes] (softmax) or [N, 1] (sigmoid). Opset 17; the initialisers are the checkpoint's \
            float32 tensors; the metadata holds the config, the step and the checkpoint's checksum. The \
            file is written through a temporary one, renamed into place. In Python:

              import numpy as np, onnxruntime as ort
              model = ort.InferenceSession("model.onnx")
              x = np.load("x_test.npy")[:8].astype(np.float32)
              print(model.run(["probabilities"], {"input": x})[0])
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case onnx }

    @Option(name: .long, help: ArgumentHelp("The checkpoint (.safetensors) to export.", valueName: "file"))
    var checkpoint: String

    @Option(name: .long, help: "The model format: onnx.")
    var format: Format = .onnx

    @Option(name: .long, help: ArgumentHelp("The file to write (e.g. model.onnx).", valueName: "file"))
    var output: String

    func run() throws {
        do {
            let c = try Checkpoint.read(path: checkpoint)
            let model = try ONNXExport.model(c, path: checkpoint)
            try ONNXExport.write(model, to: output)
            let nodes = model.graph.node.count
            FileHandle.standardError.write(
                Data(
                    "dptrain: wrote \(output): ONNX opset \(ONNXExport.opset), \(nodes) nodes, step \(c.metadata["step"] ?? "?")\n"
                        .utf8))
        } catch {
            Launch.fail(error, comm: SingleProcessCommunicator())
        }
    }
}
