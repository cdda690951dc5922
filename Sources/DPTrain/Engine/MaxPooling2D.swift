/// Keras's `MaxPooling2D` over NHWC samples: the maximum of each `pool x pool` window (valid
/// padding, windows `stride` apart). The backward pass routes each output gradient to the input
/// position that holds the maximum (the first one in the window, on ties, as TensorFlow's
/// MaxPoolGrad does). The forward pass records that position per output (2 bytes), so the
/// backward pass reads neither the input nor the output, only the gradient and the positions.
///
/// `activation` (ReLU or linear) is applied after the maximum: the model moves a convolution's
/// ReLU here, where it touches a quarter of the values, because `relu(max(z)) == max(relu(z))`
/// exactly, and the gradient that reaches the maximum is the same either way.
public final class MaxPooling2D: Layer {
    public let name: String
    public let inputShape: [Int]
    public let outputShape: [Int]
    public let activation: ActivationKind
    let pool: Int, stride: Int
    /// Per output value of the last forward pass: the window position (`py * pool + px`) whose
    /// input is the maximum and takes the gradient, or `Self.noGradient` where none does (a
    /// ReLU output of 0, or a NaN maximum that no input equals).
    private(set) var argmax: UnsafeMutablePointer<UInt16>?
    static let noGradient = UInt16.max

    public var ignoresGradientOfZeroOutputs: Bool { activation == .relu }
    /// Whether the windows tile the input exactly (the usual 2x2, stride 2 on an even size):
    /// every input position lies in exactly one window.
    var tiles: Bool { stride == pool && inputShape[0] % pool == 0 && inputShape[1] % pool == 0 }

    public init(name: String, inputShape: [Int], pool: Int, stride: Int, activation: ActivationKind = .linear) throws {
        precondition(activation == .linear || activation == .relu, "only a ReLU commutes exactly with the maximum")
        self.activation = activation
        self.name = name
        self.inputShape = inputShape
        self.pool = pool
        self.stride = stride
        guard inputShape.count == 3, inputShape[0] >= pool, inputShape[1] >= pool else {
            throw ConfigError.invalid(
                key: "\(name).pool_size", reason: "a \(pool)x\(pool) pool does not fit input shape \(inputShape)")
        }
        guard pool * pool < Int(Self.noGradient) else {
            throw ConfigError.invalid(key: "\(name).pool_size", reason: "\(pool) is larger than the 255 supported")
        }
        outputShape = Self.outputShape(input: inputShape, pool: pool, stride: stride)
    }

    /// The output shape of `pool x pool` windows `stride` apart over an input at least that large.
    static func outputShape(input: [Int], pool: Int, stride: Int) -> [Int] {
        [(input[0] - pool) / stride + 1, (input[1] - pool) / stride + 1, input[2]]
    }

    deinit { argmax?.deallocate() }

    public func prepare(capacity: Int) {
        argmax?.deallocate()
        argmax = .allocate(capacity: max(capacity * outputSize, 1))
    }

    /// Calls `body(o, first)` for every output window: `o` indexes its first output value and
    /// `first` its first input value, each the start of a contiguous run of `channels` values.
    @inline(__always)
    func forEachWindow(batch: Int, _ body: (_ o: Int, _ first: Int) -> Void) {
        let (h, w, c) = (inputShape[0], inputShape[1], inputShape[2])
        let (oh, ow) = (outputShape[0], outputShape[1])
        var o = 0
        for n in 0..<batch {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    body(o, n * h * w * c + (oy * stride * w + ox * stride) * c)
                    o += c
                }
            }
        }
    }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, context: StepContext) {
        guard let argmax else { preconditionFailure("\(name): prepare(capacity:) was not called") }
        pool(x, into: y, argmax: argmax, batch: batch)
    }

    public func backward(
        input x: UnsafePointer<Float>, output y: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
        inputGradient dx: UnsafeMutablePointer<Float>?, batch: Int, context: StepContext
    ) {
        guard let dx, let argmax else { return }
        unpool(dy, argmax: argmax, into: dx, batch: batch)
    }

    /// The forward pass of `batch` samples, recording the argmax positions at `argmax` (one per
    /// output value); `ConvolutionPooling` calls it on a few samples at a time.
    func pool(
        _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<UInt16>, batch: Int
    ) {
        let (w, c, pool, relu) = (inputShape[1], inputShape[2], pool, activation == .relu)
        // Starting the maximum at 0 applies the ReLU in the same pass (a NaN stays NaN).
        let floor: Float = relu ? 0 : -.infinity
        // The position that takes the gradient: the first whose input equals the output.
        @inline(__always) func position(of m: Float, _ equal: (Int) -> Bool) -> UInt16 {
            if relu && !(m > 0) { return Self.noGradient }
            for p in 0..<pool * pool where equal(p) { return UInt16(p) }
            return Self.noGradient
        }
        if pool == 2 {
            // The usual 2x2 window with its four inputs in registers.
            forEachWindow(batch: batch) { o, first in
                let (yo, at, x0, x1) = (y + o, argmax + o, x + first, x + first + w * c)
                for ch in 0..<c {
                    let (a, b, d, e) = (x0[ch], x0[c + ch], x1[ch], x1[c + ch])
                    var m = a < floor ? floor : a
                    m = b > m ? b : m
                    m = d > m ? d : m
                    m = e > m ? e : m
                    yo[ch] = m
                    let p: UInt16 = a == m ? 0 : b == m ? 1 : d == m ? 2 : e == m ? 3 : Self.noGradient
                    at[ch] = relu && !(m > 0) ? Self.noGradient : p
                }
            }
            return
        }
        forEachWindow(batch: batch) { o, first in
            let (yo, x0) = (y + o, x + first)
            for ch in 0..<c { yo[ch] = x0[ch] < floor ? floor : x0[ch] }
            for py in 0..<pool {
                for px in 0..<pool where py + px > 0 {
                    let xr = x + first + (py * w + px) * c
                    for ch in 0..<c { yo[ch] = xr[ch] > yo[ch] ? xr[ch] : yo[ch] }
                }
            }
            for ch in 0..<c {
                argmax[o + ch] = position(of: yo[ch]) { p in x0[(p / pool * w + p % pool) * c + ch] == yo[ch] }
            }
        }
    }

    /// The input gradient of `batch` samples from their output gradient and the argmax
    /// positions that `pool` recorded for them.
    func unpool(
        _ dy: UnsafePointer<Float>, argmax: UnsafePointer<UInt16>, into dx: UnsafeMutablePointer<Float>, batch: Int
    ) {
        // When the windows tile the input, each input position is visited once and written, not
        // accumulated: no zeroing pass.
        if !tiles { dx.update(repeating: 0, count: batch * inputSize) }
        let (w, c, pool) = (inputShape[1], inputShape[2], pool)
        forEachWindow(batch: batch) { o, first in
            let (dyo, at) = (dy + o, argmax + o)
            for py in 0..<pool {
                for px in 0..<pool {
                    let p = UInt16(py * pool + px), dxr = dx + first + (py * w + px) * c
                    for ch in 0..<c {
                        let g: Float = at[ch] == p ? dyo[ch] : 0
                        dxr[ch] = tiles ? g : dxr[ch] + g
                    }
                }
            }
        }
    }
}
