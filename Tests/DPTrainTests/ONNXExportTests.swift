import DPTrain
import Foundation
import ONNXProto
import Testing

/// The ONNX graph of every config in Configs/, checked for what a runtime relies on: names,
/// shapes, node order, the checkpoint's values unchanged, and the metadata.
@Suite("ONNX export")
struct ONNXExportTests {
    /// A checkpoint of `config` as it stands after initialisation, with `normalization`.
    static func checkpoint(_ file: String, normalization: Normalization? = nil) throws -> (TrainConfig, Checkpoint) {
        let text = try String(
            contentsOfFile: Support.packageRoot.appendingPathComponent("Configs/\(file)").path, encoding: .utf8)
        let config = try TrainConfig.parse(yaml: text)
        let model = try Model(specs: config.layers, inputShape: config.inputShape, loss: config.loss, capacity: 1)
        model.initialize(seed: 7)
        let size = config.inputShape.reduce(1, *)
        let standard = Normalization.standardize(
            mean: (0..<size).map { Float($0) * 0.5 }, std: (0..<size).map { 1 + Float($0) })
        let c = Checkpoint.capture(
            model: model, optimizer: config.makeOptimizer(parameterCount: model.store.count),
            position: TrainingPosition(), config: config, configText: text, worldSize: 1,
            normalization: normalization ?? (config.data.normalize == .standardize ? standard : .scale))
        return (config, c)
    }

    static func dims(_ value: Onnx_ValueInfoProto) -> [String] {
        value.type.tensorType.shape.dim.map { dim in
            if case .dimParam(let name)? = dim.value { name } else { "\(dim.dimValue)" }
        }
    }

    @Test(arguments: [
        "binary-tabular.yaml", "binary.yaml", "cnn.yaml", "logreg.yaml", "mlp-categorical.yaml", "mlp-npz.yaml",
        "mlp-sgd.yaml", "mlp.yaml",
    ])
    func everyConfigExportsAWellFormedGraph(config file: String) throws {
        let (config, checkpoint) = try Self.checkpoint(file)
        let model = try ONNXExport.model(checkpoint, path: file)
        // A file decodes to the same model.
        let decoded = try Onnx_ModelProto(serializedBytes: try model.serializedBytes() as [UInt8])
        #expect(decoded == model)
        #expect(model.opsetImport.map(\.version) == [17] && model.irVersion == 8)
        let graph = model.graph
        #expect(graph.input.map(\.name) == ["input"])
        #expect(Self.dims(graph.input[0]) == ["N"] + config.inputShape.map(String.init))
        #expect(graph.output.map(\.name) == ["probabilities"])
        let units = try #require(config.layers.compactMap { if case .dense(let u, _, _) = $0 { u } else { nil } }.last)
        #expect(Self.dims(graph.output[0]) == ["N", "\(units)"])
        // In order: every node reads the input, an initialiser or an earlier node's output.
        var known = Set(["input"] + graph.initializer.map(\.name))
        for node in graph.node {
            for input in node.input { #expect(known.contains(input), "\(node.name) reads \(input) before it exists") }
            known.formUnion(node.output)
        }
        #expect(graph.node.last?.output == ["probabilities"])
        #expect(Set(graph.node.map(\.name)).count == graph.node.count, "node names are unique")
        // The checkpoint's tensors, unchanged; no optimizer state.
        let tensors = Dictionary(checkpoint.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for initializer in graph.initializer where !initializer.name.hasPrefix("normalize.") {
            let tensor = try #require(tensors[initializer.name], "\(initializer.name)")
            #expect(initializer.rawData == tensor.values.withUnsafeBytes { Data($0) }, "\(initializer.name)")
            #expect(initializer.dims.reduce(1, *) == Int64(tensor.values.count))
        }
        let weights = checkpoint.tensors.filter { !$0.name.hasPrefix("adam.") && !$0.name.hasPrefix("sgd.") }
        #expect(Set(graph.initializer.map(\.name)).isSuperset(of: weights.map(\.name)))
        let meta = Dictionary(uniqueKeysWithValues: model.metadataProps.map { ($0.key, $0.value) })
        #expect(meta["step"] == "0" && meta["checksum"] == checkpoint.metadata["checksum"] && meta["config"] != nil)
    }

    /// The operators, in order, of the tutorial MLP and CNN and of a standardised table.
    @Test func nodeOrderOfTheTutorialModels() throws {
        func ops(_ file: String) throws -> [String] {
            try ONNXExport.model(try Self.checkpoint(file).1, path: file).graph.node.map(\.opType)
        }
        #expect(
            try ops("mlp.yaml") == [
                "Mul", "Flatten", "MatMul", "Add", "Relu", "Identity", "MatMul", "Add", "Softmax", "Identity",
            ])
        #expect(
            try ops("cnn.yaml") == [
                "Mul", "Transpose", "Transpose", "Conv", "Relu", "MaxPool", "Transpose", "Flatten", "MatMul", "Add",
                "Relu", "MatMul", "Add", "Softmax", "Identity",
            ])
        #expect(
            try ops("binary-tabular.yaml") == [
                "Sub", "Div", "MatMul", "Add", "Relu", "MatMul", "Add", "Sigmoid", "Identity",
            ])
    }

    @Test func badInputIsOneMessageAndLeavesNothingBehind() throws {
        let (_, checkpoint) = try Self.checkpoint("mlp.yaml")
        let model = try ONNXExport.model(checkpoint, path: "mlp")
        let tmp = Support.temporaryDirectory()
        #expect {
            try ONNXExport.write(model, to: "\(tmp)/no/such/folder/model.onnx")
        } throws: { "\($0)".contains("\(tmp)/no/such/folder/model.onnx: cannot write the model") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp).isEmpty)
        var stripped = checkpoint
        stripped.tensors.removeAll { $0.name == "dense_2.bias" }
        #expect {
            try ONNXExport.model(stripped, path: "x.safetensors")
        } throws: { "\($0)".contains("x.safetensors") && "\($0)".contains("dense_2.bias") }
    }
}

