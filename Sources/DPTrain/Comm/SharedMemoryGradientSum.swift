import CAffinity
import CMPI
import Foundation

/// The sum over ranks as threads take it: the ranks of a machine leave their gradients in one
/// shared-memory segment (`MPI_Win_allocate_shared`) and each sums a slice of them in place, in
/// local rank order, with no copy through MPI; across machines, the first rank of each (its
/// leader) exchanges the machine's sum with the other leaders, and the ranks read the result
/// from the segment. The parameters and the optimizer's state live in the segment too (`share`),
/// one copy a machine: each rank updates the slice it summed (ZeRO stage 1 within a machine), so
/// the update's time and memory are divided by the machine's ranks, as the worker threads divide
/// them.
///
/// The order of every sum is fixed: within a machine `((g0 + g1) + g2) + ...` by local rank, as
/// the worker threads add theirs; across machines the leaders exchange chunks (`MPI_Alltoall`),
/// each adds the machines' chunks in machine order, and `MPI_Allgather` returns the chunks. So N
/// ranks on one machine, N machines of one rank and one process of N threads give the same bits,
/// whatever MPI's own reduction order would be. Per step: two barriers of the machine's ranks
/// (four with several machines), which the watchdog bounds like any collective. With bfloat16
/// compression only what crosses the network is compressed (the chunks sum in float32 and are
/// rounded once); the statistic slots stay float32.
public final class SharedMemoryGradientSum: GradientSum {
    public let count: Int
    public let localBuffer: FloatBuffer?
    public let updateRange: Range<Int>
    /// The part of the sum this rank adds up (and finishes).
    private let summedPart: Range<Int>
    let comm: MPICommunicator
    let pool: WorkerPool
    let statisticSlots: Int
    let compression: AllreduceCompression
    let localRank: Int
    let localSize: Int
    /// The machines, and this one's place among them (its leader's rank in `leaders`).
    let machines: Int
    let machine: Int
    /// Whether rank 0 is one of this machine's ranks (which lend it their cores to evaluate),
    /// and the CPUs this machine's ranks may run on.
    let withRoot: Bool
    private let machineCPUs: cpu_set_t
    private let local: MPI_Comm?
    private let leaders: MPI_Comm?
    private let window: MPI_Win?
    /// Each local rank's gradient in the segment, by local rank.
    private let segments: [UnsafeMutablePointer<Float>]
    /// The sum: `machines * chunk` floats (the first `count` are the sum), in the segment when
    /// ranks share the machine.
    private let total: UnsafeMutablePointer<Float>
    /// The sum's statistic slots, as this rank read them.
    private let statistics: UnsafeMutableBufferPointer<Float>
    /// Ranks sharing a machine: two buffers of parameters (each update is written to the other,
    /// as the worker threads do) and the optimizer's state buffers in the segment, then two sets
    /// of a flag per local rank (`agree` alternates between them, so a rank that
    /// is already voting again never overwrites a vote another rank has yet to read).
    private let sharedValues: [FloatBuffer]
    private let sharedState: [FloatBuffer]
    private let votes: UnsafeMutablePointer<Int32>?
    private var votesCast = 0
    private let chunk: Int
    /// Leaders with several machines: the sum between machines.
    private let exchange: MachineExchange?
    /// One rank a machine with several machines: the gradient's buckets sent while backward runs.
    public let overlap: OverlappedExchange?
    /// Leaders with PowerSGD compression: what compresses the exchange.
    private let powerSGD: PowerSGD?

    /// Keeps the segment's memory valid for the buffers that borrow it (the window lives until the
    /// process ends: freeing it is a collective, which no destructor may start).
    private final class Segment {}

    /// Where OpenMPI places a shared window's backing file.
    static var backingDirectory: String {
        ProcessInfo.processInfo.environment["OMPI_MCA_osc_sm_backing_directory"] ?? "/dev/shm"
    }

