import Foundation

/// One NumPy array: a `.npy` file, or an entry of an `.npz` archive (`ZipArchive`).
///
/// The format (numpy.lib.format): the magic `\x93NUMPY`, a version byte pair, the header length
/// (2 bytes little-endian in version 1, 4 in versions 2 and 3), then a Python dict literal with
/// `descr` (the element type, e.g. `<f4`, `|u1`), `fortran_order` and `shape`, then the data.
/// The data stays in the buffer it was read from, so a mapped `.npy` file is not copied. Read
/// are C-order arrays of booleans, integers and floats (2 to 8 bytes, either byte order);
/// anything else is refused naming the file and the type.
public struct NumPyArray: Sendable {
    /// An element type NumPy writes as a `descr` string.
    public struct Element: Sendable, Equatable, CustomStringConvertible {
        public enum Kind: Character, Sendable { case bool = "b", signed = "i", unsigned = "u", float = "f" }
        public let kind: Kind
        public let size: Int
        public let littleEndian: Bool
        public var description: String { (littleEndian || size == 1 ? "<" : ">") + String(kind.rawValue) + "\(size)" }

        public static let uint8 = Element(kind: .unsigned, size: 1, littleEndian: true)
        public static let float32 = Element(kind: .float, size: 4, littleEndian: true)
        /// True on this machine for float32 data stored little-endian: usable as it is.
        public var isNativeFloat32: Bool { self == .float32 }
    }

    /// The file, or `archive.npz:entry.npy`, for messages.
    public let path: String
    public let element: Element
    public let shape: [Int]
    public let buffer: DataBuffer
    /// Where the data starts in `buffer`.
    public let offset: Int

    public var count: Int { shape.reduce(1, *) }

    /// Reads `path`, mapped: the data is not copied.
    public static func read(path: String) throws -> NumPyArray {
        try parse(DataBuffer(mapping: path), path: path)
    }

    /// Parses the array that starts at `start` of `buffer` and takes its remaining `length` bytes.
    public static func parse(
        _ buffer: DataBuffer, path: String, start: Int = 0, length: Int? = nil
    ) throws -> NumPyArray {
        let end = start + (length ?? buffer.count - start)
        func fail(_ problem: String) -> DataError { DataError.invalidNumPy(path: path, problem: problem) }
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
        guard end - start >= 10, (0..<6).allSatisfy({ buffer[start + $0] == magic[$0] }) else {
            throw fail("not a NumPy .npy array (no \\x93NUMPY magic at its start)")
        }
        let major = Int(buffer[start + 6])
        guard (1...3).contains(major) else {
            throw fail("format version \(major).\(buffer[start + 7]) is not one this reader knows (1-3)")
        }
        let lengthSize = major == 1 ? 2 : 4
        let headerStart = start + 8 + lengthSize
        guard headerStart <= end else { throw fail("truncated header") }
        let headerLength = buffer.littleEndian(start + 8, size: lengthSize)
        guard headerStart + headerLength <= end else { throw fail("truncated header: it claims \(headerLength) bytes") }
        let header = String(
            decoding: UnsafeRawBufferPointer(start: buffer.base + headerStart, count: headerLength), as: UTF8.self)
        let fields = try HeaderFields(header, fail: fail)
        guard !fields.fortranOrder else {
            throw fail("the array is in Fortran order; save it in C order (numpy.ascontiguousarray) and try again")
        }
        let element = try Self.element(fields.descr, fail: fail)
        let dataStart = headerStart + headerLength
        var expected = element.size
        for d in fields.shape {
            let (product, overflow) = expected.multipliedReportingOverflow(by: d)
            guard !overflow else { throw fail("its shape \(fields.shape) overflows a byte count") }
            expected = product
        }
        guard end - dataStart == expected else {
            let what = end - dataStart < expected ? "truncated" : "has trailing bytes"
            throw fail(
                "\(what): shape \(fields.shape) of \(element) calls for \(expected) data bytes, found \(end - dataStart)"
            )
        }
        return NumPyArray(path: path, element: element, shape: fields.shape, buffer: buffer, offset: dataStart)
    }

