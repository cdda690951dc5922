import CZlib
import Foundation

/// Inflates gzip (RFC 1952, one or more members) or zlib (RFC 1950, as inside PNG) data.
enum Gzip {
    static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
    }

    /// Returns the decompressed bytes, or throws `DataError.corruptGzip` naming `path`.
    /// `zlibWrapper`: expect a zlib header instead of gzip's.
    static func inflate(_ input: [UInt8], path: String, zlibWrapper: Bool = false) throws -> [UInt8] {
        var stream = z_stream()
        // 16 + MAX_WBITS: expect a gzip wrapper; MAX_WBITS: a zlib one.
        guard inflateInit2_(&stream, zlibWrapper ? MAX_WBITS : 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DataError.corruptGzip(path: path, reason: "zlib could not be initialised")
        }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        output.reserveCapacity(input.count * 4)
        let chunkSize = 1 << 20
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        var status: Int32 = Z_OK
        try input.withUnsafeBufferPointer { inBuf in
            stream.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress)
            stream.avail_in = uInt(inBuf.count)
            while true {
                let produced: Int = chunk.withUnsafeMutableBufferPointer { outBuf in
                    stream.next_out = outBuf.baseAddress
                    stream.avail_out = uInt(chunkSize)
                    status = CZlib.inflate(&stream, Z_NO_FLUSH)
                    return chunkSize - Int(stream.avail_out)
                }
                output.append(contentsOf: chunk[0..<produced])
                if status == Z_STREAM_END {
                    // Concatenated members are valid gzip; continue with the next one.
                    if stream.avail_in > 0 && inflateReset(&stream) == Z_OK { continue }
                    return
                }
                if status != Z_OK {
                    let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    throw DataError.corruptGzip(path: path, reason: message)
                }
                if stream.avail_in == 0 && produced == 0 {
                    throw DataError.corruptGzip(path: path, reason: "unexpected end of compressed data")
                }
            }
        }
        return output
    }
}
