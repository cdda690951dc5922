import Crypto
import Foundation

/// An IDX file of unsigned bytes (the MNIST format): its dimensions and its data, row-major.
///
/// `read(path:)` accepts raw files and gzip-compressed ones (detected by their header), takes
/// the file from `IDXPrefetch` when it was started there, and validates the magic number, the
/// element type, the header length and that the data length is exactly the product of the
/// dimensions.
public struct IDXFile: Sendable {
    public let path: String
    public let dimensions: [Int]
    public let bytes: [UInt8]

    public init(path: String, dimensions: [Int], bytes: [UInt8]) {
        self.path = path
        self.dimensions = dimensions
        self.bytes = bytes
    }

    public static func read(path: String) throws -> IDXFile {
        if let prefetched = IDXPrefetch.take(path: path) { return try prefetched.get() }
        return try readFromDisk(path: path)
    }

    /// `read(path:)` without looking for a prefetched copy.
    static func readFromDisk(path: String) throws -> IDXFile {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DataError.missingFile(path: path, hint: "")
        }
        let raw: [UInt8]
        do {
            raw = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw DataError.unreadable(path: path, reason: error.localizedDescription)
        }
        guard !raw.isEmpty else { throw DataError.emptyFile(path: path) }
        let bytes: [UInt8]
        if Gzip.isGzip(raw) {
            bytes = try Gzip.inflate(raw, path: path)
            guard !bytes.isEmpty else { throw DataError.emptyFile(path: path) }
        } else if path.hasSuffix(".gz") {
            throw DataError.notGzip(path: path)
        } else {
            bytes = raw
        }
        return try parse(bytes, path: path)
    }

    /// Parses IDX bytes already in memory; the header is removed in place when `bytes` is not
    /// shared (a fresh copy of the data is 47 MB of new pages for MNIST's training images).
    public static func parse(_ bytes: consuming [UInt8], path: String) throws -> IDXFile {
        guard bytes.count >= 4 else { throw DataError.truncatedHeader(path: path, needed: 4, found: bytes.count) }
        guard bytes[0] == 0, bytes[1] == 0, bytes[3] >= 1 else {
            throw DataError.badMagic(path: path, found: bytes[0..<4].map { String(format: "%02x", $0) }.joined(separator: " "))
        }
        guard bytes[2] == 0x08 else { throw DataError.unsupportedType(path: path, typeCode: bytes[2]) }
        let rank = Int(bytes[3])
        let headerLength = 4 + 4 * rank
        guard bytes.count >= headerLength else {
            throw DataError.truncatedHeader(path: path, needed: headerLength, found: bytes.count)
        }
        var dimensions = [Int]()
        for d in 0..<rank {
            let o = 4 + 4 * d
            dimensions.append(Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]))
        }
        let (expected, overflow) = dimensions.reduce((1, false)) { acc, d in
            let (product, o) = acc.0.multipliedReportingOverflow(by: d)
            return (product, acc.1 || o)
        }
        guard !overflow else { throw DataError.dimensionsOverflow(path: path, dimensions: dimensions) }
        let found = bytes.count - headerLength
        guard found == expected else { throw DataError.wrongLength(path: path, expected: expected, found: found) }
        bytes.removeSubrange(0..<headerLength)
        return IDXFile(path: path, dimensions: dimensions, bytes: bytes)
    }

    /// The SHA-256 of the file's uncompressed IDX bytes (header and data), as published for MNIST.
    public var sha256: String {
        var hasher = SHA256()
        hasher.update(data: Self.header(dimensions: dimensions))
        bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return Checksum.hex(hasher.finalize())
    }

    static func header(dimensions: [Int]) -> [UInt8] {
        var out: [UInt8] = [0, 0, 0x08, UInt8(dimensions.count)]
        for d in dimensions {
            out += [UInt8(truncatingIfNeeded: d >> 24), UInt8(truncatingIfNeeded: d >> 16),
                    UInt8(truncatingIfNeeded: d >> 8), UInt8(truncatingIfNeeded: d)]
        }
        return out
    }

    /// Serialises dimensions and data as an (uncompressed) IDX file of unsigned bytes.
    public static func encode(dimensions: [Int], bytes: [UInt8]) -> [UInt8] {
        header(dimensions: dimensions) + bytes
    }
}
