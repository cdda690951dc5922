import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where each column of a record goes: its feature slot in the row (or -1), and whether it is
/// the label.
struct CSVRowLayout: @unchecked Sendable {
    let header: [String]
    let slots: [Int]
    let label: Int?
    let width: Int

    init(header: [String], features: [Int], label: Int?) {
        self.header = header
        var slots = [Int](repeating: -1, count: header.count)
        for (slot, column) in features.enumerated() { slots[column] = slot }
        self.slots = slots
        self.label = label
        width = features.count
    }
}

/// The body of a CSV file cut into byte ranges, one a thread, each starting at a record (a line
/// end outside quotes), with the line each starts on and a bound on its records (its line ends
/// plus one).
struct CSVParts: @unchecked Sendable {
    var ranges: [(start: UnsafePointer<UInt8>, end: UnsafePointer<UInt8>)] = []
    var firstLines: [Int] = []
    var rowBounds: [Int] = []

    init(bytes: UnsafePointer<UInt8>, end: UnsafePointer<UInt8>, firstLine: Int, threads: Int) {
        let length = end - bytes
        let count = max(1, min(threads, length >> 20))  // at least 1 MB a part
        let quoted = memchr(bytes, Int32(UInt8(ascii: "\"")), length) != nil
        var cuts = [bytes]
        var scan = bytes, inQuotes = false
        for k in 1..<max(count, 1) {
            let target = bytes + length * k / count
            var cut = end
            if !quoted {
                if target > cuts.last!, let newline = memchr(target, 0x0A, end - target) {
                    cut = UnsafePointer(newline.assumingMemoryBound(to: UInt8.self)) + 1
                }
            } else {
                // A quote opens or closes a quoted field ("" closes and reopens one): a line end
                // outside quotes starts a record.
                while scan < end {
                    let c = scan.pointee
                    scan += 1
                    if c == UInt8(ascii: "\"") {
                        inQuotes.toggle()
                    } else if c == 0x0A && !inQuotes && scan > target {
                        cut = scan
                        break
                    }
                }
            }
            if cut > cuts.last! && cut < end { cuts.append(cut) }
        }
        cuts.append(end)
        ranges = (0..<cuts.count - 1).map { (cuts[$0], cuts[$0 + 1]) }
        var newlines = [Int](repeating: 0, count: ranges.count)
        let ranges = self.ranges
        newlines.withUnsafeMutableBufferPointer { counts in
            let counts = counts.baseAddress!
            concurrently(ranges.count) { k in
                var (p, n) = (ranges[k].start, 0)
                while p < ranges[k].end, let found = memchr(p, 0x0A, ranges[k].end - p) {
                    n += 1
                    p = UnsafePointer(found.assumingMemoryBound(to: UInt8.self)) + 1
                }
                counts[k] = n
            }
        }
        var line = firstLine
        for n in newlines {
            firstLines.append(line)
            rowBounds.append(n + 1)
            line += n
        }
    }
}

/// One record parsed byte by byte (the header, and records with quoted fields): its fields,
/// where the next record starts and its line, and whether it was blank.
struct CSVRecord {
    var fields: [String]
    var next: UnsafePointer<UInt8>
    var nextLine: Int
    var isBlank: Bool { fields.count == 1 && CSVTable.trimmed(fields[0]).isEmpty }

    /// The record at `p` (on `line`). A quote opens a quoted field only where the field holds
    /// nothing but spaces so far; inside one, `""` is a quote and line ends are kept.
    static func slow(
        from start: UnsafePointer<UInt8>, end: UnsafePointer<UInt8>, line: Int, fail: (Int, String) -> DataError
    ) throws -> CSVRecord {
        var fields: [String] = [], field: [UInt8] = []
        var p = start, current = line, quoted = false, wasQuoted = false
        func endField() {
            fields.append(String(decoding: field, as: UTF8.self))
            field.removeAll(keepingCapacity: true)
            wasQuoted = false
        }
        while p < end {
            let c = p.pointee
            if quoted {
                if c == UInt8(ascii: "\"") {
                    if p + 1 < end && (p + 1).pointee == UInt8(ascii: "\"") {
                        field.append(c)
                        p += 1
                    } else {
                        quoted = false
                    }
                } else {
                    if c == 0x0A { current += 1 }
                    field.append(c)
                }
            } else if c == UInt8(ascii: "\"") && !wasQuoted && field.allSatisfy({ $0 == 0x20 }) {
                field.removeAll()
                quoted = true
                wasQuoted = true
            } else if c == UInt8(ascii: ",") {
                endField()
            } else if c == 0x0A {
                if field.last == 0x0D { field.removeLast() }
                endField()
                return CSVRecord(fields: fields, next: p + 1, nextLine: current + 1)
            } else {
                field.append(c)
            }
            p += 1
        }
        guard !quoted else { throw fail(line, "a quoted field is never closed") }
        if field.last == 0x0D { field.removeLast() }
        endField()
        return CSVRecord(fields: fields, next: end, nextLine: current)
    }
}

