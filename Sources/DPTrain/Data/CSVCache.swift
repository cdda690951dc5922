import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A CSV table parsed once per machine: the first process that needs it parses it (`CSVTable`)
/// and writes the result as `.npy` files in a cache folder, under a lock; every process, that
/// one included, then maps those files read-only, so the ranks of a machine share one copy of
/// the values in the page cache and none parses the text again.
///
/// The cache folder is `.dptrain-cache` beside the CSV file, else `$XDG_CACHE_HOME/dptrain` (or
/// `~/.cache/dptrain`) where the data folder cannot be written; with neither, each process
/// parses on its own. An entry's name carries a key over what the result depends on: the CSV's
/// absolute path, size, modification time and inode, a hash of its first and last 64 KB, the
/// columns asked for and the class names given. A changed file gets a new entry (the old ones of
/// that file are removed); an entry is complete once its `.json` is there, written last, each
/// file through a temporary one renamed into place.
public enum CSVCache {
    /// What a read gives: the features as float32 rows in `buffer` from `offset`, and the rest
    /// of what `CSVTable` gives.
    public struct Table {
        public var buffer: DataBuffer
        public var offset: Int
        public var rows: Int
        public var featureNames: [String]
        public var labels: [Int32]
        public var classNames: [String]?
        /// Where it came from: "parsed", "parsed and cached in DIR", "cached in DIR".
        public var origin: String
    }

    /// `CSVTable`'s result for these arguments, from the cache when it holds it.
    public static func read(
        path: String, label: CSVTable.Column?, featureColumns: [CSVTable.Column]? = nil, classNames: [String]? = nil,
        labelOptional: Bool = false
    ) throws -> Table {
        func parse() throws -> CSVTable {
            try CSVTable(
                path: path, label: label, featureColumns: featureColumns, classNames: classNames,
                labelOptional: labelOptional)
        }
        guard
            let key = key(
                path: path, label: label, featureColumns: featureColumns, classNames: classNames,
                labelOptional: labelOptional),
            let (folder, lock) = openLock(for: path, key: key)
        else {
            let t = try parse()
            return Table(
                buffer: t.features, offset: 0, rows: t.rows, featureNames: t.featureNames, labels: t.labels,
                classNames: t.classNames, origin: "parsed (no writable cache folder)")
        }
        defer { close(lock) }
        flock(lock, LOCK_EX)  // the first process parses; the others wait here, then map what it wrote
        let stem = (folder as NSString).appendingPathComponent(
            ((path as NSString).lastPathComponent as NSString).deletingPathExtension + "." + key)
        if let cached = try? open(stem: stem) {
            return Table(
                buffer: cached.buffer, offset: cached.offset, rows: cached.rows, featureNames: cached.featureNames,
                labels: cached.labels, classNames: cached.classNames, origin: "cached in \(folder)")
        }
        let table = try parse()
        do {
            try write(table, stem: stem, folder: folder, csvName: (path as NSString).lastPathComponent)
            var cached = try open(stem: stem)
            cached.origin = "parsed and cached in \(folder)"
            return cached
        } catch {
            return Table(
                buffer: table.features, offset: 0, rows: table.rows, featureNames: table.featureNames,
                labels: table.labels, classNames: table.classNames, origin: "parsed (could not cache: \(error))")
        }
    }

    /// The entry's key, or nil when the file cannot be looked at (the parse then says why).
    static func key(
        path: String, label: CSVTable.Column?, featureColumns: [CSVTable.Column]?, classNames: [String]?,
        labelOptional: Bool
    ) -> String? {
        var status = stat()
        guard stat(path, &status) == 0, let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let size = Int(status.st_size)
        var sample = (try? handle.read(upToCount: 65536)) ?? Data()
        if size > 131_072 {
            try? handle.seek(toOffset: UInt64(size - 65536))
            sample += (try? handle.read(upToCount: 65536)) ?? Data()
        }
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        let what = [
            absolute, "\(size)", "\(status.st_mtim.tv_sec).\(status.st_mtim.tv_nsec)", "\(status.st_ino)",
            "\(label.map(\.description) ?? "-")", featureColumns.map { "\($0)" } ?? "-",
            classNames?.joined(separator: "\u{1}") ?? "-", "\(labelOptional)",
        ].joined(separator: "\u{0}")
        var bytes = Array(what.utf8)
        bytes += sample
        return String(bytes.withUnsafeBytes { Checksum.fnv1a($0) }, radix: 16)
    }