    /// The segment's floats, each part 64-byte aligned: every local rank's gradient; on the first
    /// rank then the sum, two buffers of parameters, `stateBuffers` optimizer buffers, the votes.
    /// Each rank allocates `alignmentSlack` floats more, since MPI need not align its part: the
    /// parts start at its first 64-byte boundary.
    struct Layout {
        let gradientStride: Int, sumFloats: Int, parameterStride: Int, parameterBuffers: Int, localSize: Int
        /// `stateBuffers`: nil where the ranks do not share their parameters.
        init(count: Int, statistics: Int, machines: Int, chunk: Int, stateBuffers: Int?, localSize: Int) {
            gradientStride = (count + 15) & ~15
            sumFloats = (machines * chunk + 15) & ~15
            parameterStride = (count - statistics + 15) & ~15
            parameterBuffers = stateBuffers.map { 2 + $0 } ?? 0
            self.localSize = localSize
        }
        var sum: Int { gradientStride }
        var values: Int { sum + sumFloats }
        func state(_ k: Int) -> Int { values + (2 + k) * parameterStride }
        var votes: Int { values + parameterBuffers * parameterStride }
        /// The floats the first local rank allocates; every other rank allocates `gradientStride`.
        var firstRankFloats: Int { votes + 2 * localSize }
        var bytes: Int { 4 * (firstRankFloats + (localSize - 1) * gradientStride + localSize * Self.alignmentSlack) }
        static let alignmentSlack = 16
    }

    /// A `GradientSum` over `comm`'s ranks: this one when ranks share a machine or several machines
    /// take part, `AllreduceGradientSum` with one rank, or, with a warning through `log` naming
    /// the size needed and the fallback, where the segment cannot be made. `stateBuffers`: how
    /// many parameter-sized buffers the optimizer keeps; `sharesUpdate`: whether the ranks of a
    /// machine share them and the parameters, each updating its slice (or each updates all of its
    /// own); `buckets`: with one rank a machine and several machines, send the gradient in these
    /// buckets while backward runs (`OverlappedExchange`; nil: after it).
    /// Collective: every rank calls it at the same point, with the same arguments.
    public static func make(
        comm: MPICommunicator, count: Int, statistics: Int, stateBuffers: Int, sharesUpdate: Bool,
        buckets: [Range<Int>]?, compression: AllreduceCompression, powerSGD: PowerSGD?, pool: WorkerPool,
        log: (String) -> Void
    ) -> any GradientSum {
        let fallback = {
            AllreduceGradientSum(
                comm: comm, count: count, statistics: statistics, compression: compression, pool: pool)
        }
        guard comm.worldSize > 1 else { return fallback() }
        let world = comm.world
        var local: MPI_Comm? = nil
        comm.call("MPI_Comm_split_type") {
            MPI_Comm_split_type(world, dpt_comm_type_shared(), Int32(comm.rank), dpt_info_null(), &local)
        }
        MPI_Comm_set_errhandler(local, dpt_errors_return())
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(local, &r)
        MPI_Comm_size(local, &s)
        let (localRank, localSize) = (Int(r), Int(s))
        var lowestRank: Int32 = 0, ownRank = Int32(comm.rank)
        comm.call("MPI_Allreduce(lowest rank of this machine)") {
            MPI_Allreduce(&ownRank, &lowestRank, 1, dpt_int32(), dpt_op_min(), local)
        }
        let machineCPUs = Self.machineAffinity(comm: comm, local: local, ranks: localSize)
        var leaders: MPI_Comm? = nil
        comm.call("MPI_Comm_split") {
            MPI_Comm_split(world, localRank == 0 ? 0 : dpt_undefined(), Int32(comm.rank), &leaders)
        }
        let machines = Int(comm.allgather(localRank == 0 ? 1 : 0).reduce(0, +))
        var machine: Int32 = 0
        if localRank == 0 {
            MPI_Comm_set_errhandler(leaders, dpt_errors_return())
            MPI_Comm_rank(leaders, &machine)
        }
        let chunk = (count + machines - 1) / machines
        let layout = Layout(
            count: count, statistics: statistics, machines: machines, chunk: chunk,
            stateBuffers: sharesUpdate ? stateBuffers : nil, localSize: localSize)
        var window: MPI_Win? = nil
        var base: UnsafeMutableRawPointer? = nil
        var problem: String? = nil
        if localSize > 1 {
            let needed = layout.bytes + localSize * 4096
            let free = freeBytes(backingDirectory)
            if let free, free < needed + needed / 4 {
                problem =
                    "\(backingDirectory) has \(megabytes(free)) free; the shared segment of the \(localSize) ranks "
                    + "of this machine (\(sharesUpdate ? "gradients, parameters, optimizer state" : "gradients")) "
                    + "needs \(megabytes(needed))"
            } else {
                let floats = (localRank == 0 ? layout.firstRankFloats : layout.gradientStride) + Layout.alignmentSlack
                var info: MPI_Info? = nil
                MPI_Info_create(&info)
                MPI_Info_set(info, "alloc_shared_noncontig", "true")
                let code = MPI_Win_allocate_shared(MPI_Aint(4 * floats), 4, info, local, &base, &window)
                MPI_Info_free(&info)
                if code != dpt_success() {
                    problem =
                        "MPI_Win_allocate_shared of \(megabytes(4 * floats)) in \(backingDirectory) failed (\(comm.errorString(code)))"
                }
            }
        }
        // Every rank learns whether any machine failed, and all take the same path.
        let failures = comm.allgather(problem == nil ? 0 : 1)
        guard failures.allSatisfy({ $0 == 0 }) else {
            if let problem {
                log(
                    "warning: rank \(comm.rank): \(problem): summing gradients with MPI_Allreduce instead, which copies "
                        + "them between the ranks of a machine (slower; give the machine a larger \(backingDirectory), "
                        + "e.g. docker --shm-size)")
            } else if comm.isRoot {
                log(
                    "warning: a machine could not make its shared gradient segment: summing gradients with MPI_Allreduce"
                )
            }
            return fallback()
        }
        return SharedMemoryGradientSum(
            comm: comm, count: count, statistics: statistics, compression: compression, pool: pool,
            local: local, localRank: localRank, localSize: localSize, leaders: localRank == 0 ? leaders : nil,
            machines: machines, machine: Int(machine), withRoot: lowestRank == 0, machineCPUs: machineCPUs,
            window: window, chunk: chunk, layout: layout,
            buckets: localSize == 1 && machines > 1 && comm.threadsMayCallMPI && powerSGD == nil ? buckets : nil,
            powerSGD: powerSGD)
    }

