import Foundation

/// A CSV file with a header line (RFC 4180: comma-separated, fields optionally in double quotes
/// with `""` for a quote, line breaks allowed inside quotes), as a label column and numeric
/// feature columns.
///
/// The label column is named or numbered; its values are class ids (whole numbers from 0) or,
/// when any is not a number, class names, numbered in sorted order (`classNames`). Every other
/// column, or those `featureColumns` lists, in that order, must hold finite numbers. A bad row is
/// an error naming the file, its line, the column and the value; none is skipped.
public struct CSVTable: Sendable {
    public let path: String
    /// Feature names, in the order of each row's values.
    public let featureNames: [String]
    /// Row-major, `rows x featureNames.count`.
    public let features: [Float]
    public let labels: [Int32]
    /// When the labels were names: the name of each class id.
    public let classNames: [String]?
    public var rows: Int { labels.count }

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
    /// header lacks is taken as absent.
    public init(
        path: String, label: Column?, featureColumns: [Column]? = nil, classNames known: [String]? = nil,
        labelOptional: Bool = false
    ) throws {
        self.path = path
        func fail(_ line: Int, _ problem: String) -> DataError {
            DataError.invalidCSV(path: path, line: line, problem: problem)
        }
        let bytes: [UInt8]
        do { bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw FileManager.default.fileExists(atPath: path)
                ? DataError.unreadable(path: path, reason: error.localizedDescription)
                : DataError.missingFile(path: path, hint: "")
        }
        var records = try Self.records(bytes, fail: fail)
        guard !records.isEmpty else { throw DataError.emptyFile(path: path) }
        let header = records.removeFirst().fields.map { $0.trimmingCharacters(in: .whitespaces) }
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
        guard !records.isEmpty else { throw DataError.noSamples(what: "\(path) (a header and no rows)") }
        featureNames = featureIndices.map { header[$0] }
        var values: [Float] = []
        values.reserveCapacity(records.count * featureIndices.count)
        var rawLabels: [String] = []
        for record in records {
            guard record.fields.count == header.count else {
                throw fail(
                    record.line,
                    "\(record.fields.count) fields where the header has \(header.count) (a missing or extra comma?)")
            }
            for k in featureIndices {
                let text = record.fields[k].trimmingCharacters(in: .whitespaces)
                guard let v = Float(text) else {
                    throw fail(
                        record.line,
                        "column '\(header[k])' (\(k)): " + (text.isEmpty ? "empty" : "'\(text)' is not a number"))
                }
                guard v.isFinite else {
                    throw fail(record.line, "column '\(header[k])' (\(k)): '\(text)' is not a finite number")
                }
                values.append(v)
            }
            if let labelIndex { rawLabels.append(record.fields[labelIndex].trimmingCharacters(in: .whitespaces)) }
        }
        features = values
        guard let labelIndex else {
            (labels, classNames) = ([], known)
            return
        }
        let lines = records.map(\.line)
        let numeric = known == nil && rawLabels.allSatisfy { Int32($0) != nil }
        if numeric {
            labels = try zip(rawLabels, lines).map { text, line in
                let id = Int32(text)!
                guard id >= 0 else {
                    throw fail(line, "label column '\(header[labelIndex])': \(id) is negative; class ids start at 0")
                }
                return id
            }
            classNames = nil
        } else {
            let names = known ?? Array(Set(rawLabels)).sorted()
            let ids = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, Int32($0)) })
            labels = try zip(rawLabels, lines).map { text, line in
                guard let id = ids[text] else {
                    throw fail(
                        line,
                        "label column '\(header[labelIndex])': '\(text)' is "
                            + (text.isEmpty ? "empty" : "not one of the classes \(names.joined(separator: ", "))"))
                }
                return id
            }
            classNames = names
        }
    }

    /// The records of a CSV text, each with the line it starts on (1-based).
    static func records(_ bytes: [UInt8], fail: (Int, String) -> DataError) throws -> [(line: Int, fields: [String])] {
        var records: [(line: Int, fields: [String])] = []
        var fields: [String] = [], field: [UInt8] = []
        var line = 1, recordLine = 1, quoted = false, i = 0, fieldWasQuoted = false
        func endField() {
            fields.append(String(decoding: field, as: UTF8.self))
            field.removeAll(keepingCapacity: true)
            fieldWasQuoted = false
        }
        func endRecord() {
            endField()
            if !(fields.count == 1 && fields[0].trimmingCharacters(in: .whitespaces).isEmpty) {
                records.append((recordLine, fields))
            }
            fields.removeAll()
        }
        while i < bytes.count {
            let c = bytes[i]
            if quoted {
                if c == UInt8(ascii: "\"") {
                    if i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "\"") {
                        field.append(c); i += 1
                    } else {
                        quoted = false
                    }
                } else {
                    if c == UInt8(ascii: "\n") { line += 1 }
                    field.append(c)
                }
            } else if c == UInt8(ascii: "\"") && field.allSatisfy({ $0 == UInt8(ascii: " ") }) && !fieldWasQuoted {
                field.removeAll()
                quoted = true
                fieldWasQuoted = true
            } else if c == UInt8(ascii: ",") {
                endField()
            } else if c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") {
                if c == UInt8(ascii: "\r") && i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "\n") { i += 1 }
                endRecord()
                line += 1
                recordLine = line
            } else {
                field.append(c)
            }
            i += 1
        }
        guard !quoted else { throw fail(recordLine, "a quoted field is never closed") }
        if !field.isEmpty || !fields.isEmpty { endRecord() }
        return records
    }
}
