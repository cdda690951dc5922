/// Keras's `MaxPooling2D` over NHWC samples: the maximum of each `pool x pool` window (valid
/// padding, windows `stride` apart). The backward pass routes each output gradient to the input
/// position that held the maximum (the first one, on ties).
public final class MaxPooling2D: Layer {
    public let name: String
    public let inputShape: [Int]
    public let outputShape: [Int]
    let pool: Int, stride: Int
    private var argmax: UnsafeMutablePointer<Int32>?

    public init(name: String, inputShape: [Int], pool: Int, stride: Int) throws {
        self.name = name
        self.inputShape = inputShape
        self.pool = pool
        self.stride = stride
        guard inputShape.count == 3, inputShape[0] >= pool, inputShape[1] >= pool else {
            throw ConfigError.invalid(key: "\(name).pool_size", reason: "a \(pool)x\(pool) pool does not fit input shape \(inputShape)")
        }
        outputShape = [(inputShape[0] - pool) / stride + 1, (inputShape[1] - pool) / stride + 1, inputShape[2]]
    }

    deinit { argmax?.deallocate() }

    public func prepare(capacity: Int) {
        argmax?.deallocate()
        argmax = .allocate(capacity: max(capacity * outputSize, 1))
    }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, context: StepContext) {
        let (h, w, c) = (inputShape[0], inputShape[1], inputShape[2])
        let (oh, ow) = (outputShape[0], outputShape[1])
        let arg = argmax!
        var o = 0
        for n in 0..<batch {
            let base = n * h * w * c
            for oy in 0..<oh {
                for ox in 0..<ow {
                    // Channel-innermost: each window position is a contiguous run of c values,
                    // compared with selects so the channel loop vectorises.
                    let first = base + (oy * stride * w + ox * stride) * c
                    for ch in 0..<c {
                        y[o + ch] = x[first + ch]
                        arg[o + ch] = Int32(first + ch)
                    }
                    for py in 0..<pool {
                        for px in 0..<pool where py + px > 0 {
                            let row = Int32(base + ((oy * stride + py) * w + ox * stride + px) * c)
                            let xr = x + Int(row), yo = y + o, ao = arg + o
                            for ch in 0..<c {
                                let v = xr[ch], better = v > yo[ch]
                                yo[ch] = better ? v : yo[ch]
                                ao[ch] = better ? row + Int32(ch) : ao[ch]
                            }
                        }
                    }
                    o += c
                }
            }
        }
    }

    public func backward(input: UnsafePointer<Float>, output: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
                         inputGradient dx: UnsafeMutablePointer<Float>?, batch: Int, context: StepContext) {
        guard let dx else { return }
        dx.update(repeating: 0, count: batch * inputSize)
        let arg = argmax!
        for o in 0..<batch * outputSize { dx[Int(arg[o])] += dy[o] }
    }
}