    private init(
        comm: MPICommunicator, count: Int, statistics: Int, compression: AllreduceCompression, pool: WorkerPool,
        local: MPI_Comm?, localRank: Int, localSize: Int, leaders: MPI_Comm?, machines: Int, machine: Int,
        withRoot: Bool, machineCPUs: cpu_set_t, window: MPI_Win?, chunk: Int, layout: Layout, buckets: [Range<Int>]?,
        powerSGD: PowerSGD?
    ) {
        (self.comm, self.count, statisticSlots, self.compression, self.pool) = (
            comm, count, statistics, compression, pool
        )
        (self.local, self.localRank, self.localSize, self.leaders) = (local, localRank, localSize, leaders)
        (self.machines, self.machine, self.window, self.chunk) = (machines, machine, window, chunk)
        (self.withRoot, self.machineCPUs) = (withRoot, machineCPUs)
        let n = count - statistics
        let owner = Segment()
        if let window {
            MPI_Win_set_errhandler(window, dpt_errors_return())
            segments = (0..<localSize).map { r in
                var size: MPI_Aint = 0
                var unit: Int32 = 0
                var pointer: UnsafeMutableRawPointer? = nil
                MPI_Win_shared_query(window, Int32(r), &size, &unit, &pointer)
                let aligned = pointer!.alignedUp(toMultipleOf: 64)
                return aligned.bindMemory(to: Float.self, capacity: count)
            }
            let first = segments[0]
            total = first + layout.sum
            localBuffer = FloatBuffer(borrowing: segments[localRank], count: count, owner: owner)
            let sharing = layout.parameterBuffers > 0
            sharedValues = (0..<(sharing ? 2 : 0)).map {
                FloatBuffer(borrowing: first + layout.values + $0 * layout.parameterStride, count: n, owner: owner)
            }
            sharedState = (0..<max(layout.parameterBuffers - 2, 0)).map {
                FloatBuffer(borrowing: first + layout.state($0), count: n, owner: owner)
            }
            votes =
                sharing
                ? UnsafeMutableRawPointer(first + layout.votes).bindMemory(to: Int32.self, capacity: 2 * localSize)
                : nil
            summedPart = Self.part(localRank, of: localSize, n)
            updateRange = sharing ? summedPart : 0..<n
            MPI_Win_lock_all(dpt_mode_nocheck(), window)
        } else {
            // One rank on this machine: its workers' sum is the machine's, in a buffer padded to
            // the chunks the leaders exchange.
            let own = FloatBuffer(count: machines * chunk)
            segments = [own.pointer]
            total = own.pointer
            localBuffer = own
            (sharedValues, sharedState, votes) = ([], [], nil)
            (summedPart, updateRange) = (0..<n, 0..<n)
        }
        self.statistics = .allocate(capacity: statistics)
        self.statistics.initialize(repeating: 0)
        let exchange =
            leaders != nil && machines > 1
            ? MachineExchange(
                comm: comm, leaders: leaders, machines: machines, machine: machine,
                capacity: count + (buckets?.count ?? 0) + 1)
            : nil
        self.exchange = exchange
        self.powerSGD = exchange == nil ? nil : powerSGD
        if let exchange { powerSGD?.attach(exchange) }
        overlap = buckets.flatMap { buckets in
            exchange.map {
                OverlappedExchange(exchange: $0, buckets: buckets, count: count, bf16: compression == .bf16)
            }
        }
    }