/// One part of a CSV body, parsed into its rows' feature values (written in place), each row's
/// label as an index into the part's distinct label texts, and each row's line.
enum CSVPart {
    struct Result {
        var rows = 0
        var labels: [Int32] = []
        var names: [String] = []
        var lines: [Int] = []
        /// The first bad record's line and what is wrong with it; the part stops there.
        var error: (Int, String)?
    }

    static let comma = UInt8(ascii: ","), newline: UInt8 = 0x0A, quote = UInt8(ascii: "\"")

    /// The first comma, line end or quote in `p..<end` (or `end`), 16 bytes at a time.
    @inline(__always)
    static func nextSeparator(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> UnsafePointer<UInt8> {
        var p = start
        let (commas, newlines, quotes) = (
            SIMD16<UInt8>(repeating: comma), SIMD16<UInt8>(repeating: newline), SIMD16<UInt8>(repeating: quote)
        )
        while end - p >= 16 {
            let v = UnsafeRawPointer(p).loadUnaligned(as: SIMD16<UInt8>.self)
            if any((v .== commas) .| (v .== newlines) .| (v .== quotes)) { break }
            p += 16
        }
        while p < end {
            let c = p.pointee
            if c == comma || c == newline || c == quote { return p }
            p += 1
        }
        return end
    }

    /// Parses the records of `range` into `out` (room for `capacity` rows of the layout's
    /// width); gives back the pages of `file` behind what it has parsed, as it goes.
    static func parse(
        _ range: (start: UnsafePointer<UInt8>, end: UnsafePointer<UInt8>), firstLine: Int, layout: CSVRowLayout,
        into out: UnsafeMutablePointer<Float>, capacity: Int, release file: DataBuffer
    ) -> Result {
        var result = Result()
        result.labels.reserveCapacity(layout.label == nil ? 0 : capacity)
        result.lines.reserveCapacity(capacity)
        var labels = LabelTexts()
        let (end, width, columns) = (range.end, layout.width, layout.header.count)
        var p = range.start, line = firstLine
        var released = range.start
        func fail(_ line: Int, _ problem: String) -> Result {
            var r = result
            r.error = (line, problem)
            return r
        }
        /// What is wrong with a feature's text, or nil with `value` set.
        func number(
            _ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, column k: Int, into value: inout Float
        )
            -> String?
        {
            if let v = DecimalParser.float(a, b) {
                if v.isFinite {
                    value = v
                    return nil
                }
                return "column '\(layout.header[k])' (\(k)): '\(text(a, b))' is not a finite number"
            }
            let t = text(a, b)
            return "column '\(layout.header[k])' (\(k)): " + (t.isEmpty ? "empty" : "'\(t)' is not a number")
        }
        while p < end {
            // A blank line is no record.
            var q = p
            while q < end && (q.pointee == 0x20 || q.pointee == 0x09 || q.pointee == 0x0D) { q += 1 }
            if q == end { break }
            if q.pointee == newline {
                (p, line) = (q + 1, line + 1)
                continue
            }
            let recordLine = line
            let row = out + result.rows * width
            var k = 0, problem: String? = nil, label: Int32 = 0
            var fieldStart = p
            var quoted = false
            while true {
                var s = nextSeparator(fieldStart, end)
                while s < end && s.pointee == quote {
                    // Only a quote where the field holds nothing but spaces opens a quoted field.
                    var blank = fieldStart
                    while blank < s && blank.pointee == 0x20 { blank += 1 }
                    if blank == s {
                        quoted = true
                        break
                    }
                    s = nextSeparator(s + 1, end)
                }
                if quoted { break }
                var fieldEnd = s
                if (s == end || s.pointee == newline) && fieldEnd > fieldStart && (fieldEnd - 1).pointee == 0x0D {
                    fieldEnd -= 1
                }
                if k < columns {
                    let slot = layout.slots[k]
                    if slot >= 0 {
                        var v: Float = 0
                        if let bad = number(fieldStart, fieldEnd, column: k, into: &v) {
                            problem = problem ?? bad
                        } else {
                            row[slot] = v
                        }
                    }
                    if k == layout.label { label = labels.id(fieldStart, fieldEnd) }
                }
                k += 1
                if s == end || s.pointee == newline {
                    p = s == end ? end : s + 1
                    line += 1
                    break
                }
                fieldStart = s + 1
            }
            if quoted {
                // The rare record with a quoted field: byte by byte, as the header was.
                let record: CSVRecord
                do {
                    record = try CSVRecord.slow(from: p, end: end, line: recordLine) {
                        DataError.invalidCSV(path: "", line: $0, problem: $1)
                    }
                } catch DataError.invalidCSV(_, let at, let what) {
                    return fail(at, what)
                } catch {
                    return fail(recordLine, "\(error)")
                }
                (p, line) = (record.next, record.nextLine)
                k = record.fields.count
                problem = nil
                if k == columns {
                    for (j, field) in record.fields.enumerated() {
                        var bytes = Array(field.utf8)  // mutable: borrowed as a pointer below
                        bytes.withUnsafeMutableBufferPointer { b in
                            let (a, z) = (UnsafePointer(b.baseAddress!), UnsafePointer(b.baseAddress!) + b.count)
                            if layout.slots[j] >= 0 {
                                var v: Float = 0
                                if let bad = number(a, z, column: j, into: &v) {
                                    problem = problem ?? bad
                                } else {
                                    row[layout.slots[j]] = v
                                }
                            }
                            if j == layout.label { label = labels.id(a, z) }
                        }
                    }
                }
            }
            guard k == columns else {
                return fail(recordLine, "\(k) fields where the header has \(columns) (a missing or extra comma?)")
            }
            if let problem { return fail(recordLine, problem) }
            guard result.rows < capacity else {
                return fail(recordLine, "more records than line ends (an internal error)")
            }
            result.rows += 1
            if layout.label != nil { result.labels.append(label) }
            result.lines.append(recordLine)
            if p - released >= 8 << 20 {
                giveBack(file, from: released, to: p)
                released = p
            }
        }
        giveBack(file, from: released, to: end)
        result.names = labels.names
        return result
    }

    /// Drops the whole pages of the mapped `file` within `a..<b` from this process (they stay in
    /// the page cache): what is parsed is not read again.
    static func giveBack(_ file: DataBuffer, from a: UnsafePointer<UInt8>, to b: UnsafePointer<UInt8>) {
        guard file.isMapped else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let base = UnsafeRawPointer(file.base)
        let first = (UnsafeRawPointer(a) - base + page - 1) / page * page
        let last = (UnsafeRawPointer(b) - base) / page * page
        guard last > first else { return }
        madvise(UnsafeMutableRawPointer(mutating: base + first), last - first, MADV_DONTNEED)
    }

    static func text(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>) -> String {
        CSVTable.trimmed(String(decoding: UnsafeBufferPointer(start: a, count: b - a), as: UTF8.self))
    }
}

/// A part's distinct label texts (trimmed), numbered as first seen.
struct LabelTexts {
    private(set) var names: [String] = []
    private var bytes: [[UInt8]] = []
    private var index: [String: Int32] = [:]
    private var last = -1

