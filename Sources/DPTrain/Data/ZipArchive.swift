import CZlib
import Foundation

/// The entries of a ZIP archive, as NumPy's `.npz` files are (`numpy.savez` stores each array
/// as `NAME.npy`, `savez_compressed` deflates them; Keras's `mnist.npz` is one).
///
/// The archive is mapped, not read: a stored entry is parsed where it lies, so an uncompressed
/// `.npz` shares the page cache like a `.npy` file; a deflated one is inflated (zlib) into memory
/// of its own and its CRC-32 checked. ZIP64 sizes and offsets are read; encrypted entries and
/// other compression methods are refused naming the entry.
public struct ZipArchive: Sendable {
    public struct Entry: Sendable {
        public let name: String
        let method: Int
        let compressedSize: Int
        let size: Int
        let crc: UInt32
        let localHeader: Int
        let encrypted: Bool
    }

    public let path: String
    public let entries: [Entry]
    let buffer: DataBuffer

    public init(path: String) throws {
        self.path = path
        buffer = try DataBuffer(mapping: path)
        entries = try Self.centralDirectory(buffer, path: path)
    }

    func fail(_ problem: String) -> DataError { DataError.invalidArchive(path: path, problem: problem) }

    /// The NumPy array stored as `name.npy` (or `name`); nil when there is no such entry.
    public func array(_ name: String) throws -> NumPyArray? {
        guard let entry = entries.first(where: { $0.name == name + ".npy" || $0.name == name }) else { return nil }
        let where_ = "\(path):\(entry.name)"
        guard !entry.encrypted else { throw fail("entry \(entry.name) is encrypted") }
        let local = entry.localHeader
        guard local + 30 <= buffer.count, buffer.littleEndian(local, size: 4) == 0x0403_4B50 else {
            throw fail("entry \(entry.name): no local header at offset \(local)")
        }
        let start = local + 30 + buffer.littleEndian(local + 26, size: 2) + buffer.littleEndian(local + 28, size: 2)
        guard start + entry.compressedSize <= buffer.count else {
            throw fail("entry \(entry.name) runs past the end of the file (truncated?)")
        }
        switch entry.method {
        case 0:
            return try NumPyArray.parse(buffer, path: where_, start: start, length: entry.size)
        case 8:
            let inflated = try DataBuffer(count: entry.size) { out in
                try inflateRaw(from: buffer.base + start, count: entry.compressedSize, into: out, entry: entry.name)
            }
            let crc = UInt32(crc32(0, inflated.base.assumingMemoryBound(to: UInt8.self), uInt(inflated.count)))
            guard crc == entry.crc else {
                throw fail(
                    "entry \(entry.name): CRC-32 \(String(crc, radix: 16)) does not match the stored \(String(entry.crc, radix: 16)): corrupt"
                )
            }
            return try NumPyArray.parse(inflated, path: where_)
        default:
            throw fail(
                "entry \(entry.name) uses compression method \(entry.method); only stored (0) and deflate (8) are read")
        }
    }

