/// A fixed-size, 64-byte-aligned, zero-initialised Float32 buffer that lives as long as its owner.
/// Training allocates all of these at start-up; a training step allocates nothing.
///
/// A buffer made with `init(borrowing:count:owner:)` lies in memory that `owner` allocated and
/// frees (an MPI shared-memory window): it keeps the owner alive and frees nothing itself.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>
    private let owner: AnyObject?

    public init(count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
        owner = nil
    }

    /// `count` floats at `pointer`, which `owner` allocated and keeps valid while it lives.
    public init(borrowing pointer: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject) {
        self.count = count
        self.pointer = pointer
        self.owner = owner
    }

    deinit { if owner == nil { pointer.deallocate() } }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
    public var array: [Float] { Array(buffer) }

    public func zero() { pointer.update(repeating: 0, count: count) }

    public func copy(from values: [Float]) {
        precondition(values.count == count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) }
    }
}
