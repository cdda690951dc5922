import Foundation

/// Reads a grayscale image for `predict`: binary or ASCII PGM (P5/P2), or PNG (8-bit gray, gray
/// + alpha, RGB or RGBA, not interlaced; colour is averaged to gray). Pixels come back as bytes,
/// row-major, with 0 as black, like MNIST (white digits on black).
public enum ImageFile {
    public struct Image: Sendable {
        public var width: Int
        public var height: Int
        public var pixels: [UInt8]
    }

    public struct FormatError: Error, CustomStringConvertible {
        public let path: String
        public let problem: String
        public init(path: String, problem: String) {
            self.path = path
            self.problem = problem
        }
        public var description: String { "\(path): \(problem)" }
    }

    public static func read(path: String) throws -> Image {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FormatError(path: path, problem: "cannot read the file")
        }
        let bytes = [UInt8](data)
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return try png(bytes, path: path) }
        if bytes.starts(with: [0x50, 0x35]) || bytes.starts(with: [0x50, 0x32]) { return try pgm(bytes, path: path) }
        throw FormatError(path: path, problem: "not a PGM (P5/P2) or PNG image")
    }

    static func pgm(_ bytes: [UInt8], path: String) throws -> Image {
        let ascii = bytes[1] == 0x32
        var i = 2
        func token() throws -> Int {
            while i < bytes.count {
                if bytes[i] == 0x23 {
                    while i < bytes.count && bytes[i] != 0x0A { i += 1 }
                }  // comment
                else if bytes[i] == 0x20 || (0x09...0x0D).contains(bytes[i]) {
                    i += 1
                } else {
                    break
                }
            }
            var value = 0, digits = 0
            while i < bytes.count, (0x30...0x39).contains(bytes[i]) {
                value = value * 10 + Int(bytes[i] - 0x30); i += 1; digits += 1
                if value > 1 << 24 { break }
            }
            guard digits > 0 else { throw FormatError(path: path, problem: "malformed PGM header or data") }
            return value
        }
        let width = try token(), height = try token(), maxValue = try token()
        guard width > 0, height > 0, width * height <= 1 << 24, (1...255).contains(maxValue) else {
            throw FormatError(
                path: path, problem: "unsupported PGM: \(width)x\(height), max value \(maxValue) (need 8-bit)")
        }
        var pixels = [UInt8]()
        if ascii {
            for _ in 0..<width * height { pixels.append(UInt8(min(try token(), maxValue) * 255 / maxValue)) }
        } else {
            i += 1  // the single whitespace after the max value
            guard bytes.count - i >= width * height else {
                throw FormatError(
                    path: path,
                    problem: "truncated PGM: needs \(width * height) pixel bytes, has \(max(bytes.count - i, 0))")
            }
            pixels = bytes[i..<i + width * height].map { UInt8(Int($0) * 255 / maxValue) }
        }
        return Image(width: width, height: height, pixels: pixels)
    }

    static func png(_ bytes: [UInt8], path: String) throws -> Image {
        func fail(_ p: String) -> FormatError { FormatError(path: path, problem: "PNG: \(p)") }
        func be32(_ o: Int) -> Int {
            Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3])
        }
        var i = 8
        var width = 0, height = 0, channels = 0
        var compressed = [UInt8]()
        while i + 8 <= bytes.count {
            let length = be32(i)
            let type = String(decoding: bytes[i + 4..<i + 8], as: UTF8.self)
            guard length >= 0, i + 12 + length <= bytes.count else { throw fail("truncated chunk \(type)") }
            let body = bytes[i + 8..<i + 8 + length]
            switch type {
            case "IHDR":
                guard length == 13 else { throw fail("bad IHDR") }
                width = be32(i + 8); height = be32(i + 12)
                let depth = body[body.startIndex + 8], color = body[body.startIndex + 9],
                    interlace = body[body.startIndex + 12]
                guard depth == 8, interlace == 0 else {
                    throw fail(
                        "only 8-bit, non-interlaced images are supported (depth \(depth), interlace \(interlace))")
                }
                switch color {
                case 0: channels = 1
                case 4: channels = 2
                case 2: channels = 3
                case 6: channels = 4
                default: throw fail("colour type \(color) is not supported (use grayscale or RGB)")
                }
                guard width > 0, height > 0, width * height <= 1 << 24 else {
                    throw fail("bad size \(width)x\(height)")
                }
            case "IDAT": compressed += body
            case "IEND": i = bytes.count
            default: break
            }
            i += 12 + length
        }
        guard channels > 0 else { throw fail("no IHDR chunk") }
        let raw: [UInt8]
        do { raw = try Gzip.inflate(compressed, path: path, zlibWrapper: true) } catch {
            throw fail("corrupt image data")
        }
        let stride = width * channels
        guard raw.count >= height * (stride + 1) else { throw fail("image data too short") }
        var out = [UInt8](repeating: 0, count: height * stride)
        for y in 0..<height {
            let filter = raw[y * (stride + 1)]
            for x in 0..<stride {
                let v = Int(raw[y * (stride + 1) + 1 + x])
                let a = x >= channels ? Int(out[y * stride + x - channels]) : 0
                let b = y > 0 ? Int(out[(y - 1) * stride + x]) : 0
                let c = x >= channels && y > 0 ? Int(out[(y - 1) * stride + x - channels]) : 0
                let predicted: Int
                switch filter {
                case 0: predicted = 0
                case 1: predicted = a
                case 2: predicted = b
                case 3: predicted = (a + b) / 2
                case 4:
                    let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    predicted = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
                default: throw fail("bad filter type \(filter) in row \(y)")
                }
                out[y * stride + x] = UInt8((v + predicted) & 0xFF)
            }
        }
        let gray: [UInt8] = (0..<width * height).map { p in
            let px = out[p * channels..<p * channels + (channels >= 3 ? 3 : 1)]
            return UInt8(px.reduce(0) { $0 + Int($1) } / px.count)
        }
        return Image(width: width, height: height, pixels: gray)
    }

    /// Serialises an 8-bit grayscale image as binary PGM (P5).
    public static func encodePGM(width: Int, height: Int, pixels: [UInt8]) -> [UInt8] {
        Array("P5\n\(width) \(height)\n255\n".utf8) + pixels
    }
}
