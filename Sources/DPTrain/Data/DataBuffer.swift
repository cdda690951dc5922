import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Bytes that stay put and unchanged for as long as this object lives: a region a reader
/// allocated and filled (an inflated file, parsed text), or a file mapped read-only. A mapped
/// file is not copied: the processes of one machine that map it share its pages in the page
/// cache, where each would otherwise hold a copy of its own.
public final class DataBuffer: @unchecked Sendable {
    public let base: UnsafeRawPointer
    public let count: Int
    /// Whether the bytes are a mapping of a file (else memory of this process).
    public let isMapped: Bool

    /// `count` bytes that `fill` writes (it gets the whole region).
    public convenience init(count: Int, fill: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        try self.init(capacity: count) { region in
            try fill(region)
            return count
        }
    }

    /// The first bytes of a region of `capacity` that `fill` writes, returning how many (at most
    /// `capacity`): for readers that know only a bound of their output.
    public init(capacity: Int, fill: (UnsafeMutableRawBufferPointer) throws -> Int) rethrows {
        let region = UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 1), alignment: 64)
        let written: Int
        do { written = try fill(UnsafeMutableRawBufferPointer(start: region, count: capacity)) } catch {
            region.deallocate()
            throw error
        }
        precondition(written <= capacity)
        base = UnsafeRawPointer(region)
        count = written
        isMapped = false
    }

    public convenience init(_ bytes: [UInt8]) {
        self.init(count: bytes.count) { region in bytes.withUnsafeBytes { region.copyMemory(from: $0) } }
    }

    /// The whole file at `path`, mapped read-only; a missing, unreadable or empty file throws
    /// `DataError` naming it.
    public init(mapping path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw errno == ENOENT
                ? DataError.missingFile(path: path, hint: "") : DataError.unreadable(path: path, reason: reason)
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            throw DataError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw DataError.unreadable(path: path, reason: "not a regular file")
        }
        guard status.st_size > 0 else { throw DataError.emptyFile(path: path) }
        let length = Int(status.st_size)
        guard let region = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), region != MAP_FAILED else {
            throw DataError.unreadable(path: path, reason: "mmap: " + String(cString: strerror(errno)))
        }
        base = UnsafeRawPointer(region)
        count = length
        isMapped = true
    }

    deinit {
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    /// The byte at `offset` (for parsing headers).
    public subscript(offset: Int) -> UInt8 { base.load(fromByteOffset: offset, as: UInt8.self) }

    /// A little-endian unsigned integer of `size` bytes at `offset`.
    public func littleEndian(_ offset: Int, size: Int) -> Int {
        (0..<size).reversed().reduce(0) { $0 << 8 | Int(self[offset + $1]) }
    }
}
