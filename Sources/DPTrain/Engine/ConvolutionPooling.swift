/// A `Conv2D` (linear: a ReLU before the pooling has moved into it) followed by a
/// `MaxPooling2D`, run a few samples at a time so that the convolution's output for those
/// samples is pooled while it is still in the cache: the whole output (4x the pooled one, 5.5 MB
/// for 64 MNIST samples and 32 filters) is never written to memory and read back, nor is its
/// gradient. The two layers keep their parameters, names and state; this only orders their
/// work. Results are those of the layers run one after the other: the same products and sums
/// in the same order (the kernel gradient is still one GEMM over every kept field).
final class ConvolutionPooling {
    let conv: Conv2D, pool: MaxPooling2D
    /// Samples per chunk: their convolution output fits in `chunkBytes`.
    let chunk: Int
    static let chunkBytes = 256 * 1024
    /// A chunk's convolution output in the forward pass, its gradient in the backward pass.
    private let scratch: FloatBuffer

    init(conv: Conv2D, pool: MaxPooling2D) {
        precondition(conv.activation == .linear && conv.outputShape == pool.inputShape)
        self.conv = conv
        self.pool = pool
        chunk = max(1, Self.chunkBytes / (4 * conv.outputSize))
        scratch = FloatBuffer(count: chunk * conv.outputSize)
    }

    /// Both layers' forward pass: `x` the convolution's input, `y` the pooling's output.
    func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int) {
        guard let argmax = pool.argmax else { preconditionFailure("\(pool.name): prepare(capacity:) was not called") }
        var kept = 0
        for first in stride(from: 0, to: batch, by: chunk) {
            let samples = min(chunk, batch - first), firstRow = first * conv.positions
            let chunkKept = conv.im2col(
                x + first * conv.inputSize, batch: samples, keptBefore: kept, firstRow: firstRow)
            conv.project(
                kept: chunkKept, keptBefore: kept, firstRow: firstRow, rows: samples * conv.positions,
                into: scratch.pointer)
            pool.pool(
                scratch.pointer, into: y + first * pool.outputSize, argmax: argmax + first * pool.outputSize,
                batch: samples)
            kept += chunkKept
        }
        conv.keptCount = kept
    }

    /// Both layers' backward pass from `dy`, the gradient of the pooling's output: the
    /// convolution's parameter gradients, and its input gradient `dx` when not nil.
    /// `keptGradients` (room for the convolution's output gradient: the buffer the layers would
    /// use for it) receives the kept fields' gradient rows, gathered chunk by chunk.
    func backward(
        outputGradient dy: UnsafePointer<Float>, inputGradient dx: UnsafeMutablePointer<Float>?,
        keptGradients: UnsafeMutablePointer<Float>, batch: Int
    ) {
        guard let argmax = pool.argmax else { preconditionFailure("\(pool.name): prepare(capacity:) was not called") }
        let filters = conv.filters, db = conv.biasGradient
        db.update(repeating: 0, count: filters)
        if dx == nil && pool.tiles {
            gatherGradientRows(dy, argmax: argmax, into: keptGradients, batch: batch)
            conv.kernelGradient(keptGradients: keptGradients)
            return
        }
        let keptRows = conv.keptRows.baseAddress!
        var c = 0  // the next kept field
        for first in stride(from: 0, to: batch, by: chunk) {
            let samples = min(chunk, batch - first), firstRow = first * conv.positions, rows = samples * conv.positions
            let dz = scratch.pointer
            pool.unpool(
                dy + first * pool.outputSize, argmax: argmax + first * pool.outputSize, into: dz, batch: samples)
            for r in 0..<rows {
                let g = dz + r * filters
                for j in 0..<filters { db[j] += g[j] }
            }
            if let dx { conv.inputGradient(dz, batch: samples, into: dx + first * conv.inputSize) }
            while c < conv.keptCount && Int(keptRows[c]) < firstRow + rows {
                (keptGradients + c * filters).update(from: dz + (Int(keptRows[c]) - firstRow) * filters, count: filters)
                c += 1
            }
        }
        conv.kernelGradient(keptGradients: keptGradients)
    }

    /// Without an input gradient to compute, and with windows that tile the convolution's output,
    /// no chunk of its gradient need be written: one pass over the convolution's output rows, in
    /// order, builds each row's gradient in registers from `dy` and the argmax positions (the
    /// pooled gradient where the row holds the maximum, 0 elsewhere, as `unpool` writes it), adds
    /// it to the bias gradient (the same sums in the same order as the layers apart) and writes
    /// it to `keptGradients` when the row's field was kept.
    private func gatherGradientRows(
        _ dy: UnsafePointer<Float>, argmax: UnsafePointer<UInt16>,
        into keptGradients: UnsafeMutablePointer<Float>, batch: Int
    ) {
        let (oh, ow, filters) = (conv.outputShape[0], conv.outputShape[1], conv.filters)
        let (ph, pw, size) = (pool.outputShape[0], pool.outputShape[1], pool.pool)
        let db = conv.biasGradient, keptRows = conv.keptRows.baseAddress!, kept = conv.keptCount
        var (row, c) = (0, 0)  // the current output row, the next kept field
        for n in 0..<batch {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    let o = ((n * ph + oy / size) * pw + ox / size) * filters
                    let (g, at) = (dy + o, argmax + o)
                    let position = UInt16((oy % size) * size + ox % size)
                    // Two plain loops (the compiler vectorises them), with and without a kept row.
                    if c < kept && Int(keptRows[c]) == row {
                        let out = keptGradients + c * filters
                        for j in 0..<filters {
                            let gradient: Float = at[j] == position ? g[j] : 0
                            db[j] += gradient
                            out[j] = gradient
                        }
                        c += 1
                    } else {
                        for j in 0..<filters { db[j] += at[j] == position ? g[j] : 0 }
                    }
                    row += 1
                }
            }
        }
    }
}