    /// Inflates a raw deflate stream into exactly `out.count` bytes.
    private func inflateRaw(
        from input: UnsafeRawPointer, count: Int, into out: UnsafeMutableRawBufferPointer, entry: String
    ) throws {
        var stream = z_stream()
        guard inflateInit2_(&stream, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw fail("zlib could not be initialised")
        }
        defer { inflateEnd(&stream) }
        var consumed = 0, written = 0
        while true {
            let give = min(count - consumed, 1 << 30), room = min(out.count - written, 1 << 30)
            stream.next_in = UnsafeMutablePointer(mutating: (input + consumed).assumingMemoryBound(to: UInt8.self))
            stream.avail_in = uInt(give)
            stream.next_out = (out.baseAddress! + written).assumingMemoryBound(to: UInt8.self)
            stream.avail_out = uInt(room)
            let status = CZlib.inflate(&stream, Z_NO_FLUSH)
            consumed += give - Int(stream.avail_in)
            written += room - Int(stream.avail_out)
            if status == Z_STREAM_END {
                guard written == out.count else {
                    throw fail("entry \(entry) inflates to \(written) bytes, the directory says \(out.count)")
                }
                return
            }
            guard status == Z_OK || status == Z_BUF_ERROR else {
                throw fail(
                    "entry \(entry): corrupt deflate data (\(stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"))"
                )
            }
            if written == out.count && stream.avail_out == 0 && status == Z_BUF_ERROR {
                throw fail("entry \(entry) inflates to more than the \(out.count) bytes the directory says")
            }
            if give == 0 || (status == Z_BUF_ERROR && stream.avail_in == 0) {
                throw fail("entry \(entry): the compressed data ends early (truncated?)")
            }
        }
    }

    /// Reads the end-of-central-directory record (ZIP64's when present) and every entry it lists.
    private static func centralDirectory(_ b: DataBuffer, path: String) throws -> [Entry] {
        func fail(_ problem: String) -> DataError { DataError.invalidArchive(path: path, problem: problem) }
        // The record is 22 bytes plus a comment of up to 65,535: search backwards for it.
        var end = -1
        var i = b.count - 22
        while i >= max(0, b.count - 22 - 65_535) {
            if b.littleEndian(i, size: 4) == 0x0605_4B50 { end = i; break }
            i -= 1
        }
        guard end >= 0 else {
            throw fail("not a ZIP archive (no end-of-central-directory record): an .npz file is one")
        }
        var count = b.littleEndian(end + 10, size: 2), offset = b.littleEndian(end + 16, size: 4)
        if (count == 0xFFFF || offset == 0xFFFF_FFFF), end >= 20, b.littleEndian(end - 20, size: 4) == 0x0706_4B50 {
            let record = b.littleEndian(end - 12, size: 8)
            guard record + 56 <= b.count, b.littleEndian(record, size: 4) == 0x0606_4B50 else {
                throw fail("a broken ZIP64 end record")
            }
            count = b.littleEndian(record + 32, size: 8)
            offset = b.littleEndian(record + 48, size: 8)
        }
        var entries: [Entry] = []
        var p = offset
        for _ in 0..<count {
            guard p + 46 <= b.count, b.littleEndian(p, size: 4) == 0x0201_4B50 else {
                throw fail("the central directory is corrupt at offset \(p)")
            }
            let nameLength = b.littleEndian(p + 28, size: 2), extraLength = b.littleEndian(p + 30, size: 2)
            let commentLength = b.littleEndian(p + 32, size: 2)
            guard p + 46 + nameLength + extraLength <= b.count else {
                throw fail("the central directory runs past the end of the file")
            }
            let name = String(
                decoding: UnsafeRawBufferPointer(start: b.base + p + 46, count: nameLength), as: UTF8.self)
            var compressed = b.littleEndian(p + 20, size: 4), size = b.littleEndian(p + 24, size: 4),
                local = b.littleEndian(p + 42, size: 4)
            // ZIP64: the fields set to 0xFFFFFFFF follow, in this order, in extra field 0x0001.
            var x = p + 46 + nameLength
            while x + 4 <= p + 46 + nameLength + extraLength {
                let id = b.littleEndian(x, size: 2), length = b.littleEndian(x + 2, size: 2)
                if id == 1 {
                    var f = x + 4
                    if size == 0xFFFF_FFFF { size = b.littleEndian(f, size: 8); f += 8 }
                    if compressed == 0xFFFF_FFFF { compressed = b.littleEndian(f, size: 8); f += 8 }
                    if local == 0xFFFF_FFFF { local = b.littleEndian(f, size: 8) }
                }
                x += 4 + length
            }
            entries.append(
                Entry(
                    name: name, method: b.littleEndian(p + 10, size: 2), compressedSize: compressed, size: size,
                    crc: UInt32(b.littleEndian(p + 16, size: 4)), localHeader: local,
                    encrypted: b.littleEndian(p + 8, size: 2) & 1 != 0))
            p += 46 + nameLength + extraLength + commentLength
        }
        return entries
    }
}
