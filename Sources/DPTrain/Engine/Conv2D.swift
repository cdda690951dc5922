/// 2-D convolution over NHWC samples (Keras's `Conv2D`, channels last), computed as im2col
/// followed by one `cblas_sgemm` per batch that adds to the bias, then the element-wise
/// activation; the kernel has Keras's layout `[kernelHeight, kernelWidth, inputChannels,
/// filters]`, Glorot-uniform initialised, zero bias. A ReLU followed by max pooling is applied
/// by the pooling layer instead, after the maximum (see `Model`).
///
/// Receptive fields whose values are all zero (63% of an MNIST image's 3x3 fields) are left out
/// of the GEMMs: their outputs are the bias alone, and they add nothing to the kernel gradient.
///
/// Padding `valid` uses only whole windows; `same` pads with zeros so that the output is
/// `ceil(input / stride)`, the extra row or column going at the bottom or right, as TensorFlow does.
public final class Conv2D: Layer {
    public enum Padding: String, Sendable { case valid, same }

    public let name: String
    public let inputShape: [Int]
    public let outputShape: [Int]
    let kh: Int, kw: Int, cin: Int, filters: Int, stride: Int
    let padTop: Int, padLeft: Int
    public let activation: ActivationKind
    var patchSize: Int { kh * kw * cin }
    var positions: Int { outputShape[0] * outputShape[1] }
    private var cols = FloatBuffer(count: 0), dcols = FloatBuffer(count: 0)
    /// The output rows whose receptive fields `cols` holds (those with a nonzero value), in
    /// order, and how many of them the last forward pass kept.
    private(set) var keptRows = UnsafeMutableBufferPointer<Int32>.allocate(capacity: 0)
    var keptCount = 0
    /// Whether all-zero receptive fields are left out (the default; off, every field goes
    /// through the GEMMs, as in the floor program).
    var skipsZeroFields = true
    /// Offset of each element of a receptive field from the field's top-left input element.
    private let patchOffsets: [Int32]
    private var kernelTensor: ParameterView!, biasTensor: ParameterView!
    private var w: UnsafeMutablePointer<Float> { kernelTensor.values }
    private var b: UnsafeMutablePointer<Float> { biasTensor.values }
    private var dw: UnsafeMutablePointer<Float> { kernelTensor.gradients }
    private var db: UnsafeMutablePointer<Float> { biasTensor.gradients }

    public init(
        name: String, inputShape: [Int], filters: Int, kernel: (Int, Int), stride: Int, padding: Padding,
        activation: ActivationKind = .linear
    ) throws {
        precondition(inputShape.count == 3)
        precondition(activation != .softmax, "softmax is a layer of its own (or fused into the loss)")
        self.activation = activation
        self.name = name
        self.inputShape = inputShape
        (kh, kw) = kernel
        cin = inputShape[2]
        self.filters = filters
        self.stride = stride
        let (h, wi) = (inputShape[0], inputShape[1])
        guard let g = Self.geometry(height: h, width: wi, kernel: kernel, stride: stride, padding: padding) else {
            throw ConfigError.invalid(
                key: "\(name).kernel_size",
                reason: "a \(kh)x\(kw) kernel does not fit a \(h)x\(wi) input with valid padding")
        }
        let (oh, ow) = (g.height, g.width)
        (padTop, padLeft) = (g.padTop, g.padLeft)
        outputShape = [oh, ow, filters]
        var offsets: [Int32] = []
        for ky in 0..<kh { for kx in 0..<kw { for c in 0..<cin { offsets.append(Int32((ky * wi + kx) * cin + c)) } } }
        patchOffsets = offsets
    }

    /// The output's height and width, and the zero padding above and to the left, of a `kernel`
    /// moved `stride` apart over a `height x width` input; nil when a valid-padded kernel does
    /// not fit. `same` pads to `ceil(input / stride)` outputs, the extra row or column at the
    /// bottom or right, as TensorFlow does. Arguments of at least 1, as the config guarantees.
    static func geometry(
        height h: Int, width w: Int, kernel: (Int, Int), stride: Int, padding: Padding
    )
        -> (height: Int, width: Int, padTop: Int, padLeft: Int)?
    {
        switch padding {
        case .valid:
            guard h >= kernel.0, w >= kernel.1 else { return nil }
            return ((h - kernel.0) / stride + 1, (w - kernel.1) / stride + 1, 0, 0)
        case .same:
            let (oh, ow) = ((h - 1) / stride + 1, (w - 1) / stride + 1)
            // (oh - 1) * stride < h, so this cannot overflow where the kernel itself fits in memory.
            let (padH, padW) = (max((oh - 1) * stride + kernel.0 - h, 0), max((ow - 1) * stride + kernel.1 - w, 0))
            return (oh, ow, padH / 2, padW / 2)
        }
    }

