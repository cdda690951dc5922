import Crypto
import Foundation

/// An IDX file of unsigned bytes (the MNIST format, and EMNIST's, KMNIST's, ...): its dimensions
/// and its data, row-major, which stays where it was read: a raw file is mapped read-only (the
/// ranks of a machine share its pages), a gzip-compressed one inflated into memory of its own.
///
/// `read(path:)` detects compression by the gzip header, takes the file from `IDXPrefetch` when
/// it was started there, and validates the magic number, the element type, the header length and
/// that the data length is exactly the product of the dimensions.
public struct IDXFile: Sendable {
    public let path: String
    public let dimensions: [Int]
    public let buffer: DataBuffer
    /// Where the data starts in `buffer` (after the header).
    public let offset: Int

    public var count: Int { buffer.count - offset }
    /// The data (a copy).
    public var bytes: [UInt8] { Array(UnsafeRawBufferPointer(start: buffer.base + offset, count: count)) }

    public static func read(path: String) throws -> IDXFile {
        if let prefetched = IDXPrefetch.take(path: path) { return try prefetched.get() }
        return try readFromDisk(path: path)
    }

    /// `read(path:)` without looking for a prefetched copy.
    static func readFromDisk(path: String) throws -> IDXFile {
        let file = try DataBuffer(mapping: path)
        if Gzip.isGzip(file.bytes) {
            let inflated = try Gzip.inflate(file.bytes, path: path)
            guard inflated.count > 0 else { throw DataError.emptyFile(path: path) }
            return try parse(inflated, path: path)
        }
        guard !path.hasSuffix(".gz") else { throw DataError.notGzip(path: path) }
        return try parse(file, path: path)
    }

    /// Parses IDX bytes already in memory.
    public static func parse(_ bytes: [UInt8], path: String) throws -> IDXFile {
        try parse(DataBuffer(bytes), path: path)
    }

    static func parse(_ b: DataBuffer, path: String) throws -> IDXFile {
        guard b.count >= 4 else { throw DataError.truncatedHeader(path: path, needed: 4, found: b.count) }
        guard b[0] == 0, b[1] == 0, b[3] >= 1 else {
            throw DataError.badMagic(
                path: path, found: (0..<4).map { String(format: "%02x", b[$0]) }.joined(separator: " "))
        }
        guard b[2] == 0x08 else { throw DataError.unsupportedType(path: path, typeCode: b[2]) }
        let rank = Int(b[3])
        let headerLength = 4 + 4 * rank
        guard b.count >= headerLength else {
            throw DataError.truncatedHeader(path: path, needed: headerLength, found: b.count)
        }
        let dimensions = (0..<rank).map { d in (0..<4).reduce(0) { $0 << 8 | Int(b[4 + 4 * d + $1]) } }
        let (expected, overflow) = dimensions.reduce((1, false)) { acc, d in
            let (product, o) = acc.0.multipliedReportingOverflow(by: d)
            return (product, acc.1 || o)
        }
        guard !overflow else { throw DataError.dimensionsOverflow(path: path, dimensions: dimensions) }
        let found = b.count - headerLength
        guard found == expected else { throw DataError.wrongLength(path: path, expected: expected, found: found) }
        return IDXFile(path: path, dimensions: dimensions, buffer: b, offset: headerLength)
    }

    /// The SHA-256 of the file's uncompressed IDX bytes (header and data), as published for MNIST.
    public var sha256: String {
        var hasher = SHA256()
        hasher.update(bufferPointer: UnsafeRawBufferPointer(start: buffer.base, count: buffer.count))
        return Checksum.hex(hasher.finalize())
    }

    static func header(dimensions: [Int]) -> [UInt8] {
        var out: [UInt8] = [0, 0, 0x08, UInt8(dimensions.count)]
        for d in dimensions {
            out += [
                UInt8(truncatingIfNeeded: d >> 24), UInt8(truncatingIfNeeded: d >> 16),
                UInt8(truncatingIfNeeded: d >> 8), UInt8(truncatingIfNeeded: d),
            ]
        }
        return out
    }

    /// Serialises dimensions and data as an (uncompressed) IDX file of unsigned bytes.
    public static func encode(dimensions: [Int], bytes: [UInt8]) -> [UInt8] {
        header(dimensions: dimensions) + bytes
    }
}
