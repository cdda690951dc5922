import CMPI
import Foundation

/// `Communicator` over OpenMPI's `MPI_COMM_WORLD`.
///
/// Errors are returned, not fatal (`MPI_ERRORS_RETURN`), and every return code is checked: a
/// failing call prints the operation, the rank and MPI's own message, then `MPI_Abort`s the job.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let worldSize: Int
    private let world = dpt_comm_world()

    /// True when this process was started by mpirun/srun (so `MPI_Init` finds a job to join).
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"].contains { env[$0] != nil }
    }

    public init() {
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 { MPI_Init(nil, nil) }
        MPI_Comm_set_errhandler(world, dpt_errors_return())
        var r: Int32 = 0, n: Int32 = 0
        MPI_Comm_rank(world, &r)
        MPI_Comm_size(world, &n)
        rank = Int(r)
        worldSize = Int(n)
    }

    public var summary: String {
        var version = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING))
        var length: Int32 = 0
        MPI_Get_library_version(&version, &length)
        let name = Self.string(version).split(separator: ",").first.map(String.init) ?? "MPI"
        return "\(name), \(worldSize) rank\(worldSize == 1 ? "" : "s")"
    }

    private func check(_ code: Int32, _ operation: String) {
        guard code != dpt_success() else { return }
        var text = [CChar](repeating: 0, count: Int(dpt_max_error_string()))
        var length: Int32 = 0
        MPI_Error_string(code, &text, &length)
        abort(code: 1, message: "rank \(rank): \(operation) failed: \(Self.string(text))")
    }

    private static func string(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        check(MPI_Allreduce(dpt_in_place(), buffer, Int32(count), dpt_float(), dpt_op_sum(), world), "MPI_Allreduce(sum, \(count) floats)")
    }

    public func allreduceMax(_ buffer: UnsafeMutablePointer<Double>, count: Int) {
        check(MPI_Allreduce(dpt_in_place(), buffer, Int32(count), dpt_double(), dpt_op_max(), world), "MPI_Allreduce(max, \(count) doubles)")
    }

    public func broadcast(_ bytes: UnsafeMutableRawPointer, count: Int, root: Int) {
        // MPI counts are Int32: send large buffers in chunks.
        var offset = 0
        repeat {
            let n = min(count - offset, 1 << 30)
            check(MPI_Bcast(bytes + offset, Int32(n), dpt_byte(), Int32(root), world), "MPI_Bcast(\(count) bytes from rank \(root))")
            offset += n
        } while offset < count
    }

    public func allgather(_ value: Int32) -> [Int32] {
        var mine = value
        var all = [Int32](repeating: 0, count: worldSize)
        check(MPI_Allgather(&mine, 1, dpt_int32(), &all, 1, dpt_int32(), world), "MPI_Allgather")
        return all
    }

    public func barrier() { check(MPI_Barrier(world), "MPI_Barrier") }

    public func abort(code: Int32, message: String) -> Never {
        FileHandle.standardError.write(Data("dptrain: \(message)\n".utf8))
        MPI_Abort(world, code)
        exit(code)
    }

    public func finalize() { MPI_Finalize() }
}