    public var description: String {
        let within =
            localSize > 1
            ? "\(localSize) ranks a machine sum in shared memory"
                + (votes != nil ? " and update one shared copy of the parameters" : "")
            : "one rank a machine"
        guard machines > 1 else { return within }
        var across = ", \(machines) machines exchange their sums"
        switch compression {
        case .bf16: across += " as bfloat16"
        case .powersgd: across += " as PowerSGD factors" + (powerSGD?.bf16 == true ? " (P as bfloat16)" : "")
        case .none: break
        }
        if let overlap {
            let buckets = overlap.buckets.count
            across += " in \(buckets) bucket\(buckets == 1 ? "" : "s") while backward runs"
        }
        return within + across
    }

    public func sum(
        _ local: UnsafeMutablePointer<Float>, finish: (UnsafeMutablePointer<Float>, Range<Int>) -> Void
    )
        -> SummedGradient
    {
        precondition(local == segments[localSize > 1 ? localRank : 0], "the workers' sum must be in localBuffer")
        let n = count - statisticSlots
        guard localSize > 1 else {
            if let overlap {
                overlap.finish()  // the statistics too
            } else if machines > 1 {
                exchangeSums()
            }
            finish(total, updateRange)
            return SummedGradient(gradient: total, statistics: total + n)
        }
        machineBarrier()  // every rank's gradient is in the segment
        let mine = summedPart
        let (segments, total, ranks) = (self.segments, self.total, localSize)
        pool.run { w in
            let piece = pool.slice(w, of: mine.count)
            let range = mine.lowerBound + piece.lowerBound..<mine.lowerBound + piece.upperBound
            // By local rank, as the worker threads add theirs.
            let (a, b) = (segments[0], segments[1])
            for i in range { total[i] = a[i] + b[i] }
            for r in 2..<max(ranks, 2) {
                let g = segments[r]
                for i in range { total[i] += g[i] }
            }
        }
        // Every rank adds the few statistic slots itself, in the same order.
        for k in 0..<statisticSlots {
            var s = segments[0][n + k] + segments[1][n + k]
            for r in 2..<max(ranks, 2) { s += segments[r][n + k] }
            statistics[k] = s
        }
        let sharing = votes != nil
        if machines > 1 {
            if localRank == 0 { for k in 0..<statisticSlots { total[n + k] = statistics[k] } }
            machineBarrier()  // the machine's sum is complete
            if leaders != nil {
                exchangeSums()
                if !sharing { finish(total, 0..<n) }
            }
            machineBarrier()  // the leader has the sum over machines
            for k in 0..<statisticSlots { statistics[k] = total[n + k] }
            if sharing { finish(total, mine) }
        } else {
            finish(total, mine)
            if !sharing { machineBarrier() }  // every rank needs the whole sum
        }
        return SummedGradient(gradient: total, statistics: UnsafePointer(statistics.baseAddress!))
    }

