import CMPI

/// The machines' leaders summing a range of floats in machine order: each sends a chunk of the
/// range to each machine (`MPI_Alltoall`), adds the chunks it receives in machine order, and
/// `MPI_Allgather` returns the sums. Element `i` of the result is `((x0 + x1) + x2) + ...` over
/// the machines, whatever the range and its chunks, so a range summed whole or in buckets gives the
/// same bits. With bfloat16 the chunks travel as bfloat16, are summed in float32 and rounded once.
///
/// One exchange at a time (its scratch buffers are reused); any thread may run it where MPI grants
/// the thread level (only one thread calls MPI at a time).
final class MachineExchange {
    let comm: MPICommunicator
    let leaders: MPI_Comm?
    let machines: Int
    let machine: Int
    /// A range padded to `machines` equal chunks, as it travels and as it is received.
    private let send: UnsafeMutableBufferPointer<Float>
    private let received: UnsafeMutableBufferPointer<Float>
    private let halves: UnsafeMutableBufferPointer<UInt16>
    private let receivedHalves: UnsafeMutableBufferPointer<UInt16>

    /// For ranges of up to `capacity` floats.
    init(comm: MPICommunicator, leaders: MPI_Comm?, machines: Int, machine: Int, capacity: Int) {
        (self.comm, self.leaders, self.machines, self.machine) = (comm, leaders, machines, machine)
        let padded = machines * ((capacity + machines - 1) / machines)
        send = .allocate(capacity: padded)
        received = .allocate(capacity: padded)
        halves = .allocate(capacity: padded)
        receivedHalves = .allocate(capacity: padded)
        send.initialize(repeating: 0)
        received.initialize(repeating: 0)
        halves.initialize(repeating: 0)
        receivedHalves.initialize(repeating: 0)
    }

    /// Replaces `data[range]` by its sum over the machines. `padded`: `data + range.lowerBound`
    /// has room for the range padded to `machines` equal chunks, with zeros after it, so it
    /// travels from there without a copy. `pool`: threads for the additions (nil: this one).
    /// `riders`: a few more floats that travel after the range and are summed the same way (only
    /// where the range is copied: not `padded`).
    func sum(
        _ data: UnsafeMutablePointer<Float>, range: Range<Int>, bf16: Bool, padded: Bool, pool: WorkerPool?,
        operation: StaticString, riders: UnsafeMutableBufferPointer<Float>? = nil
    ) {
        guard let leaders, machines > 1, !range.isEmpty else { return }
        precondition(riders == nil || !padded)
        let (m, me, body, extra) = (machines, machine, range.count, riders?.count ?? 0)
        let n = body + extra
        let c = (n + m - 1) / m
        let start = data + range.lowerBound
        func split(_ count: Int, _ body: @escaping (Range<Int>) -> Void) {
            if let pool { pool.run { w in body(pool.slice(w, of: count)) } } else { body(0..<count) }
        }
        if bf16 {
            let (h, r) = (halves.baseAddress!, receivedHalves.baseAddress!)
            split(body) { part in BFloat16.compress(start, into: h, range: part) }
            if let riders { BFloat16.compress(riders.baseAddress!, into: h + body, range: 0..<extra) }
            for i in n..<m * c { h[i] = 0 }
            comm.call(operation) {
                MPI_Alltoall(h, Int32(c), dpt_uint16(), r, Int32(c), dpt_uint16(), leaders)
            }
            let end = min(c, max(n - me * c, 0))
            split(end) { part in
                for i in part {
                    var s = BFloat16.float(r[i])
                    for k in 1..<m { s += BFloat16.float(r[k * c + i]) }
                    h[me * c + i] = BFloat16.from(s)
                }
            }
            comm.call(operation) {
                MPI_Allgather(dpt_in_place(), 0, dpt_uint16(), h, Int32(c), dpt_uint16(), leaders)
            }
            split(body) { part in BFloat16.decompress(h, into: start, range: part) }
            if let riders { BFloat16.decompress(h + body, into: riders.baseAddress!, range: 0..<extra) }
            return
        }
        let out = padded ? start : send.baseAddress!
        if !padded {
            out.update(from: start, count: body)
            if let riders { (out + body).update(from: riders.baseAddress!, count: extra) }
            for i in n..<m * c { out[i] = 0 }
        }
        let r = received.baseAddress!
        comm.call(operation) {
            MPI_Alltoall(out, Int32(c), dpt_float(), r, Int32(c), dpt_float(), leaders)
        }
        let mine = out + me * c
        split(c) { part in
            for i in part { mine[i] = r[i] + r[c + i] }
            for k in 2..<max(m, 2) {
                for i in part { mine[i] += r[k * c + i] }
            }
        }
        comm.call(operation) {
            MPI_Allgather(dpt_in_place(), 0, dpt_float(), out, Int32(c), dpt_float(), leaders)
        }
        if !padded {
            start.update(from: out, count: body)
            if let riders { riders.baseAddress!.update(from: out + body, count: extra) }
        }
    }
}
