import CPrefetch

/// Updates the flat parameter buffer from the flat (already averaged) gradient buffer.
/// Every rank calls it with identical inputs, so every replica stays identical.
public protocol Optimizer: AnyObject {
    /// How many updates have been applied (the update in progress included).
    var iterations: Int { get set }
    /// Named state buffers (e.g. Adam's `m` and `v`), each `parameterCount` long, for checkpoints.
    var state: [(name: String, buffer: FloatBuffer)] { get }
    /// Makes `buffers` (one for each of `state`, in its order and of its sizes, holding the same
    /// values) the state from now on: a trainer places it where the ranks of a machine share it.
    func useState(_ buffers: [FloatBuffer])
    /// Applies update number `iterations` to the parameters in `range` (the caller advances
    /// `iterations` first, once per update), reading them from `parameters` and writing the
    /// updated values to `updated`, which is either `parameters` itself or a buffer that overlaps
    /// it nowhere. Element-wise, so disjoint ranges may be updated on different threads at once,
    /// with the same result as one call over all of them. Returns false when a gradient in `range`
    /// was NaN or infinite (checked in the same pass, so it costs no extra memory traffic); the
    /// parameters are then no longer trustworthy.
    func update(
        parameters: UnsafePointer<Float>, into updated: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
        range: Range<Int>, learningRate: Float
    ) -> Bool
}

extension Optimizer {
    /// One whole update: advances `iterations` and updates all `count` parameters.
    @discardableResult
    public func step(
        parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, count: Int, learningRate: Float
    ) -> Bool {
        iterations += 1
        return update(
            parameters: parameters, into: parameters, gradients: gradients, range: 0..<count, learningRate: learningRate
        )
    }
}

extension Optimizer {
    /// `update` into a buffer other cores will read (`updated` overlaps `parameters` nowhere): the
    /// new values are computed a chunk at a time into `chunk`, a private buffer, and streamed on
    /// (`dptrain_stream_copy`), with stores that do not first fetch `updated`'s lines. An ordinary
    /// store to a line another core has read must wait for that core to give the line up, which
    /// on some hosts costs more than the update itself (docs/PERFORMANCE.md, 2026-12-06). The same
    /// values as `update`, bit for bit, with its stores fenced before this returns.
    func updateStreaming(
        parameters: UnsafePointer<Float>, into updated: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
        range: Range<Int>, learningRate: Float, chunk: FloatBuffer
    ) -> Bool {
        var finite = true
        for start in stride(from: range.lowerBound, to: range.upperBound, by: chunk.count) {
            let part = start..<min(start + chunk.count, range.upperBound)
            // `into` is indexed like the parameters, so element `start` lands on chunk[0].
            finite =
                update(
                    parameters: parameters, into: chunk.pointer - start, gradients: gradients, range: part,
                    learningRate: learningRate) && finite
            dptrain_stream_copy(updated + start, chunk.pointer, part.count)
        }
        return finite
    }
}

/// Runs `body(i, source, target)` for every `i` in `0..<count`, where `body` reads element `i`
/// of `source` and writes element `i` of `target`, and `target` is either `source` or a buffer
/// that overlaps it nowhere. In place, both arguments are the same pointer, so the vectoriser
/// sees that no other element is involved; given two pointers that might overlap, it would check
/// at run time, find that they are equal and fall back to one element at a time.
@inline(__always)
func forEachElement(
    from source: UnsafePointer<Float>, to target: UnsafeMutablePointer<Float>, count: Int,
    _ body: (Int, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void
) {
    if UnsafeMutablePointer(mutating: source) == target {
        for i in 0..<count { body(i, UnsafePointer(target), target) }
    } else {
        for i in 0..<count { body(i, source, target) }
    }
}
