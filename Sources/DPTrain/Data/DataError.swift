/// Every way reading a data set can fail. Each message names the file and what is wrong,
/// so a user can act on it without reading the code.
public enum DataError: Error, CustomStringConvertible, Equatable {
    case missingFile(path: String, hint: String)
    case unreadable(path: String, reason: String)
    case emptyFile(path: String)
    case notGzip(path: String)
    case corruptGzip(path: String, reason: String)
    case badMagic(path: String, found: String)
    case unsupportedType(path: String, typeCode: UInt8)
    case truncatedHeader(path: String, needed: Int, found: Int)
    case wrongLength(path: String, expected: Int, found: Int)
    case dimensionsOverflow(path: String, dimensions: [Int])
    case wrongRank(path: String, expected: Int, found: Int)
    case countMismatch(images: String, imageCount: Int, labels: String, labelCount: Int)
    case labelOutOfRange(path: String, index: Int, value: Int, classes: Int)
    case wrongImageShape(path: String, expected: [Int], found: [Int])
    case noSamples(what: String)
    case invalidNumPy(path: String, problem: String)
    case invalidArchive(path: String, problem: String)
    case invalidCSV(path: String, line: Int, problem: String)
    case inconsistent(path: String, problem: String)

    public var description: String {
        switch self {
        case .missingFile(let path, let hint):
            return "\(path): file not found. \(hint)"
        case .unreadable(let path, let reason):
            return "\(path): cannot read: \(reason)"
        case .emptyFile(let path):
            return "\(path): the file is empty"
        case .notGzip(let path):
            return "\(path): named .gz but is not gzip data (no 1f 8b header)"
        case .corruptGzip(let path, let reason):
            return "\(path): corrupt gzip data: \(reason)"
        case .badMagic(let path, let found):
            return "\(path): not an IDX file: magic number is \(found), expected 00 00 08 0N"
        case .unsupportedType(let path, let code):
            return "\(path): IDX element type 0x\(String(code, radix: 16)) is not supported (only 0x08, unsigned byte)"
        case .truncatedHeader(let path, let needed, let found):
            return "\(path): truncated IDX header: needs \(needed) bytes, file has \(found)"
        case .wrongLength(let path, let expected, let found):
            let what = found < expected ? "truncated" : "has trailing bytes"
            return "\(path): \(what): dimensions call for \(expected) data bytes, found \(found)"
        case .dimensionsOverflow(let path, let dimensions):
            return
                "\(path): the header's dimensions \(dimensions.map(String.init).joined(separator: " x ")) multiply past a 64-bit count: the header is corrupt"
        case .wrongRank(let path, let expected, let found):
            return "\(path): expected an IDX file with \(expected) dimension(s), found \(found)"
        case .countMismatch(let images, let imageCount, let labels, let labelCount):
            return "\(images) holds \(imageCount) images but \(labels) holds \(labelCount) labels"
        case .labelOutOfRange(let path, let index, let value, let classes):
            return
                "\(path): label \(value) at index \(index) is out of range 0..<\(classes) (the training labels' classes)"
        case .wrongImageShape(let path, let expected, let found):
            return
                "\(path): images are \(found.map(String.init).joined(separator: "x")), the model expects \(expected.map(String.init).joined(separator: "x"))"
        case .noSamples(let what):
            return "\(what): no samples"
        case .invalidNumPy(let path, let problem):
            return "\(path): \(problem)"
        case .invalidArchive(let path, let problem):
            return "\(path): \(problem)"
        case .invalidCSV(let path, let line, let problem):
            return "\(path), line \(line): \(problem)"
        case .inconsistent(let path, let problem):
            return "\(path): \(problem)"
        }
    }
}
