import CZlib
import Foundation

/// Writes NumPy arrays: `.npy` bytes (format version 1.0, C order, the header padded so the data
/// starts on a 64-byte boundary, as `numpy.save` writes it) and `.npz` archives of them (a ZIP
/// file with each array as `NAME.npy`: stored, as `numpy.savez` writes it, so a reader can map the
/// arrays in place, or deflated, as `numpy.savez_compressed` does).
public enum NumPyWriter {
    /// `.npy` bytes of `data` (raw little-endian elements) with `descr` (e.g. `|u1`, `<f4`) and `shape`.
    public static func npy(descr: String, shape: [Int], data: UnsafeRawBufferPointer) -> [UInt8] {
        npyHeader(descr: descr, shape: shape) + Array(data)
    }

    /// The bytes of a `.npy` file before its data.
    public static func npyHeader(descr: String, shape: [Int]) -> [UInt8] {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(dims)), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let length = header.utf8.count
        out += [UInt8(length & 0xFF), UInt8(length >> 8)]
        return out + Array(header.utf8)
    }

    /// Writes `arrays` (names without `.npy`, their `.npy` bytes) as an `.npz` at `path`, through
    /// a temporary file renamed into place. Archives over 4 GB are refused.
    public static func npz(_ arrays: [(name: String, npy: [UInt8])], to path: String, compressed: Bool = false) throws {
        var out: [UInt8] = [], directory: [UInt8] = []
        func le(_ v: Int, _ bytes: Int) -> [UInt8] { (0..<bytes).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        for (name, npy) in arrays {
            let file = Array((name + ".npy").utf8)
            let crc = npy.withUnsafeBufferPointer { Int(crc32(0, $0.baseAddress, uInt($0.count))) }
            let data = compressed ? try deflate(npy, path: path) : npy
            let method = compressed ? 8 : 0
            guard out.count + data.count < 0xFFFF_FFFF && npy.count < 0xFFFF_FFFF else {
                throw DataError.inconsistent(
                    path: path,
                    problem: "the arrays pass 4 GB, more than a plain ZIP archive holds; save them as .npy files")
            }
            let offset = out.count
            // Local header: signature, version 2.0, flags 0, stored, time and date 0, CRC, sizes, name.
            out +=
                le(0x0403_4B50, 4) + le(20, 2) + le(0, 2) + le(method, 2) + le(0, 4) + le(crc, 4) + le(data.count, 4)
                + le(npy.count, 4)
                + le(file.count, 2) + le(0, 2) + file
            out += data
            directory +=
                le(0x0201_4B50, 4) + le(20, 2) + le(20, 2) + le(0, 2) + le(method, 2) + le(0, 4) + le(crc, 4)
                + le(data.count, 4)
                + le(npy.count, 4) + le(file.count, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 4)
                + le(offset, 4) + file
        }
        let start = out.count
        out += directory
        out +=
            le(0x0605_4B50, 4) + le(0, 2) + le(0, 2) + le(arrays.count, 2) + le(arrays.count, 2)
            + le(directory.count, 4) + le(start, 4) + le(0, 2)
        try writeAtomically(out, to: path)
    }

    /// A raw deflate stream of `bytes` (no zlib or gzip wrapper, as ZIP entries hold it).
    static func deflate(_ bytes: [UInt8], path: String) throws -> [UInt8] {
        var stream = z_stream()
        guard
            deflateInit2_(
                &stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else {
            throw DataError.inconsistent(path: path, problem: "zlib could not be initialised")
        }
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(bytes.count))))
        let written = bytes.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output -> Int in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
                stream.avail_in = uInt(input.count)
                stream.next_out = output.baseAddress
                stream.avail_out = uInt(output.count)
                return CZlib.deflate(&stream, Z_FINISH) == Z_STREAM_END ? output.count - Int(stream.avail_out) : -1
            }
        }
        guard written >= 0 else {
            throw DataError.inconsistent(path: path, problem: "zlib could not compress an array")
        }
        return Array(out.prefix(written))
    }

    /// Writes `bytes` to a temporary file beside `path`, then renames it into place.
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let temporary = path + ".tmp"
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: temporary))
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            try FileManager.default.moveItem(atPath: temporary, toPath: path)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw DataError.unreadable(path: path, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}
