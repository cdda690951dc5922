import CMPI
import Foundation

/// `Communicator` over OpenMPI's `MPI_COMM_WORLD`.
///
/// Errors are returned, not fatal (`MPI_ERRORS_RETURN`), and every return code is checked: a
/// failing call prints the operation, the rank and MPI's own message, then `MPI_Abort`s the job.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let worldSize: Int
    public let localSize: Int
    let world = dpt_comm_world()
    /// Bounds how long any collective may take (see `Watchdog`); nil: unbounded.
    public var watchdog: Watchdog?
    /// Whether MPI granted `MPI_THREAD_SERIALIZED`: a thread other than the one that started MPI
    /// may make the calls, one thread at a time (what `OverlappedExchange` needs).
    public let threadsMayCallMPI: Bool

    /// True when this process was started by mpirun/srun (so `MPI_Init` finds a job to join).
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"].contains { env[$0] != nil }
    }

    /// This process's rank as the launcher (mpirun, srun) set it in the environment, readable
    /// before MPI starts; nil when not launched as a rank.
    public static var rankFromLauncher: Int? {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"].lazy.compactMap { env[$0].flatMap { Int($0) } }.first
    }

    public init() {
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        var granted: Int32 = 0
        if initialized == 0 {
            MPI_Init_thread(nil, nil, dpt_thread_serialized(), &granted)
        } else {
            MPI_Query_thread(&granted)
        }
        threadsMayCallMPI = granted >= dpt_thread_serialized()
        MPI_Comm_set_errhandler(world, dpt_errors_return())
        var r: Int32 = 0, n: Int32 = 0
        MPI_Comm_rank(world, &r)
        MPI_Comm_size(world, &n)
        rank = Int(r)
        worldSize = Int(n)
        var local: MPI_Comm? = nil
        var localCount: Int32 = 1
        if MPI_Comm_split_type(world, dpt_comm_type_shared(), r, dpt_info_null(), &local) == dpt_success() {
            MPI_Comm_size(local, &localCount)
            MPI_Comm_free(&local)
        }
        localSize = Int(localCount)
    }

    public var summary: String {
        var version = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING))
        var length: Int32 = 0
        MPI_Get_library_version(&version, &length)
        let name = Self.string(version).split(separator: ",").first.map(String.init) ?? "MPI"
        return "\(name), \(worldSize) rank\(worldSize == 1 ? "" : "s")"
    }

    /// Runs one MPI call under the watchdog and checks its return code.
    func call(_ operation: StaticString, _ body: () -> Int32) {
        watchdog?.begin(operation)
        let code = body()
        watchdog?.end()
        check(code, "\(operation)")
    }

    private func check(_ code: Int32, _ operation: String) {
        guard code != dpt_success() else { return }
        abort(code: 1, message: "rank \(rank): \(operation) failed: \(errorString(code))")
    }

    /// MPI's message for an error code.
    func errorString(_ code: Int32) -> String {
        var text = [CChar](repeating: 0, count: Int(dpt_max_error_string()))
        var length: Int32 = 0
        MPI_Error_string(code, &text, &length)
        return Self.string(text)
    }

    /// Ranks that share a machine sum in shared memory and update one shared copy of the
    /// parameters (`SharedMemoryGradientSum`), unless DPTRAIN_GRADIENT_SUM asks for
    /// `shared-sum` (each rank updates its own copy) or `allreduce` (one MPI_Allreduce of the
    /// whole gradient). Where ranks ask for different ones, all take the last of those that any
    /// rank asked for.
    public func makeGradientSum(
        count: Int, statistics: Int, stateBuffers: Int, buckets: [Range<Int>]?, compression: AllreduceCompression,
        powerSGD: PowerSGD?, pool: WorkerPool, log: (String) -> Void
    ) -> any GradientSum {
        let kinds = ["shared", "shared-sum", "allreduce"]
        let asked = ProcessInfo.processInfo.environment["DPTRAIN_GRADIENT_SUM"] ?? kinds[0]
        if isRoot && !kinds.contains(asked) {
            log("warning: DPTRAIN_GRADIENT_SUM=\(asked) is not one of \(kinds.joined(separator: ", ")): using shared")
        }
        let all = allgather(Int32(kinds.firstIndex(of: asked) ?? 0))
        let kind = Int(all.max()!)
        if isRoot && all.contains(where: { $0 != all[0] }) {
            log("warning: DPTRAIN_GRADIENT_SUM differs between the ranks: every rank uses \(kinds[kind])")
        }
        guard kind < 2 else {
            return AllreduceGradientSum(
                comm: self, count: count, statistics: statistics, compression: compression, pool: pool)
        }
        return SharedMemoryGradientSum.make(
            comm: self, count: count, statistics: statistics, stateBuffers: stateBuffers, sharesUpdate: kind == 0,
            buckets: buckets, compression: compression, powerSGD: powerSGD, pool: pool, log: log)
    }

    private static func string(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        call("MPI_Allreduce(sum)") {
            MPI_Allreduce(dpt_in_place(), buffer, Int32(count), dpt_float(), dpt_op_sum(), world)
        }
    }

    /// MPI's sum of bfloat16 values, created on first use: a user-defined, commutative operation.
    private lazy var bf16Sum: MPI_Op? = {
        var op: MPI_Op?
        let sum:
            @convention(c) (
                UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int32>?,
                UnsafeMutablePointer<MPI_Datatype?>?
            ) -> Void = { incoming, accumulated, length, _ in
                guard let incoming, let accumulated, let length else { return }
                BFloat16.add(
                    incoming.assumingMemoryBound(to: UInt16.self),
                    into: accumulated.assumingMemoryBound(to: UInt16.self), count: Int(length.pointee))
            }
        check(MPI_Op_create(sum, 1, &op), "MPI_Op_create(bf16 sum)")
        return op
    }()

    public func allreduceSumBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int) {
        let op = bf16Sum
        call("MPI_Allreduce(bf16 sum)") { MPI_Allreduce(dpt_in_place(), buffer, Int32(count), dpt_uint16(), op, world) }
    }

    public func allreduceMax(_ buffer: UnsafeMutablePointer<Double>, count: Int) {
        call("MPI_Allreduce(max)") {
            MPI_Allreduce(dpt_in_place(), buffer, Int32(count), dpt_double(), dpt_op_max(), world)
        }
    }

    public func broadcast(_ bytes: UnsafeMutableRawPointer, count: Int, root: Int) {
        // MPI counts are Int32: send large buffers in chunks.
        var offset = 0
        repeat {
            let n = min(count - offset, 1 << 30)
            call("MPI_Bcast") { MPI_Bcast(bytes + offset, Int32(n), dpt_byte(), Int32(root), world) }
            offset += n
        } while offset < count
    }

    public func allgather(_ value: Int32) -> [Int32] {
        var mine = value
        var all = [Int32](repeating: 0, count: worldSize)
        call("MPI_Allgather") { MPI_Allgather(&mine, 1, dpt_int32(), &all, 1, dpt_int32(), world) }
        return all
    }

    public func allgather(_ values: [Double]) -> [[Double]] {
        var mine = values
        var all = [Double](repeating: 0, count: worldSize * values.count)
        call("MPI_Allgather") {
            MPI_Allgather(&mine, Int32(values.count), dpt_double(), &all, Int32(values.count), dpt_double(), world)
        }
        return (0..<worldSize).map { Array(all[$0 * values.count..<($0 + 1) * values.count]) }
    }

    public func allgather(bytes: [UInt8]) -> [[UInt8]] {
        var mine = bytes
        var all = [UInt8](repeating: 0, count: worldSize * bytes.count)
        call("MPI_Allgather") {
            MPI_Allgather(&mine, Int32(bytes.count), dpt_byte(), &all, Int32(bytes.count), dpt_byte(), world)
        }
        return (0..<worldSize).map { Array(all[$0 * bytes.count..<($0 + 1) * bytes.count]) }
    }

    public func barrier() { call("MPI_Barrier") { MPI_Barrier(world) } }

    public func abort(code: Int32, message: String) -> Never {
        FileHandle.standardError.write(Data("dptrain: \(message)\n".utf8))
        MPI_Abort(world, code)
        exit(code)
    }

    public func finalize() { MPI_Finalize() }
}