    public var ignoresGradientOfZeroOutputs: Bool { activation == .relu }
    public var parameterShapes: [(suffix: String, shape: [Int])] {
        [("kernel", [kh, kw, cin, filters]), ("bias", [filters])]
    }

    public var gemmFlopsPerSample: (forward: Double, weightGradient: Double, inputGradient: Double) {
        let f = 2 * Double(positions * patchSize * filters)
        return (f, f, f)
    }

    public func bind(_ store: ParameterStore) {
        kernelTensor = view("kernel", in: store)
        biasTensor = view("bias", in: store)
    }

    public func initialize(_ store: ParameterStore, rng: inout SplitMix64) {
        // Keras's Glorot uniform for convolutions: fan_in = kh*kw*cin, fan_out = kh*kw*filters.
        let limit = (6 / Float(kh * kw * (cin + filters))).squareRoot()
        for i in 0..<patchSize * filters { w[i] = rng.uniform(-limit, limit) }
        b.update(repeating: 0, count: filters)
    }

    public func prepare(capacity: Int) {
        cols = FloatBuffer(count: capacity * positions * patchSize)
        dcols = FloatBuffer(count: capacity * positions * patchSize)
        keptRows.deallocate()
        keptRows = .allocate(capacity: capacity * positions)
    }

    deinit { keptRows.deallocate() }

    /// Writes every receptive field of `batch` samples that holds a nonzero value as one row of
    /// `cols` (zeros in the padding) and its output row in `keptRows`, from entry `keptBefore`
    /// on, numbering the output rows from `firstRow`; returns how many it kept. Fields
    /// wholly inside the image (all of them with valid padding) are one branch-free gather
    /// through `patchOffsets`; only border fields check bounds. Every field is written, and the
    /// next one overwrites it unless it was kept (NaN is kept; -0.0 counts as zero).
    func im2col(_ x: UnsafePointer<Float>, batch: Int, keptBefore: Int = 0, firstRow: Int = 0) -> Int {
        let (h, wi) = (inputShape[0], inputShape[1]), (oh, ow) = (outputShape[0], outputShape[1])
        let k = patchSize
        let keptRows = self.keptRows.baseAddress! + keptBefore
        var row = cols.pointer + keptBefore * k, kept = 0, outputRow = firstRow
        patchOffsets.withUnsafeBufferPointer { offsets in
            let offsets = offsets.baseAddress!
            for n in 0..<batch {
                let sample = x + n * h * wi * cin
                for oy in 0..<oh {
                    let y0 = oy * stride - padTop
                    for ox in 0..<ow {
                        let x0 = ox * stride - padLeft
                        var bits: UInt32 = 0  // the OR of the field's values without their signs
                        if y0 >= 0 && y0 + kh <= h && x0 >= 0 && x0 + kw <= wi {
                            let origin = sample + (y0 * wi + x0) * cin
                            @inline(__always) func gather(_ count: Int) {
                                for j in 0..<count {
                                    let v = origin[Int(offsets[j])]
                                    row[j] = v
                                    bits |= v.bitPattern & 0x7FFF_FFFF
                                }
                            }
                            // A 3x3 single-channel field (the first layer of an image model) with
                            // its count known, so the compiler unrolls it.
                            if k == 9 { gather(9) } else { gather(k) }
                        } else {
                            for ky in 0..<kh {
                                for kx in 0..<kw {
                                    let (iy, ix) = (y0 + ky, x0 + kx)
                                    let inside = iy >= 0 && iy < h && ix >= 0 && ix < wi
                                    for c in 0..<cin {
                                        let v: Float = inside ? sample[(iy * wi + ix) * cin + c] : 0
                                        row[(ky * kw + kx) * cin + c] = v
                                        bits |= v.bitPattern & 0x7FFF_FFFF
                                    }
                                }
                            }
                        }
                        keptRows[kept] = Int32(outputRow)
                        let keep = bits != 0 || !skipsZeroFields ? 1 : 0
                        kept += keep
                        row += keep * k
                        outputRow += 1
                    }
                }
            }
        }
        return kept
    }

