/// All trainable parameters in one flat Float32 buffer and their gradients in another.
///
/// Layers hold views (offset, shape) into the two buffers, so one allreduce moves every
/// gradient, an optimizer is one loop over `count` floats, and a checkpoint is the list of
/// `entries`. The gradient buffer has `extraSlots` floats after the gradients, for per-step
/// statistics that travel in the same allreduce. Stores made with `sharingValuesOf:` read and
/// write the same parameter values but have gradients of their own (one per worker thread).
public final class ParameterStore: @unchecked Sendable {
    /// A named tensor inside the flat buffers.
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }

        public init(name: String, shape: [Int], offset: Int) {
            self.name = name
            self.shape = shape
            self.offset = offset
        }
    }

    public let entries: [Entry]
    public let count: Int
    /// The current parameter values; `Model.useValues` moves a model to another buffer.
    public internal(set) var values: FloatBuffer
    /// The gradients and the extra slots; `Model.useGradients` moves a model to another buffer.
    public internal(set) var gradients: FloatBuffer

    public init(entries: [Entry], extraSlots: Int = 0, sharingValuesOf other: ParameterStore? = nil) {
        self.entries = entries
        count = entries.last.map { $0.offset + $0.count } ?? 0
        precondition(other.map { $0.entries == entries } ?? true, "a shared store must have the same entries")
        values = other?.values ?? FloatBuffer(count: count)
        gradients = FloatBuffer(count: count + extraSlots)
    }

    public func entry(named name: String) -> Entry? { entries.first { $0.name == name } }
}

/// One tensor of a store, as a layer uses it: its values in the store's current value buffer
/// (which a trainer may switch between steps, see `Model.useValues`) and its gradients.
public struct ParameterView {
    let store: ParameterStore
    let offset: Int
    var values: UnsafeMutablePointer<Float> { store.values.pointer + offset }
    var gradients: UnsafeMutablePointer<Float> { store.gradients.pointer + offset }
}