/// Whether ONNX Runtime can be imported by python3, and if not, why the comparison is skipped.
enum ONNXRuntime {
    static let unavailableReason: String? = {
        guard let r = try? Support.run("/usr/bin/env", ["python3", "-c", "import onnxruntime, numpy"], timeout: 60),
            r.status == 0
        else { return "python3 cannot import onnxruntime and numpy (pip install onnxruntime numpy)" }
        return nil
    }()
}

extension EndToEndTests {
    /// An exported model run by ONNX Runtime gives `dptrain predict`'s probabilities within 1e-5:
    /// the MLP and the CNN on MNIST-format images, and a CSV table standardised in training.
    @Suite(
        "ONNX Runtime",
        .enabled(if: ONNXRuntime.unavailableReason == nil, Comment(rawValue: ONNXRuntime.unavailableReason ?? "")))
    struct ONNXRuntimeAgrees {
        let bin: String
        init() throws { bin = try Support.binary() }

        /// Trains `args` for a few steps, exports the checkpoint, predicts `inputs` both ways and
        /// returns the largest difference (python prints it).
        func difference(_ train: [String], predict: [String], python: String) throws -> Double {
            let tmp = Support.temporaryDirectory()
            let trained = try Support.run(bin, ["train"] + train + ["--checkpoint-dir", "\(tmp)/ck", "--quiet"])
            try #require(trained.status == 0, "\(trained.stderr)")
            let checkpoint = try #require(Checkpointer(directory: "\(tmp)/ck").files().first)
            let exported = try Support.run(
                bin, ["export", "--checkpoint", checkpoint, "--format", "onnx", "--output", "\(tmp)/model.onnx"])
            try #require(exported.status == 0, "\(exported.stderr)")
            let predicted = try Support.run(bin, ["predict", "--checkpoint", checkpoint, "--json"] + predict)
            try #require(predicted.status == 0, "\(predicted.stderr)")
            try predicted.stdout.write(toFile: "\(tmp)/predict.jsonl", atomically: true, encoding: .utf8)
            let script = """
                import json, sys, numpy as np, onnxruntime as ort
                session = ort.InferenceSession(sys.argv[1])
                expected = np.array([json.loads(l)["probabilities"] for l in open(sys.argv[2]) if l.strip()])
                \(python)
                got = session.run(["probabilities"], {"input": x})[0]
                assert got.shape == expected.shape, (got.shape, expected.shape)
                print(float(np.abs(got - expected).max()))
                """
            let r = try Support.run(
                "/usr/bin/env", ["python3", "-c", script, "\(tmp)/model.onnx", "\(tmp)/predict.jsonl"] + predict)
            try #require(r.status == 0, "\(r.stderr)")
            return try #require(Double(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(r.stdout)")
        }

        @Test(arguments: ["Configs/mlp.yaml", "Configs/cnn.yaml"])
        func imagesAgreeWithPredict(config: String) throws {
            let data = Support.makeTinyMNIST(train: 256, test: 16)
            let images = "\(data)/t10k-images-idx3-ubyte"
            let indices = (0..<16).map(String.init)
            let d = try difference(
                ["--config", config, "--data-dir", data, "--max-steps", "20"],
                predict: ["--idx", images, "--index"] + indices,
                python: """
                    raw = open(sys.argv[3 + sys.argv[3:].index("--idx") + 1], "rb").read()[16:]
                    x = np.frombuffer(raw, dtype=np.uint8)[:16 * 784].reshape(16, 28, 28, 1).astype(np.float32)
                    """)
            #expect(d <= 1e-5, "\(config): ONNX Runtime and predict differ by \(d)")
        }

        @Test func aStandardizedTableAgreesWithPredict() throws {
            let tmp = Support.temporaryDirectory()
            var rng = SplitMix64(seed: 5)
            var text = "size,weight,kind\n"
            for _ in 0..<200 {
                let (a, b) = (Float(rng.next(below: 1000)) / 10, Float(rng.next(below: 500)) + 1000)
                text += "\(a),\(b),\(a * 10 + b > 1500 ? "big" : "small")\n"
            }
            try text.write(toFile: "\(tmp)/t.csv", atomically: true, encoding: .utf8)
            try """
            model:
              input_shape: [2]
              layers:
                - {type: dense, units: 8, activation: relu}
                - {type: dense, units: 1, activation: sigmoid}
            loss: binary_crossentropy
            data: {dir: \(tmp), train: t.csv, label_column: kind, normalize: standardize}
            """.write(toFile: "\(tmp)/t.yaml", atomically: true, encoding: .utf8)
            let d = try difference(
                ["--config", "\(tmp)/t.yaml", "--max-steps", "30"], predict: ["--csv", "\(tmp)/t.csv"],
                python: """
                    x = np.loadtxt(sys.argv[3 + sys.argv[3:].index("--csv") + 1], delimiter=",", skiprows=1,
                                   usecols=(0, 1), dtype=np.float32)
                    """)
            #expect(d <= 1e-5, "ONNX Runtime and predict differ by \(d)")
        }
    }
}
