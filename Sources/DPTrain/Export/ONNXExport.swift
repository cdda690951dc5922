import Foundation
import ONNXProto

/// A checkpoint as an ONNX model, for ONNX Runtime and any framework that imports ONNX.
///
/// The graph takes one input, `input`: float32 `[N, ...input_shape]` with a symbolic batch
/// dimension `N`, samples as they are stored (pixels 0-255, a CSV's features as written). Its
/// first nodes apply the normalisation the model was trained with (`x / 255`, or
/// `(x - mean) / std` from the checkpoint), then one group of nodes a layer, in order: Dense as
/// `MatMul` + `Add`; Conv2D as `Conv` (valid, or `SAME_UPPER` as TensorFlow pads) between
/// transposes to and from ONNX's channels-first layout, taken only where needed; MaxPooling2D as
/// `MaxPool`; Flatten in the channels-last order Keras flattens in; Dropout as `Identity`; each
/// activation as its operator. One output, `probabilities`: `[N, classes]` (softmax) or `[N, 1]`
/// (sigmoid). The initialisers are the checkpoint's float32 tensors, unchanged (kernels keep
/// Keras's layout; a `Transpose` node reorders a convolution's). Opset 17; the metadata holds the
/// config, the checkpoint's step and checksum.
public enum ONNXExport {
    public static let opset: Int64 = 17
    /// The IR version that goes with opset 17.
    public static let irVersion: Int64 = 8

    /// The model of `checkpoint` (read from `path`, for messages).
    public static func model(_ checkpoint: Checkpoint, path: String) throws -> Onnx_ModelProto {
        guard let text = checkpoint.metadata["config"], !text.isEmpty else {
            throw CheckpointError.invalid(path: path, problem: "it holds no config, so the model cannot be rebuilt")
        }
        let config = try TrainConfig.parse(yaml: text, path: "\(path) (stored config)")
        var graph = GraphBuilder(checkpoint: checkpoint, path: path)
        try graph.build(config: config, normalization: normalization(checkpoint, config: config))
        var model = Onnx_ModelProto()
        model.irVersion = irVersion
        model.producerName = "dptrain"
        model.producerVersion = BuildInfo.version
        model.opsetImport = [
            .with {
                $0.domain = ""; $0.version = opset
            }
        ]
        model.graph = graph.graph
        model.metadataProps = [
            ("config", text), ("step", checkpoint.metadata["step"] ?? ""),
            ("checksum", checkpoint.metadata["checksum"] ?? ""),
            ("class_names", checkpoint.metadata["class_names"] ?? ""),
        ].filter { !$0.1.isEmpty }.map { key, value in
            .with {
                $0.key = key; $0.value = value
            }
        }
        return model
    }

    /// What the samples went through in training: the checkpoint's standardisation, else the
    /// normalisation the checkpoint or config names, else the data's default (bytes scaled:
    /// IDX files and Keras's `.npz`; tables as they are).
    static func normalization(_ checkpoint: Checkpoint, config: TrainConfig) -> Normalization {
        if let standardize = checkpoint.standardization { return standardize }
        if let kind = checkpoint.metadata["normalization"].flatMap(Normalization.Kind.init(rawValue:))
            ?? config.data
            .normalize
        {
            return kind == .none ? .none : .scale
        }
        return [.idx, .npz].contains(config.data.resolvedFormat) ? .scale : .none
    }

    /// Writes `model` to `output` through a temporary file renamed into place: nothing
    /// half-written is left behind.
    public static func write(_ model: Onnx_ModelProto, to output: String) throws {
        let bytes: Data
        do { bytes = try model.serializedData() } catch {
            throw ExportError.unwritable(path: output, reason: "the model could not be encoded: \(error)")
        }
        let temporary = output + ".tmp\(getpid())"
        do {
            try bytes.write(to: URL(fileURLWithPath: temporary))
            guard rename(temporary, output) == 0 else {
                throw ExportError.unwritable(path: output, reason: String(cString: strerror(errno)))
            }
        } catch let error as ExportError {
            unlink(temporary)
            throw error
        } catch {
            unlink(temporary)
            throw ExportError.unwritable(path: output, reason: error.localizedDescription)
        }
    }
}