    /// The adjoint of `im2col`: adds every row of `dcols` back onto the input positions it came from.
    func col2im(_ dx: UnsafeMutablePointer<Float>, batch: Int) {
        let (h, wi) = (inputShape[0], inputShape[1]), (oh, ow) = (outputShape[0], outputShape[1])
        dx.update(repeating: 0, count: batch * h * wi * cin)
        var row = UnsafePointer(dcols.pointer)
        for n in 0..<batch {
            let sample = dx + n * h * wi * cin
            for oy in 0..<oh {
                for ox in 0..<ow {
                    for ky in 0..<kh {
                        let iy = oy * stride + ky - padTop
                        guard iy >= 0 && iy < h else { continue }
                        for kx in 0..<kw {
                            let ix = ox * stride + kx - padLeft
                            guard ix >= 0 && ix < wi else { continue }
                            let src = row + (ky * kw + kx) * cin, dst = sample + (iy * wi + ix) * cin
                            for c in 0..<cin { dst[c] += src[c] }
                        }
                    }
                    row += patchSize
                }
            }
        }
    }

    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, context: StepContext) {
        guard batch > 0 else { return }
        let rows = batch * positions
        keptCount = im2col(x, batch: batch)
        project(kept: keptCount, keptBefore: 0, firstRow: 0, rows: rows, into: y)
        if activation != .linear { Activation.apply(activation, y, y, rows: rows, columns: filters) }
    }

    /// Output rows `firstRow ..< firstRow + rows` (before the activation; `y` points at the
    /// first), whose kept fields are entries `keptBefore ..< keptBefore + kept` of `cols` and
    /// `keptRows`: the products of those fields plus the bias, the bias alone elsewhere.
    func project(kept: Int, keptBefore: Int, firstRow: Int, rows: Int, into y: UnsafeMutablePointer<Float>) {
        let a = cols.pointer + keptBefore * patchSize
        if kept == rows {
            // The bias goes into C first and the GEMM adds to it (beta 1): OpenBLAS would
            // otherwise zero C itself (beta 0) and a second pass over the output add the bias.
            for r in 0..<rows {
                let row = y + r * filters
                for j in 0..<filters { row[j] = b[j] }
            }
            sgemm(
                m: rows, n: filters, k: patchSize, a: a, lda: patchSize, b: w, ldb: filters, beta: 1, c: y, ldc: filters
            )
            return
        }
        // The kept fields' products go to the last `kept` rows of y; one ascending pass then
        // moves each to its row, adding the bias, and gives the other rows the bias alone. No
        // row is written before it is read: the product of kept field c sits at row
        // rows - kept + c, at or after its own row.
        let products = y + (rows - kept) * filters
        if kept > 0 {
            sgemm(
                m: kept, n: filters, k: patchSize, a: a, lda: patchSize, b: w, ldb: filters, beta: 0, c: products,
                ldc: filters)
        }
        let keptRows = self.keptRows.baseAddress! + keptBefore
        var c = 0
        for r in 0..<rows {
            let out = y + r * filters
            if c < kept && Int(keptRows[c]) - firstRow == r {
                let product = products + c * filters
                for j in 0..<filters { out[j] = b[j] + product[j] }
                c += 1
            } else {
                for j in 0..<filters { out[j] = b[j] }
            }
        }
    }

    public func backward(
        input x: UnsafePointer<Float>, output: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
        inputGradient dx: UnsafeMutablePointer<Float>?, batch: Int, context: StepContext
    ) {
        guard batch > 0 else {
            dw.update(repeating: 0, count: patchSize * filters)
            db.update(repeating: 0, count: filters)
            return
        }
        let rows = batch * positions
        let dy = UnsafeMutablePointer(mutating: dy)  // this layer's own gradient buffer
        Activation.backpropagateSummingBias(
            activation, output: output, gradient: dy, rows: rows, columns: filters, biasGradient: db)
        if let dx { inputGradient(dy, batch: batch, into: dx) }
        // cols still holds the kept fields of this batch from the forward pass; only they add to
        // dW, so their gradient rows are gathered to the front of dy first (row keptRows[c] is
        // at or after row c: ascending is safe). dy is not read after this.
        let kept = keptCount
        if kept < rows {
            for c in 0..<kept where Int(keptRows[c]) != c {
                (dy + c * filters).update(from: dy + Int(keptRows[c]) * filters, count: filters)
            }
        }
        kernelGradient(keptGradients: dy)
    }

    /// `dx` for `batch` samples from their output gradient `dz` (after the activation's).
    func inputGradient(_ dz: UnsafePointer<Float>, batch: Int, into dx: UnsafeMutablePointer<Float>) {
        sgemm(
            transB: true, m: batch * positions, n: patchSize, k: filters, a: dz, lda: filters, b: w, ldb: filters,
            beta: 0, c: dcols.pointer, ldc: patchSize)
        col2im(dx, batch: batch)
    }

    /// dW from the gradient rows of the last forward pass's kept fields, in the order of
    /// `keptRows` (`keptCount` rows at `keptGradients`).
    func kernelGradient(keptGradients: UnsafePointer<Float>) {
        if keptCount > 0 {
            sgemm(
                transA: true, m: patchSize, n: filters, k: keptCount, a: cols.pointer, lda: patchSize, b: keptGradients,
                ldb: filters,
                beta: 0, c: dw, ldc: filters)
        } else {
            dw.update(repeating: 0, count: patchSize * filters)
        }
    }

    /// The bias gradient's pointer, for `ConvolutionPooling`, which sums it chunk by chunk.
    var biasGradient: UnsafeMutablePointer<Float> { db }
}