    /// The first cache folder that takes a lock file for this entry, and the lock's descriptor.
    static func openLock(for path: String, key: String) -> (String, Int32)? {
        let env = ProcessInfo.processInfo.environment
        let home = env["XDG_CACHE_HOME"] ?? env["HOME"].map { $0 + "/.cache" }
        let candidates =
            [((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(".dptrain-cache")]
            + (home.map { [$0 + "/dptrain"] } ?? [])
        for folder in candidates {
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let name = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
            let fd = Glibc.open(folder + "/" + name + "." + key + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            if fd >= 0 { return (folder, fd) }
        }
        return nil
    }

    /// The entry at `stem` (`.x.npy`, `.y.npy`, `.json`), mapped; throws when it is not complete.
    static func open(stem: String) throws -> Table {
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stem + ".json")))
        guard let meta = meta as? [String: Any], let names = meta["feature_names"] as? [String],
            let rows = meta["rows"] as? Int
        else { throw DataError.inconsistent(path: stem + ".json", problem: "not a cache entry") }
        let x = try NumPyArray.read(path: stem + ".x.npy")
        guard x.shape == [rows, names.count], x.element.isNativeFloat32 else {
            throw DataError.inconsistent(path: stem + ".x.npy", problem: "not the cached table")
        }
        let labels =
            FileManager.default.fileExists(atPath: stem + ".y.npy")
            ? try NumPyArray.read(path: stem + ".y.npy").classIDs() : []
        return Table(
            buffer: x.buffer, offset: x.offset, rows: rows, featureNames: names, labels: labels,
            classNames: meta["class_names"] as? [String], origin: "")
    }

    /// Writes `table` as the entry at `stem`, the `.json` last; removes the other entries of the
    /// same CSV file.
    static func write(_ table: CSVTable, stem: String, folder: String, csvName: String) throws {
        let prefix = (csvName as NSString).deletingPathExtension + "."
        let mine = (stem as NSString).lastPathComponent
        for file in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        where file.hasPrefix(prefix) && !file.hasPrefix(mine) && !file.hasSuffix(".lock") {
            try? FileManager.default.removeItem(atPath: folder + "/" + file)
        }
        let shape = [table.rows, table.featureNames.count]
        try writeAtomically(
            NumPyWriter.npyHeader(descr: "<f4", shape: shape),
            UnsafeRawBufferPointer(start: table.features.base, count: table.features.count),
            to: stem + ".x.npy")
        if !table.labels.isEmpty {
            try table.labels.withUnsafeBytes {
                try writeAtomically(NumPyWriter.npyHeader(descr: "<i4", shape: [table.rows]), $0, to: stem + ".y.npy")
            }
        }
        var meta: [String: Any] = ["rows": table.rows, "feature_names": table.featureNames, "source": csvName]
        if let names = table.classNames { meta["class_names"] = names }
        let json = try JSONSerialization.data(withJSONObject: meta)
        try json.withUnsafeBytes { try writeAtomically([], $0, to: stem + ".json") }
    }

    /// `head` then `body` into a temporary file beside `path`, renamed into place.
    static func writeAtomically(_ head: [UInt8], _ body: UnsafeRawBufferPointer, to path: String) throws {
        let temporary = path + ".tmp\(getpid())"
        let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DataError.unreadable(path: temporary, reason: String(cString: strerror(errno))) }
        func writeAll(_ part: UnsafeRawBufferPointer) -> Bool {
            var done = 0
            while done < part.count {
                let n = Glibc.write(fd, part.baseAddress! + done, part.count - done)
                guard n > 0 else { return false }
                done += n
            }
            return true
        }
        var ok = head.withUnsafeBytes { writeAll($0) } && writeAll(body)
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw DataError.unreadable(path: path, reason: "cannot write: \(reason)")
        }
    }
}
