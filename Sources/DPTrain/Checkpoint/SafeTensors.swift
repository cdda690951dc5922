import Foundation

/// The safetensors file format (as the Python `safetensors` package reads it): an 8-byte
/// little-endian header length N, N bytes of JSON header (padded with spaces to a multiple of 8),
/// then the raw little-endian tensor data. The header maps each tensor name to its `dtype`,
/// `shape` and `data_offsets` (begin, end, relative to the data), and `__metadata__` to a map of
/// strings. Only F32 tensors are written or read here.
public enum SafeTensors {
    public struct Tensor: Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        public var values: [Float]
        public init(name: String, shape: [Int], values: [Float]) {
            self.name = name
            self.shape = shape
            self.values = values
        }
    }

    /// What reading a safetensors file found wrong; the message names the file.
    public struct FormatError: Error, CustomStringConvertible, Equatable {
        public let path: String
        public let problem: String
        public var description: String { "\(path): not a valid checkpoint: \(problem)" }
    }

    /// Serialises `tensors` (in this order) and `metadata`.
    public static func encode(_ tensors: [Tensor], metadata: [String: String]) -> [UInt8] {
        var header: [(String, JSONValue)] = [
            ("__metadata__", .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))
        ]
        var offset = 0
        for t in tensors {
            let bytes = t.values.count * 4
            header.append(
                (
                    t.name,
                    .object([
                        ("dtype", .string("F32")), ("shape", .array(t.shape.map(JSONValue.int))),
                        ("data_offsets", .array([.int(offset), .int(offset + bytes)])),
                    ])
                ))
            offset += bytes
        }
        var json = Array(JSONValue.object(header).encoded.utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out += $0 }
        out += json
        for t in tensors {
            t.values.withUnsafeBytes { raw in
                // Float is stored little-endian on every platform Swift runs on here.
                out += raw
            }
        }
        return out
    }

    /// Parses and validates a whole file: header length, JSON, dtypes, shapes against byte
    /// ranges, and that the ranges tile the data exactly.
    public static func decode(_ bytes: [UInt8], path: String) throws -> (tensors: [Tensor], metadata: [String: String])
    {
        func fail(_ problem: String) -> FormatError { FormatError(path: path, problem: problem) }
        guard bytes.count >= 8 else {
            throw fail("the file is \(bytes.count) bytes, shorter than the 8-byte header length")
        }
        let n = bytes.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard n >= 2, n <= UInt64(bytes.count - 8) else {
            throw fail(
                "the header length says \(n) bytes but the file has only \(bytes.count - 8) after it (wrong header length or truncated file)"
            )
        }
        let headerEnd = 8 + Int(n)
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd])),
            let header = object as? [String: Any]
        else {
            throw fail("the header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        if let meta = header["__metadata__"] {
            guard let map = meta as? [String: String] else { throw fail("__metadata__ is not a map of strings") }
            metadata = map
        }
        let dataLength = bytes.count - headerEnd
        var tensors: [(begin: Int, tensor: Tensor)] = []
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2
            else {
                throw fail("tensor '\(name)' has no valid dtype, shape and data_offsets")
            }
            guard dtype == "F32" else { throw fail("tensor '\(name)' has dtype \(dtype); only F32 is supported") }
            let (begin, end) = (offsets[0], offsets[1])
            let count = shape.reduce(1, *)
            guard begin >= 0, end >= begin, end <= dataLength else {
                throw fail(
                    "tensor '\(name)' lies at bytes \(begin)..<\(end) but the data is \(dataLength) bytes (truncated file?)"
                )
            }
            guard end - begin == count * 4 else {
                throw fail("tensor '\(name)' has shape \(shape) but \(end - begin) bytes")
            }
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBytes { dst in
                bytes.withUnsafeBytes { src in
                    dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[(headerEnd + begin)..<(headerEnd + end)]))
                }
            }
            tensors.append((begin, Tensor(name: name, shape: shape, values: values)))
        }
        tensors.sort { $0.begin < $1.begin }
        var expected = 0
        for (begin, t) in tensors {
            guard begin == expected else {
                throw fail("tensor data is not contiguous at '\(t.name)' (offset \(begin), expected \(expected))")
            }
            expected += t.values.count * 4
        }
        guard expected == dataLength else {
            throw fail("the tensors cover \(expected) bytes but the data is \(dataLength) bytes")
        }
        return (tensors.map(\.tensor), metadata)
    }
}
