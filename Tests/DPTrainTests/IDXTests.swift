import DPTrain
import Foundation
import Testing

@Suite("IDX files and data sets")
struct IDXTests {
    let dir = Support.temporaryDirectory()

    func gzip(_ path: String) throws {
        let r = try Support.run("/bin/gzip", ["-f", path])
        #expect(r.status == 0)
    }

    @Test func rawFileRoundTrips() throws {
        let bytes: [UInt8] = (0..<24).map { UInt8($0 * 3) }
        Support.write(IDXFile.encode(dimensions: [2, 3, 4], bytes: bytes), to: "\(dir)/a")
        let file = try IDXFile.read(path: "\(dir)/a")
        #expect(file.dimensions == [2, 3, 4])
        #expect(file.bytes == bytes)
    }

    @Test func gzipFileRoundTrips() throws {
        let bytes: [UInt8] = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        Support.write(IDXFile.encode(dimensions: [5000], bytes: bytes), to: "\(dir)/b")
        try gzip("\(dir)/b")
        let file = try IDXFile.read(path: "\(dir)/b.gz")
        #expect(file.dimensions == [5000])
        #expect(file.bytes == bytes)
    }

    /// zlib writes into room sized from the gzip trailer: concatenated members (whose last
    /// trailer counts only the last member) take the path that grows the room, and a false
    /// trailer is zlib's length check to fail, not a wrong result.
    @Test func gzipOfSeveralMembersInflatesWhole() throws {
        let bytes: [UInt8] = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        let file = IDXFile.encode(dimensions: [70_000], bytes: bytes)
        var members: [UInt8] = []
        for (n, part) in [file[..<50_000], file[50_000...]].enumerated() {
            Support.write(Array(part), to: "\(dir)/part\(n)")
            try gzip("\(dir)/part\(n)")
            members += [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/part\(n).gz")))
        }
        Support.write(members, to: "\(dir)/members.gz")
        let read = try IDXFile.read(path: "\(dir)/members.gz")
        #expect(read.dimensions == [70_000])
        #expect(read.bytes == bytes)
    }

    @Test(arguments: [10, 70_007, 70_009, 1 << 30])
    func gzipWithAFalseTrailerIsReported(length: Int) throws {
        Support.write(
            IDXFile.encode(dimensions: [70_000], bytes: [UInt8](repeating: 9, count: 70_000)), to: "\(dir)/t\(length)")
        try gzip("\(dir)/t\(length)")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/t\(length).gz")))
        for i in 0..<4 { bytes[bytes.count - 4 + i] = UInt8(truncatingIfNeeded: length >> (8 * i)) }
        Support.write(bytes, to: "\(dir)/t\(length).gz")
        expectError("\(dir)/t\(length).gz") { if case .corruptGzip = $0 { return true } else { return false } }
    }

    @Test func prefetchedFilesAreReadOnceAndKeepTheirErrors() throws {
        Support.write(IDXFile.encode(dimensions: [3], bytes: [1, 2, 3]), to: "\(dir)/p")
        Support.write([1, 2, 3, 4], to: "\(dir)/bad.gz")
        IDXPrefetch.start(paths: ["\(dir)/p", "\(dir)/bad.gz", "\(dir)/absent"])
        #expect(try IDXFile.read(path: "\(dir)/p").bytes == [1, 2, 3])
        // Taken once: the next read goes to the disk again.
        Support.write(IDXFile.encode(dimensions: [2], bytes: [7, 8]), to: "\(dir)/p")
        #expect(try IDXFile.read(path: "\(dir)/p").bytes == [7, 8])
        expectError("\(dir)/bad.gz") { $0 == .notGzip(path: "\(dir)/bad.gz") }
        expectError("\(dir)/absent") { if case .missingFile = $0 { return true } else { return false } }
    }

    @Test func prefetchPathsAreTheFilesLoadReads() throws {
        let data = Support.makeTinyMNIST(train: 3, test: 2)
        try gzip("\(data)/train-images-idx3-ubyte")
        #expect(
            DataLoader(spec: DataSpec(), directory: data).idxPaths(.train) == [
                "\(data)/train-images-idx3-ubyte.gz", "\(data)/train-labels-idx1-ubyte",
            ])
        #expect(DataLoader(spec: DataSpec(), directory: "\(dir)/nowhere").idxPaths(.test).isEmpty)
    }

