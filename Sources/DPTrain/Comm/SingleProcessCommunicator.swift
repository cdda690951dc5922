import Foundation

/// One process, no MPI: every collective is the identity. Used when the binary runs without
/// mpirun (the single-node fallback, where the trainer's worker threads use every core) and in
/// unit tests.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var worldSize: Int { 1 }
    public var localSize: Int { 1 }
    public var summary: String { "single process (no MPI)" }
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {}
    public func allreduceMax(_ buffer: UnsafeMutablePointer<Double>, count: Int) {}
    public func allreduceSumBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int) {}
    public func broadcast(_ bytes: UnsafeMutableRawPointer, count: Int, root: Int) {}
    public func allgather(_ value: Int32) -> [Int32] { [value] }
    public func allgather(_ values: [Double]) -> [[Double]] { [values] }
    public func allgather(bytes: [UInt8]) -> [[UInt8]] { [bytes] }
    public func barrier() {}
    public func abort(code: Int32, message: String) -> Never {
        FileHandle.standardError.write(Data("dptrain: \(message)\n".utf8))
        exit(code)
    }
    public func finalize() {}
}
