import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Tells, when a collective hangs, which of the other ranks still answer on the network.
///
/// A rank stuck in an allreduce cannot learn from MPI which peer is missing. So each rank listens
/// on a TCP port of its own (a background thread accepts and closes connections), and at start-up
/// all ranks exchange their host names and ports (`init`, a collective). The watchdog then asks
/// `unreachable`: it tries every other rank at once and lists those whose machine or link does not
/// answer within the timeout. A rank whose process died answers with a refusal, which also counts
/// as not answering; a rank that is alive but stuck answers.
public final class PeerProbe: @unchecked Sendable {
    public struct Peer: Sendable, Equatable {
        public let rank: Int
        public let host: String
        public let port: UInt16
    }

    /// Every rank's host and port, indexed by rank.
    public let peers: [Peer]
    public let rank: Int
    private let listener: Int32

    /// Starts this rank's listener and exchanges the addresses (every rank calls it, in order).
    /// Without a listener (no socket could be opened) this rank reports port 0, and the others
    /// do not probe it.
    public init(comm: any Communicator) {
        rank = comm.rank
        listener = Self.listen()
        let port = listener >= 0 ? Self.port(of: listener) : 0
        // A host name of up to 255 bytes, NUL-padded, then the port.
        var mine = [UInt8](repeating: 0, count: 258)
        let name = Array(Self.hostName().utf8.prefix(255))
        mine.replaceSubrange(0..<name.count, with: name)
        mine[256] = UInt8(port >> 8)
        mine[257] = UInt8(port & 0xFF)
        peers = comm.allgather(bytes: mine).enumerated().map { rank, bytes in
            let host = String(decoding: bytes[0..<256].prefix { $0 != 0 }, as: UTF8.self)
            return Peer(rank: rank, host: host, port: UInt16(bytes[256]) << 8 | UInt16(bytes[257]))
        }
        if listener >= 0 {
            let fd = listener
            let thread = Thread {
                while true {
                    let client = accept(fd, nil, nil)
                    if client >= 0 { close(client) } else if errno != EINTR { return }
                }
            }
            thread.name = "dptrain-probe"
            thread.start()
        }
    }

    /// The other ranks that do not accept a connection within `timeout` seconds, tried at once.
    public func unreachable(timeout: Double = 2) -> [Peer] {
        let others = peers.filter { $0.rank != rank && $0.port != 0 }
        var attempts: [(peer: Peer, fd: Int32)] = []
        var failed: [Peer] = []
        for peer in others {
            let fd = Self.startConnect(host: peer.host, port: peer.port)
            if fd >= 0 { attempts.append((peer, fd)) } else { failed.append(peer) }
        }
        defer { for a in attempts { close(a.fd) } }
        var pending = attempts.map { pollfd(fd: $0.fd, events: Int16(POLLOUT), revents: 0) }
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeout * 1e9)
        var answered = Set<Int32>()
        while !pending.isEmpty {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { break }
            let ready = poll(&pending, nfds_t(pending.count), Int32((deadline - now) / 1_000_000) + 1)
            if ready < 0 && errno != EINTR { break }
            for p in pending where p.revents != 0 {
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &error, &length)
                if error == 0 { answered.insert(p.fd) }
            }
            pending.removeAll { $0.revents != 0 }
        }
        return (failed + attempts.filter { !answered.contains($0.fd) }.map(\.peer)).sorted { $0.rank < $1.rank }
    }

    /// A listening TCP socket on every address, on a port the system picks; -1 if none.
    private static func listen() -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = INADDR_ANY
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, Glibc.listen(fd, 64) == 0 else {
            close(fd)
            return -1
        }
        return fd
    }

    private static func port(of fd: Int32) -> UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    /// A non-blocking connect to `host:port` under way; -1 if the name does not resolve.
    private static func startConnect(host: String, port: UInt16) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else { return -1 }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard fd >= 0 else { return -1 }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        if connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 && errno != EINPROGRESS {
            close(fd)
            return -1
        }
        return fd
    }

    static func hostName() -> String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "localhost" }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
