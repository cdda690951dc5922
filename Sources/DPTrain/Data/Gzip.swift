import CZlib
import Foundation

/// Inflates gzip (RFC 1952, one or more members) or zlib (RFC 1950, as inside PNG) data.
enum Gzip {
    static func isGzip(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
    }

    /// The decompressed bytes, or `DataError.corruptGzip` naming `path`. `zlibWrapper`: expect a
    /// zlib header instead of gzip's.
    ///
    /// zlib writes straight into the result, sized from the gzip trailer's length of the last
    /// member (MNIST's files have one), so 47 MB of training images are neither copied chunk by
    /// chunk nor moved as they grow; when that room runs out before the end (several members, a
    /// zlib stream, a false trailer), it starts over with twice the room.
    static func inflate(_ input: UnsafeRawBufferPointer, path: String, zlibWrapper: Bool = false) throws -> DataBuffer {
        // Deflate expands at most about 1032:1, which bounds what a false trailer can reserve.
        var capacity =
            min(input.count * 1032, zlibWrapper || input.count < 18 ? input.count * 4 : trailerLength(input)) + 1
        while true {
            var fits = true
            let output = try DataBuffer(capacity: capacity) { out in
                let written = try inflate(input, into: out, path: path, zlibWrapper: zlibWrapper)
                // Room to spare, so a stream that ended exactly at `capacity` is never mistaken for one cut short.
                fits = written < capacity
                return fits ? written : 0
            }
            if fits { return output }
            capacity *= 2
        }
    }

    static func inflate(_ input: [UInt8], path: String, zlibWrapper: Bool = false) throws -> [UInt8] {
        try input.withUnsafeBytes { Array(try inflate($0, path: path, zlibWrapper: zlibWrapper).bytes) }
    }

    /// The uncompressed length (modulo 2^32) a gzip member's trailer ends the data with.
    private static func trailerLength(_ input: UnsafeRawBufferPointer) -> Int {
        input[(input.count - 4)...].reversed().reduce(0) { $0 << 8 | Int($1) }
    }

    /// Inflates into `out`; returns the bytes written, or `out.count` when it filled `out` before
    /// the end of the data.
    private static func inflate(
        _ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, path: String,
        zlibWrapper: Bool
    ) throws -> Int {
        var stream = z_stream()
        // 16 + MAX_WBITS: expect a gzip wrapper; MAX_WBITS: a zlib one.
        guard
            inflateInit2_(
                &stream, zlibWrapper ? MAX_WBITS : 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
                == Z_OK
        else {
            throw DataError.corruptGzip(path: path, reason: "zlib could not be initialised")
        }
        defer { inflateEnd(&stream) }
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
        stream.avail_in = uInt(input.count)
        var written = 0
        while true {
            // zlib counts in 32 bits: at most 1 GB at a time.
            let room = min(out.count - written, 1 << 30)
            stream.next_out = (out.baseAddress! + written).assumingMemoryBound(to: UInt8.self)
            stream.avail_out = uInt(room)
            let status = CZlib.inflate(&stream, Z_NO_FLUSH)
            let produced = room - Int(stream.avail_out)
            written += produced
            if status == Z_STREAM_END {
                // Concatenated members are valid gzip; continue with the next one.
                if stream.avail_in > 0 && inflateReset(&stream) == Z_OK { continue }
                return written
            }
            if written == out.count { return written }  // not the end yet: start over with more room
            if status != Z_OK {
                let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                throw DataError.corruptGzip(path: path, reason: message)
            }
            if stream.avail_in == 0 && produced == 0 {
                throw DataError.corruptGzip(path: path, reason: "unexpected end of compressed data")
            }
        }
    }
}
