import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A CSV file with a header line (RFC 4180: comma-separated, fields optionally in double quotes
/// with `""` for a quote, line breaks allowed inside quotes; lines end in LF or CRLF), as a label
/// column and numeric feature columns.
///
/// The label column is named or numbered; its values are class ids (whole numbers from 0) or,
/// when any is not a number, class names, numbered in sorted order (`classNames`). Every other
/// column, or those `featureColumns` lists, in that order, must hold finite numbers. A bad row is
/// an error naming the file, its line, the column and the value; none is skipped.
///
/// Read from bytes: the file is mapped, not copied (its pages are let go as they are parsed);
/// fields are found with a 16-byte vector scan for separators, and numbers parsed straight into
/// the float32 result (`DecimalParser`: `strtof`'s value for every field). The rows are parsed
/// by `threads` threads at once, each a byte range cut at the start of a record (found with
/// the quotes taken into account). Memory: the float32 values, a label and a line number a row.
public struct CSVTable: @unchecked Sendable {
    public let path: String
    /// Feature names, in the order of each row's values.
    public let featureNames: [String]
    /// Row-major float32 values, `rows x featureNames.count`.
    public let features: DataBuffer
    /// Class ids, one a row; empty when the table has no label column (rows to predict).
    public let labels: [Int32]
    /// When the labels were names: the name of each class id.
    public let classNames: [String]?
    public let rows: Int

    /// The feature values, as an array (a copy: for tests and small tables).
    public var values: [Float] {
        Array(UnsafeBufferPointer(start: features.base.assumingMemoryBound(to: Float.self), count: features.count / 4))
    }

    /// A column named by its header, or numbered from 0.
    public enum Column: Sendable, Equatable, CustomStringConvertible {
        case name(String)
        case index(Int)
        public var description: String {
            switch self {
            case .name(let n): return "'\(n)'";
            case .index(let i): return "\(i)"
            }
        }
    }

    /// Reads `path`. With `classNames` (those of a training file), name labels must be among
    /// them, so a test file numbers its classes as the training file did. Without a `label`
    /// column (rows to predict), `labels` is empty; with `labelOptional`, a label column the
    /// header lacks is taken as absent. `threads`: how many parse at once (default: the cores).
    public init(
        path: String, label: Column?, featureColumns: [Column]? = nil, classNames known: [String]? = nil,
        labelOptional: Bool = false, threads: Int? = nil
    ) throws {
        self.path = path
        func fail(_ line: Int, _ problem: String) -> DataError {
            DataError.invalidCSV(path: path, line: line, problem: problem)
        }
        let file = try DataBuffer(mapping: path)
        let bytes = file.base.assumingMemoryBound(to: UInt8.self)
        let end = bytes + file.count
        if memchr(bytes, 0x0A, file.count) == nil, memchr(bytes, 0x0D, file.count) != nil {
            throw fail(
                1, "its lines end in a carriage return alone (old Mac style); end them in LF or CRLF (tr '\\r' '\\n')")
        }
        // The header: the first record that is not blank.
        var cursor = bytes, line = 1
        var header: [String] = []
        while header.isEmpty {
            guard cursor < end else { throw DataError.emptyFile(path: path) }
            let record = try CSVRecord.slow(from: cursor, end: end, line: line, fail: fail)
            (cursor, line) = (record.next, record.nextLine)
            if !record.isBlank { header = record.fields.map { Self.trimmed($0) } }
        }
        func resolve(_ c: Column, _ what: String) throws -> Int {
            switch c {
            case .index(let i):
                guard header.indices.contains(i) else {
                    throw fail(1, "\(what) column \(i) does not exist: the header has \(header.count) columns")
                }
                return i
            case .name(let n):
                guard let i = header.firstIndex(of: n) else {
                    throw fail(1, "\(what) column '\(n)' is not in the header (\(header.joined(separator: ", ")))")
                }
                return i
            }
        }
        let labelIndex = try label.flatMap { c -> Int? in
            if labelOptional, case .name(let n) = c, !header.contains(n) { return nil }
            if labelOptional, case .index(let i) = c, !header.indices.contains(i) { return nil }
            return try resolve(c, "the label")
        }
        let featureIndices =
            try featureColumns.map { try $0.map { try resolve($0, "a feature") } }
            ?? header.indices.filter { $0 != labelIndex }
        if let labelIndex, featureIndices.contains(labelIndex) {
            throw fail(1, "the label column '\(header[labelIndex])' is also listed as a feature")
        }
        guard !featureIndices.isEmpty else { throw fail(1, "no feature columns besides the label") }
        featureNames = featureIndices.map { header[$0] }

        let layout = CSVRowLayout(header: header, features: featureIndices, label: labelIndex)
        let parts = CSVParts(
            bytes: cursor, end: end, firstLine: line, threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
        let width = featureIndices.count
        let bound = parts.rowBounds.reduce(0, +)
        var results = [CSVPart.Result?](repeating: nil, count: parts.ranges.count)
        let values = try DataBuffer(capacity: bound * width * 4) { region in
            let out = region.baseAddress!.assumingMemoryBound(to: Float.self)
            let starts = parts.rowBounds.reduce(into: [0]) { $0.append($0.last! + $1) }
            results.withUnsafeMutableBufferPointer { results in
                let results = results.baseAddress!
                concurrently(parts.ranges.count) { k in
                    results[k] = CSVPart.parse(
                        parts.ranges[k], firstLine: parts.firstLines[k], layout: layout,
                        into: out + starts[k] * width, capacity: parts.rowBounds[k], release: file)
                }
            }
            for result in results {
                if let (line, problem) = result!.error { throw fail(line, problem) }
            }
            // Parts hold fewer rows than their bound where records were blank or spanned lines.
            var written = 0
            for (k, result) in results.enumerated() {
                if starts[k] != written {
                    (out + written * width).update(from: out + starts[k] * width, count: result!.rows * width)
                }
                written += result!.rows
            }
            return written * width * 4
        }
        rows = values.count / 4 / width
        guard rows > 0 else { throw DataError.noSamples(what: "\(path) (a header and no rows)") }
        features = values
        let done = results.map { $0! }
        guard let labelIndex else {
            (labels, classNames) = ([], known)
            return
        }
        (labels, classNames) = try Self.labels(
            done, column: "label column '\(header[labelIndex])'", known: known, fail: fail)
    }

    /// The class ids of the rows, from each part's distinct label texts: whole numbers when every
    /// text is one (and no names are `known`), else names, numbered in sorted order or as `known`.
    static func labels(
        _ parts: [CSVPart.Result], column: String, known: [String]?, fail: (Int, String) -> DataError
    ) throws -> ([Int32], [String]?) {
        var distinct: [String] = []
        var seen: [String: Int] = [:]
        for part in parts {
            for name in part.names where seen[name] == nil {
                seen[name] = distinct.count
                distinct.append(name)
            }
        }
        /// The line of the first row whose label text is `name`.
        func firstLine(_ name: String) -> Int {
            for part in parts {
                guard let local = part.names.firstIndex(of: name), let row = part.labels.firstIndex(of: Int32(local))
                else { continue }
                return part.lines[row]
            }
            return 0
        }
        let ids: [Int32]
        let names: [String]?
        if known == nil, distinct.allSatisfy({ Int32($0) != nil }) {
            if let negative = distinct.first(where: { Int32($0)! < 0 }) {
                throw fail(firstLine(negative), "\(column): \(negative) is negative; class ids start at 0")
            }
            ids = distinct.map { Int32($0)! }
            names = nil
        } else {
            let all = known ?? distinct.sorted()
            let index = Dictionary(uniqueKeysWithValues: all.enumerated().map { ($1, Int32($0)) })
            if let unknown = distinct.first(where: { index[$0] == nil }) {
                throw fail(
                    firstLine(unknown),
                    "\(column): '\(unknown)' is "
                        + (unknown.isEmpty ? "empty" : "not one of the classes \(all.joined(separator: ", "))"))
            }
            ids = distinct.map { index[$0]! }
            names = all
        }
        var labels: [Int32] = []
        labels.reserveCapacity(parts.reduce(0) { $0 + $1.rows })
        for part in parts {
            let map = part.names.map { ids[seen[$0]!] }
            for local in part.labels { labels.append(map[Int(local)]) }
        }
        return (labels, names)
    }

    /// `text` without the spaces and tabs around it.
    static func trimmed(_ text: String) -> String { text.trimmingCharacters(in: .whitespaces) }
}
