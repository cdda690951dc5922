import Foundation

/// Writes TensorBoard event files (`events.out.tfevents.<time>.<host>`), readable by TensorBoard:
/// TFRecord framing (length, masked CRC32C of the length, an `Event` protocol buffer, masked
/// CRC32C of the data) around `Event { wall_time, step, summary { value { tag, simple_value } } }`,
/// the first record carrying `file_version: "brain.Event:2"`.
///
/// As a `MetricsSink` it turns events into scalars: `train/loss`, `train/accuracy`,
/// `train/step_loss`, `train/learning_rate`, `perf/samples_per_second`, `perf/allreduce_ms`,
/// `test/loss`, `test/accuracy`, `validation/loss`, `validation/accuracy`.
public final class TensorBoardWriter: MetricsSink {
    public let path: String
    private let handle: FileHandle

    public init(directory: String) throws {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let name = String(
            format: "events.out.tfevents.%.0f.%@", Date().timeIntervalSince1970, ProcessInfo.processInfo.hostName)
        path = (directory as NSString).appendingPathComponent(name)
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path)
        else {
            throw ConfigError.invalid(key: "--tensorboard", reason: "cannot create \(path)")
        }
        handle = h
        var event = Protobuf()
        event.double(1, Date().timeIntervalSince1970)
        event.bytes(3, Array("brain.Event:2".utf8))
        writeRecord(event.data)
    }

    deinit { try? handle.close() }

    /// One event holding the scalars `values` at `step`.
    public func scalars(step: Int, _ values: [(tag: String, value: Double)]) {
        guard !values.isEmpty else { return }
        var summary = Protobuf()
        for (tag, value) in values {
            var v = Protobuf()
            v.bytes(1, Array(tag.utf8))
            v.float(2, Float(value))
            summary.bytes(1, v.data)
        }
        var event = Protobuf()
        event.double(1, Date().timeIntervalSince1970)
        event.varint(2, UInt64(max(step, 0)))
        event.bytes(5, summary.data)
        writeRecord(event.data)
    }

    public func write(_ event: String, _ fields: [(String, JSONValue)]) {
        var number: [String: Double] = [:], text: [String: String] = [:]
        for (key, value) in fields {
            switch value {
            case .number(let d): number[key] = d
            case .int(let i): number[key] = Double(i)
            case .string(let s): text[key] = s
            default: break
            }
        }
        let step = Int(number["step"] ?? 0)
        var out: [(String, Double)] = []
        switch event {
        case "step":
            if let l = number["loss"] { out.append(("train/step_loss", l)) }
            if let r = number["learning_rate"] { out.append(("train/learning_rate", r)) }
        case "epoch":
            if let l = number["loss"] { out.append(("train/loss", l)) }
            if let a = number["accuracy"] { out.append(("train/accuracy", a)) }
            if let s = number["samples_per_second"] { out.append(("perf/samples_per_second", s)) }
            if let t = number["allreduce_ms"] { out.append(("perf/allreduce_ms", t)) }
        case "eval":
            let split = text["split"] ?? "test"
            if let l = number["loss"] { out.append(("\(split)/loss", l)) }
            if let a = number["accuracy"] { out.append(("\(split)/accuracy", a)) }
        default: break
        }
        scalars(step: step, out)
    }

    private func writeRecord(_ data: [UInt8]) {
        var length = [UInt8]()
        withUnsafeBytes(of: UInt64(data.count).littleEndian) { length += $0 }
        var record = length
        withUnsafeBytes(of: CRC32C.masked(length).littleEndian) { record += $0 }
        record += data
        withUnsafeBytes(of: CRC32C.masked(data).littleEndian) { record += $0 }
        handle.write(Data(record))
    }
}

/// The few protocol-buffer wire encodings an `Event` needs.
struct Protobuf {
    var data: [UInt8] = []

    mutating func key(_ field: Int, _ wireType: Int) { varintRaw(UInt64(field << 3 | wireType)) }

    mutating func varintRaw(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            data.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        data.append(UInt8(v))
    }

    mutating func varint(_ field: Int, _ v: UInt64) { key(field, 0); varintRaw(v) }
    mutating func double(_ field: Int, _ v: Double) {
        key(field, 1); withUnsafeBytes(of: v.bitPattern.littleEndian) { data += $0 }
    }
    mutating func float(_ field: Int, _ v: Float) {
        key(field, 5); withUnsafeBytes(of: v.bitPattern.littleEndian) { data += $0 }
    }
    mutating func bytes(_ field: Int, _ v: [UInt8]) { key(field, 2); varintRaw(UInt64(v.count)); data += v }
}

/// CRC-32C (Castagnoli), as TFRecord frames use it, with TensorFlow's masking.
enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    static func masked(_ bytes: [UInt8]) -> UInt32 {
        let c = checksum(bytes)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }
}