/// What can go wrong exporting, each naming the file.
public enum ExportError: Error, CustomStringConvertible {
    case unwritable(path: String, reason: String)
    case unsupported(path: String, what: String)

    public var description: String {
        switch self {
        case .unwritable(let path, let reason): return "\(path): cannot write the model: \(reason)"
        case .unsupported(let path, let what): return "\(path): \(what) has no ONNX form here"
        }
    }
}

/// Builds the graph node by node, keeping track of the running tensor's name, shape (without the
/// batch dimension) and layout.
struct GraphBuilder {
    var graph = Onnx_GraphProto()
    let checkpoint: Checkpoint
    let path: String
    /// The running tensor, and whether it is channels-first (after a convolution's transpose).
    var current = "input"
    var shape: [Int] = []
    var channelsFirst = false
    private var tensors: [String: SafeTensors.Tensor]

    init(checkpoint: Checkpoint, path: String) {
        self.checkpoint = checkpoint
        self.path = path
        tensors = Dictionary(checkpoint.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    mutating func build(config: TrainConfig, normalization: Normalization) throws {
        graph.name = "dptrain"
        shape = config.inputShape
        graph.input = [Self.value("input", shape: shape)]
        switch normalization {
        case .none: break
        case .scale:
            let scale = constant("normalize.scale", [1 / 255 as Float], dims: [])
            node("Mul", [current, scale], name: "normalize")
        case .standardize:
            try initializer("data.mean", dims: shape)
            try initializer("data.std", dims: shape)
            node("Sub", [current, "data.mean"], name: "normalize.center")
            node("Div", [current, "data.std"], name: "normalize.scale")
        }
        var counters: [String: Int] = [:]
        func nextName(_ base: String) -> String {
            counters[base, default: 0] += 1
            return "\(base)_\(counters[base]!)"
        }
        for spec in config.layers {
            switch spec {
            case .flatten:
                let name = nextName("flatten")
                toChannelsLast(name)
                node("Flatten", [current], name: name, attributes: [Self.int("axis", 1)])
                shape = [shape.reduce(1, *)]
            case .dense(let units, let activation, _):
                let name = nextName("dense")
                guard shape.count == 1 else {
                    throw ExportError.unsupported(path: path, what: "\(name) on a \(shape.count)-dimensional input")
                }
                try initializer("\(name).kernel", dims: [shape[0], units])
                try initializer("\(name).bias", dims: [units])
                node("MatMul", [current, "\(name).kernel"], name: "\(name).matmul")
                node("Add", [current, "\(name).bias"], name: "\(name).bias_add")
                shape = [units]
                activate(activation, layer: name)
            case .conv2d(let filters, let kernel, let stride, let padding, let activation, _):
                let name = nextName("conv2d")
                toChannelsFirst(name)
                let cin = shape[2]
                try initializer("\(name).kernel", dims: [kernel, kernel, cin, filters])
                try initializer("\(name).bias", dims: [filters])
                // Keras's [kh, kw, in, filters] to ONNX's [filters, in, kh, kw].
                let weights = node(
                    "Transpose", ["\(name).kernel"], name: "\(name).kernel_to_oihw",
                    attributes: [Self.ints("perm", [3, 2, 0, 1])], advance: false)
                node(
                    "Conv", [current, weights, "\(name).bias"], name: name,
                    attributes: [
                        Self.ints("kernel_shape", [kernel, kernel]), Self.ints("strides", [stride, stride]),
                        Self.string("auto_pad", padding == .same ? "SAME_UPPER" : "VALID"),
                    ])
                let (h, w) =
                    padding == .same
                    ? ((shape[0] + stride - 1) / stride, (shape[1] + stride - 1) / stride)
                    : ((shape[0] - kernel) / stride + 1, (shape[1] - kernel) / stride + 1)
                shape = [h, w, filters]
                activate(activation, layer: name)
            case .maxPooling2d(let pool, let stride):
                let name = nextName("max_pooling2d")
                toChannelsFirst(name)
                node(
                    "MaxPool", [current], name: name,
                    attributes: [Self.ints("kernel_shape", [pool, pool]), Self.ints("strides", [stride, stride])])
                shape = [(shape[0] - pool) / stride + 1, (shape[1] - pool) / stride + 1, shape[2]]
            case .dropout:
                node("Identity", [current], name: nextName("dropout"))
            case .activation(let kind):
                activate(kind, layer: nextName(kind.rawValue))
            }
        }
        toChannelsLast("output")
        node("Identity", [current], name: "probabilities", output: "probabilities")
        graph.output = [Self.value("probabilities", shape: shape)]
    }

    /// The activation's node after `layer` (none for linear).
    mutating func activate(_ kind: ActivationKind, layer: String) {
        let op: String? =
            switch kind {
            case .linear: nil
            case .relu: "Relu"
            case .sigmoid: "Sigmoid"
            case .tanh: "Tanh"
            case .softmax: "Softmax"
            }
        guard let op else { return }
        // Softmax over the last axis: the classes (or, after a convolution, the channels).
        let axis = channelsFirst ? [Self.int("axis", 1)] : [Self.int("axis", -1)]
        node(op, [current], name: "\(layer).\(kind.rawValue)", attributes: op == "Softmax" ? axis : [])
    }

    mutating func toChannelsFirst(_ layer: String) {
        guard !channelsFirst else { return }
        node("Transpose", [current], name: "\(layer).to_nchw", attributes: [Self.ints("perm", [0, 3, 1, 2])])
        channelsFirst = true
    }

    mutating func toChannelsLast(_ layer: String) {
        guard channelsFirst else { return }
        node("Transpose", [current], name: "\(layer).to_nhwc", attributes: [Self.ints("perm", [0, 2, 3, 1])])
        channelsFirst = false
    }

    /// Appends a node whose output is named after it; unless `advance` is false, its output
    /// becomes the running tensor. Returns the output's name.
    @discardableResult
    mutating func node(
        _ op: String, _ inputs: [String], name: String, attributes: [Onnx_AttributeProto] = [], output: String? = nil,
        advance: Bool = true
    ) -> String {
        let out = output ?? name
        graph.node.append(
            .with {
                $0.opType = op
                $0.name = name
                $0.input = inputs
                $0.output = [out]
                $0.attribute = attributes
            })
        if advance { current = out }
        return out
    }

    /// The checkpoint's tensor `name` as an initialiser of `dims` (its values unchanged).
    mutating func initializer(_ name: String, dims: [Int]) throws {
        guard let tensor = tensors[name] else {
            throw CheckpointError.invalid(path: path, problem: "no tensor \(name) for the model its config describes")
        }
        guard tensor.values.count == dims.reduce(1, *) else {
            throw CheckpointError.invalid(
                path: path, problem: "\(name) holds \(tensor.values.count) values, the model needs \(dims)")
        }
        graph.initializer.append(Self.tensor(name, tensor.values, dims: dims))
    }

    /// A constant of ours (not from the checkpoint) as an initialiser; returns its name.
    mutating func constant(_ name: String, _ values: [Float], dims: [Int]) -> String {
        graph.initializer.append(Self.tensor(name, values, dims: dims))
        return name
    }

    static func tensor(_ name: String, _ values: [Float], dims: [Int]) -> Onnx_TensorProto {
        .with {
            $0.name = name
            $0.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            $0.dims = dims.map(Int64.init)
            $0.rawData = values.withUnsafeBytes { Data($0) }  // little-endian float32, as ONNX stores it
        }
    }

    /// A float32 value of `shape` after a symbolic batch dimension `N`.
    static func value(_ name: String, shape: [Int]) -> Onnx_ValueInfoProto {
        .with {
            $0.name = name
            $0.type.tensorType.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            $0.type.tensorType.shape.dim =
                [.with { $0.dimParam = "N" }] + shape.map { d in .with { $0.dimValue = Int64(d) } }
        }
    }

    static func int(_ name: String, _ value: Int) -> Onnx_AttributeProto {
        .with {
            $0.name = name
            $0.type = .int
            $0.i = Int64(value)
        }
    }

    static func ints(_ name: String, _ values: [Int]) -> Onnx_AttributeProto {
        .with {
            $0.name = name
            $0.type = .ints
            $0.ints = values.map(Int64.init)
        }
    }

    static func string(_ name: String, _ value: String) -> Onnx_AttributeProto {
        .with {
            $0.name = name
            $0.type = .string
            $0.s = Data(value.utf8)
        }
    }
}
