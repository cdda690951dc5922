import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes and finds checkpoints in one directory. Only rank 0 uses it.
///
/// A checkpoint is written to a hidden temporary file in the directory, fsynced, renamed into
/// place (atomic on POSIX file systems) and the directory fsynced, so a crash at any moment
/// leaves either the old set of files or the new one. Older checkpoints beyond `keep` are
/// deleted only after the new one is complete.
public final class Checkpointer {
    public let directory: String
    public let keep: Int

    public init(directory: String, keep: Int = 3) {
        self.directory = directory
        self.keep = keep
    }

    public static let prefix = "ckpt-step"
    public static let suffix = ".safetensors"

    public func path(step: Int) -> String {
        (directory as NSString).appendingPathComponent(String(format: "\(Self.prefix)%09d\(Self.suffix)", step))
    }

    /// Writes `checkpoint` as the file for `step`; returns its path and size in bytes.
    @discardableResult
    public func save(_ checkpoint: Checkpoint, step: Int) throws -> (path: String, bytes: Int) {
        let final = path(step: step)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw CheckpointError.writeFailed(
                path: final, reason: "cannot create directory \(directory): \(error.localizedDescription)")
        }
        let temporary = (directory as NSString).appendingPathComponent(".\((final as NSString).lastPathComponent).tmp")
        let bytes = checkpoint.encoded()
        do {
            try Self.writeDurably(bytes, to: temporary)
        } catch {
            unlink(temporary)
            throw CheckpointError.writeFailed(path: final, reason: "\(error)")
        }
        guard rename(temporary, final) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw CheckpointError.writeFailed(path: final, reason: "rename failed: \(reason)")
        }
        let dir = open(directory, O_RDONLY)
        if dir >= 0 { fsync(dir); close(dir) }
        prune()
        return (final, bytes.count)
    }

    struct POSIXFailure: Error, CustomStringConvertible {
        let description: String
    }

    static func writeDurably(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw POSIXFailure(description: String(cString: strerror(errno))) }
        defer { close(fd) }
        var written = 0
        try bytes.withUnsafeBytes { raw in
            while written < raw.count {
                let n = write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw POSIXFailure(description: String(cString: strerror(errno)))
                }
                written += n
            }
        }
        guard fsync(fd) == 0 else { throw POSIXFailure(description: "fsync: " + String(cString: strerror(errno))) }
    }

    /// Checkpoint files in the directory, newest (highest step) first. Temporary files are ignored.
    public func files() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix(Self.prefix) && $0.hasSuffix(Self.suffix) }.sorted(by: >)
            .map { (directory as NSString).appendingPathComponent($0) }
    }

    /// Deletes all but the newest `keep` checkpoints, and the temporary files of saves that were
    /// abandoned (a process stopped while writing one; called after a save completes, so none
    /// is in progress).
    public func prune() {
        for old in files().dropFirst(max(keep, 1)) { unlink(old) }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasPrefix(".\(Self.prefix)") && name.hasSuffix("\(Self.suffix).tmp") {
            unlink((directory as NSString).appendingPathComponent(name))
        }
    }

    /// The newest checkpoint that reads and verifies; corrupt ones are reported through `warn`
    /// and skipped in favour of the one before.
    public func newestValid(warn: (String) -> Void) throws -> (checkpoint: Checkpoint, path: String) {
        for file in files() {
            do {
                return (try Checkpoint.read(path: file), file)
            } catch {
                warn("skipping \(error)")
            }
        }
        throw CheckpointError.noneFound(directory: directory)
    }
}
