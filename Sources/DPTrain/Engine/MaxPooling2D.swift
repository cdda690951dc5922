/// Keras's `MaxPooling2D` over NHWC samples: the maximum of each `pool x pool` window (valid
/// padding, windows `stride` apart). The backward pass routes each output gradient to the input
/// position that holds the maximum (the first one in the window, on ties), found again by
/// comparing input and output, as TensorFlow's MaxPoolGrad does: the forward pass stays a
/// plain, vectorised maximum and stores no indices.
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
    /// One window's gradient not yet routed, per channel (backward scratch).
    private let pending: FloatBuffer

    public init(name: String, inputShape: [Int], pool: Int, stride: Int, activation: ActivationKind = .linear) throws {
        precondition(activation == .linear || activation == .relu, "only a ReLU commutes exactly with the maximum")
        self.activation = activation
        self.name = name
        self.inputShape = inputShape
        self.pool = pool
        self.stride = stride
        guard inputShape.count == 3, inputShape[0] >= pool, inputShape[1] >= pool else {
            throw ConfigError.invalid(key: "\(name).pool_size", reason: "a \(pool)x\(pool) pool does not fit input shape \(inputShape)")
        }
        outputShape = [(inputShape[0] - pool) / stride + 1, (inputShape[1] - pool) / stride + 1, inputShape[2]]
        pending = FloatBuffer(count: inputShape[2])
    }

    public func prepare(capacity: Int) {}

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
        let (w, c, pool) = (inputShape[1], inputShape[2], pool)
        // Starting the maximum at 0 applies the ReLU in the same pass (a NaN stays NaN).
        let floor: Float = activation == .relu ? 0 : -.infinity
        if pool == 2 {
            // The usual 2x2 window with its four inputs in registers: one store per output.
            forEachWindow(batch: batch) { o, first in
                let (yo, x0, x1) = (y + o, x + first, x + first + w * c)
                for ch in 0..<c {
                    var m = x0[ch] < floor ? floor : x0[ch]
                    m = x0[c + ch] > m ? x0[c + ch] : m
                    m = x1[ch] > m ? x1[ch] : m
                    m = x1[c + ch] > m ? x1[c + ch] : m
                    yo[ch] = m
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
        }
    }

    public func backward(input x: UnsafePointer<Float>, output y: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
                         inputGradient dx: UnsafeMutablePointer<Float>?, batch: Int, context: StepContext) {
        guard let dx else { return }
        // When the windows tile the input exactly (the usual 2x2, stride 2 on an even size), each
        // input position is visited once and written, not accumulated: no zeroing pass.
        let tiles = stride == pool && inputShape[0] % pool == 0 && inputShape[1] % pool == 0
        if !tiles { dx.update(repeating: 0, count: batch * inputSize) }
        let (w, c, pool, rest, relu) = (inputShape[1], inputShape[2], pool, pending.pointer, activation == .relu)
        forEachWindow(batch: batch) { o, first in
            let (yo, dyo) = (y + o, dy + o)
            // With the ReLU after the maximum, an output of 0 passes no gradient (ReLU'(0) = 0),
            // even when some input in the window is exactly 0; a positive one is the maximum.
            for ch in 0..<c { rest[ch] = relu && !(yo[ch] > 0) ? 0 : dyo[ch] }
            // Window positions in order; the first that equals the maximum takes the gradient.
            for py in 0..<pool {
                for px in 0..<pool {
                    let at = first + (py * w + px) * c
                    let (xr, dxr) = (x + at, dx + at)
                    for ch in 0..<c {
                        let hit = xr[ch] == yo[ch], g = rest[ch]
                        dxr[ch] = (tiles ? 0 : dxr[ch]) + (hit ? g : 0)
                        rest[ch] = hit ? 0 : g
                    }
                }
            }
        }
    }
}