    /// A gzip file is inflated into memory of its own; a raw one is mapped, not copied.
    @Test func datasetLoadsRawAndGzip() throws {
        let data = Support.makeTinyMNIST(train: 30, test: 10)
        try gzip("\(data)/train-images-idx3-ubyte")
        let loader = DataLoader(spec: DataSpec(), directory: data)
        let train = try #require(try loader.load(.train))
        #expect(
            train.count == 30 && train.sampleShape == [28, 28, 1] && train.numClasses == 10 && !train.buffer.isMapped)
        let limited = try #require(try loader.load(.test, limit: 4, classes: train.classes))
        #expect(limited.count == 4 && limited.buffer.isMapped && limited.offset == 16)
    }

    func expectError(_ path: String, _ check: (DataError) -> Bool) {
        do {
            _ = try IDXFile.read(path: path)
            Issue.record("reading \(path) should have failed")
        } catch let error as DataError {
            #expect(check(error), "unexpected error \(error)")
            #expect(error.description.contains(path), "message must name the file: \(error)")
        } catch {
            Issue.record("unexpected error type \(error)")
        }
    }

    @Test func wrongMagicIsReported() {
        Support.write([1, 2, 3, 4, 0, 0, 0, 1, 9], to: "\(dir)/magic")
        expectError("\(dir)/magic") { if case .badMagic = $0 { return true } else { return false } }
    }

    @Test func truncatedDataIsReported() {
        let good = IDXFile.encode(dimensions: [10, 28, 28], bytes: [UInt8](repeating: 1, count: 7840))
        Support.write(Array(good.dropLast(100)), to: "\(dir)/trunc")
        expectError("\(dir)/trunc") {
            if case .wrongLength(_, 7840, 7740) = $0 { return true } else { return false }
        }
        #expect(DataError.wrongLength(path: "x", expected: 2, found: 1).description.contains("truncated"))
    }

    @Test func truncatedHeaderIsReported() {
        Support.write([0, 0, 8, 3, 0, 0], to: "\(dir)/hdr")
        expectError("\(dir)/hdr") { if case .truncatedHeader = $0 { return true } else { return false } }
    }

    @Test func emptyFileIsReported() {
        Support.write([], to: "\(dir)/empty")
        expectError("\(dir)/empty") { $0 == .emptyFile(path: "\(dir)/empty") }
    }

    @Test func nonGzipBytesInGzIsReported() {
        Support.write(IDXFile.encode(dimensions: [1], bytes: [3]), to: "\(dir)/fake.gz")
        expectError("\(dir)/fake.gz") { $0 == .notGzip(path: "\(dir)/fake.gz") }
    }

    @Test func corruptGzipIsReported() throws {
        Support.write(IDXFile.encode(dimensions: [3000], bytes: [UInt8](repeating: 5, count: 3000)), to: "\(dir)/c")
        try gzip("\(dir)/c")
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/c.gz")))
        bytes = Array(bytes.prefix(bytes.count / 2))
        Support.write(bytes, to: "\(dir)/c.gz")
        expectError("\(dir)/c.gz") { if case .corruptGzip = $0 { return true } else { return false } }
    }

    /// IDX files named in a config, read as the training split.
    func loadIDX(
        images: (dims: [Int], bytes: [UInt8]), labels: (dims: [Int], bytes: [UInt8]), classes: Classes? = nil
    ) throws -> Dataset? {
        Support.write(IDXFile.encode(dimensions: images.dims, bytes: images.bytes), to: "\(dir)/imgs")
        Support.write(IDXFile.encode(dimensions: labels.dims, bytes: labels.bytes), to: "\(dir)/lbls")
        var spec = DataSpec()
        spec.train = ["imgs", "lbls"]
        return try DataLoader(spec: spec, directory: dir).load(.train, classes: classes)
    }

    @Test func countMismatchIsReported() throws {
        #expect(
            throws: DataError.countMismatch(images: "\(dir)/imgs", imageCount: 3, labels: "\(dir)/lbls", labelCount: 2)
        ) {
            try loadIDX(images: ([3, 28, 28], [UInt8](repeating: 0, count: 3 * 784)), labels: ([2], [1, 2]))
        }
    }

    /// The class count comes from the training labels; a split that takes them (a test split)
    /// may not go past it.
    @Test func labelOutOfRangeIsReported() throws {
        let images: (dims: [Int], bytes: [UInt8]) = ([2, 28, 28], [UInt8](repeating: 0, count: 2 * 784))
        #expect(try loadIDX(images: images, labels: ([2], [1, 25]))?.numClasses == 26)
        #expect(throws: DataError.labelOutOfRange(path: "\(dir)/lbls", index: 1, value: 10, classes: 10)) {
            try loadIDX(images: images, labels: ([2], [1, 10]), classes: Classes(count: 10))
        }
    }

    @Test func missingFileNamesTheFileAndTheFix() {
        do {
            _ = try DataLoader(spec: DataSpec(), directory: dir).load(.train)
            Issue.record("should fail")
        } catch {
            let text = "\(error)"
            #expect(text.contains("train-images-idx3-ubyte") && text.contains("fetch-mnist.sh"))
        }
    }
}