    mutating func id(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Int32 {
        var (a, b) = (start, end)
        while a < b && (a.pointee == 0x20 || a.pointee == 0x09) { a += 1 }
        while b > a && ((b - 1).pointee == 0x20 || (b - 1).pointee == 0x09) { b -= 1 }
        let field = UnsafeBufferPointer(start: a, count: b - a)
        if last >= 0 && bytes[last].elementsEqual(field) { return Int32(last) }
        if bytes.count < 64 {
            if let found = bytes.firstIndex(where: { $0.elementsEqual(field) }) {
                last = found
                return Int32(found)
            }
        } else if let found = index[String(decoding: field, as: UTF8.self)] {
            return found
        }
        let name = String(decoding: field, as: UTF8.self)
        names.append(name)
        bytes.append(Array(field))
        index[name] = Int32(names.count - 1)
        last = names.count - 1
        return Int32(last)
    }
}

/// Runs `body(k)` for every `k` in `0..<count`, on as many threads at once, and returns when
/// all are done. The parts must touch disjoint memory.
func concurrently(_ count: Int, _ body: (Int) -> Void) {
    struct Unchecked: @unchecked Sendable { let body: (Int) -> Void }
    withoutActuallyEscaping(body) { body in
        let work = Unchecked(body: body)
        DispatchQueue.concurrentPerform(iterations: count) { work.body($0) }
    }
}