    static func element(_ descr: String, fail: (String) -> DataError) throws -> Element {
        let chars = Array(descr)
        guard chars.count >= 3, "<>|=".contains(chars[0]), let kind = Element.Kind(rawValue: chars[1]),
            let size = Int(String(chars[2...])), [1, 2, 4, 8].contains(size), !(kind == .float && size < 4),
            !(kind == .bool && size != 1)
        else {
            throw fail("element type '\(descr)' is not supported: use booleans, integers, float32 or float64")
        }
        return Element(kind: kind, size: size, littleEndian: chars[0] != ">")
    }

    /// The value of element `i`, whatever the stored type.
    @inline(__always)
    func value(_ i: Int) -> Double {
        let p = buffer.base + offset + i * element.size
        func load<T: FixedWidthInteger>(_: T.Type) -> T {
            let raw = p.loadUnaligned(as: T.self)
            return element.littleEndian ? T(littleEndian: raw) : T(bigEndian: raw)
        }
        switch (element.kind, element.size) {
        case (.bool, _), (.unsigned, 1): return Double(p.load(as: UInt8.self))
        case (.signed, 1): return Double(p.load(as: Int8.self))
        case (.unsigned, 2): return Double(load(UInt16.self))
        case (.unsigned, 4): return Double(load(UInt32.self))
        case (.unsigned, _): return Double(load(UInt64.self))
        case (.signed, 2): return Double(load(Int16.self))
        case (.signed, 4): return Double(load(Int32.self))
        case (.signed, _): return Double(load(Int64.self))
        case (.float, 4): return Double(Float(bitPattern: load(UInt32.self)))
        case (.float, _): return Double(bitPattern: load(UInt64.self))
        }
    }

    /// Every element as a Float32 (a copy), converting other types; NaN or infinity is an error
    /// naming the element's index.
    public func floats() throws -> [Float] {
        try (0..<count).map { i in
            let v = Float(value(i))
            guard v.isFinite else {
                throw DataError.invalidNumPy(
                    path: path, problem: "element \(i) (\(index(i))) is \(value(i)), not a finite number")
            }
            return v
        }
    }

    /// Every element as a class id, for labels: whole numbers from 0 to Int32.max.
    public func classIDs() throws -> [Int32] {
        try (0..<count).map { i in
            let v = value(i)
            guard v >= 0, v <= Double(Int32.max), v == v.rounded() else {
                throw DataError.invalidNumPy(
                    path: path, problem: "label \(i) is \(v); labels are class ids: whole numbers from 0")
            }
            return Int32(v)
        }
    }

    /// The multi-index of flat element `i`, e.g. "[3, 0, 12]".
    func index(_ i: Int) -> String {
        var rest = i, digits: [Int] = []
        for d in shape.reversed() {
            digits.append(d > 0 ? rest % d : 0)
            rest /= max(d, 1)
        }
        return "[" + digits.reversed().map(String.init).joined(separator: ", ") + "]"
    }

    /// The `descr`, `fortran_order` and `shape` of a header dict such as
    /// `{'descr': '<f4', 'fortran_order': False, 'shape': (60000, 28, 28), }`.
    struct HeaderFields {
        var descr = ""
        var fortranOrder = false
        var shape: [Int] = []

        init(_ text: String, fail: (String) -> DataError) throws {
            func value(of key: String) -> Substring? {
                guard let k = text.range(of: "'\(key)'") ?? text.range(of: "\"\(key)\""),
                    let colon = text[k.upperBound...].firstIndex(of: ":")
                else { return nil }
                return text[text.index(after: colon)...].drop { $0 == " " }
            }
            guard let d = value(of: "descr"), let quote = d.first, quote == "'" || quote == "\"",
                let close = d.dropFirst().firstIndex(of: quote)
            else {
                throw fail("its header has no 'descr' string (a structured or object array?): \(text.prefix(120))")
            }
            descr = String(d[d.index(after: d.startIndex)..<close])
            guard let f = value(of: "fortran_order") else { throw fail("its header has no 'fortran_order'") }
            fortranOrder = f.hasPrefix("True")
            guard let s = value(of: "shape"), s.first == "(", let end = s.firstIndex(of: ")") else {
                throw fail("its header has no 'shape' tuple")
            }
            let parts = s[s.index(after: s.startIndex)..<end].split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespaces)
            }.filter { !$0.isEmpty }
            shape = try parts.map { part in
                guard let n = Int(part.hasSuffix("L") ? String(part.dropLast()) : part), n >= 0 else {
                    throw fail("its shape has '\(part)', not a size")
                }
                return n
            }
        }
    }
}