    public func share(values: FloatBuffer, state: [FloatBuffer]) -> SharedParameters? {
        guard sharedValues.count == 2 else { return nil }
        precondition(state.count == sharedState.count && values.count == sharedValues[0].count)
        if localRank == 0 {
            for (from, to) in zip([values] + state, [sharedValues[0]] + sharedState) where from !== to {
                to.pointer.update(from: from.pointer, count: to.count)
            }
        }
        machineBarrier()
        return SharedParameters(values: sharedValues[0], spare: sharedValues[1], state: sharedState)
    }

    public func agree(_ ok: Bool) -> Bool {
        guard let votes else { return ok }
        let set = votes + (votesCast & 1) * localSize
        votesCast += 1
        set[localRank] = ok ? 1 : 0
        machineBarrier()
        return (0..<localSize).allSatisfy { set[$0] == 1 }
    }

    public func lendCoresToRoot(_ work: (LentCores) throws -> Void) rethrows {
        guard withRoot, localSize > 1, let local else {
            if comm.isRoot { try work(.none) }
            return
        }
        // The other ranks wait in a barrier they poll with pauses, not in one that spins (MPI's
        // own spin would take the cores rank 0 is given); rank 0 enters it after its work, even
        // when that throws, so no rank is left waiting.
        defer {
            comm.call("MPI_Ibarrier(ranks of this machine, after rank 0's evaluation)") {
                var request: MPI_Request? = nil
                var code = MPI_Ibarrier(local, &request)
                var done: Int32 = 0
                while code == dpt_success() {
                    code = MPI_Test(&request, &done, dpt_status_ignore())
                    if done != 0 { break }
                    usleep(200)
                }
                return code
            }
        }
        if comm.isRoot { try work(LentCores(ranks: localSize - 1, cpus: machineCPUs)) }
    }

    /// The union of the affinity masks of the `ranks` ranks of `local` (collective over them).
    private static func machineAffinity(comm: MPICommunicator, local: MPI_Comm?, ranks: Int) -> cpu_set_t {
        var own = cpu_set_t()
        let size = MemoryLayout<cpu_set_t>.size
        _ = dptrain_get_affinity(&own, UInt(size))
        var all = [UInt8](repeating: 0, count: size * ranks)
        comm.call("MPI_Allgather(CPUs of this machine's ranks)") {
            MPI_Allgather(&own, Int32(size), dpt_byte(), &all, Int32(size), dpt_byte(), local)
        }
        var union = cpu_set_t()
        withUnsafeMutableBytes(of: &union) { bytes in
            for r in 0..<ranks { for i in 0..<size { bytes[i] |= all[r * size + i] } }
        }
        return union
    }

    /// Leaders: replaces `total` by its sum over the machines, added in machine order (the
    /// gradient as bfloat16 with bf16 compression and in PowerSGD's warm-up with its `bf16`, the
    /// statistics always in float32).
    private func exchangeSums() {
        guard let exchange else { return }
        let n = count - statisticSlots
        if let powerSGD, powerSGD.compresses {
            powerSGD.sum(total, riders: n..<count)
        } else if compression == .bf16 || powerSGD?.bf16 == true {
            exchange.sum(
                total, range: 0..<n, bf16: true, padded: true, pool: pool, operation: "MPI_Alltoall(bf16, machines)")
            exchange.sum(
                total, range: n..<count, bf16: false, padded: false, pool: nil,
                operation: "MPI_Alltoall(statistics, machines)")
        } else {
            exchange.sum(
                total, range: 0..<count, bf16: false, padded: true, pool: pool, operation: "MPI_Alltoall(machines)")
        }
    }

    /// A barrier of the machine's ranks, with the memory synchronisation the shared segment needs.
    private func machineBarrier() {
        MPI_Win_sync(window)
        comm.call("MPI_Barrier(ranks of this machine)") { MPI_Barrier(local) }
        MPI_Win_sync(window)
    }

    /// Part `k` of `parts` of `0..<n`, cut on 16-float boundaries (the last part takes the rest).
    static func part(_ k: Int, of parts: Int, _ n: Int) -> Range<Int> {
        func cut(_ k: Int) -> Int { k == parts ? n : (n * k / parts) & ~15 }
        return cut(k)..<cut(k + 1)
    }

    static func freeBytes(_ directory: String) -> Int? {
        var stats = statvfs()
        guard statvfs(directory, &stats) == 0 else { return nil }
        return Int(stats.f_bavail) * Int(stats.f_frsize)
    }

    static func megabytes(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }
}
