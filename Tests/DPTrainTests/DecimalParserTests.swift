import DPTrain
import Foundation
import Testing

/// `DecimalParser` gives `strtof`'s float for every text, bit for bit, and nil where `strtof`
/// would not read the whole text.
@Suite("Decimal parser")
struct DecimalParserTests {
    /// strtof on the whole of `text`, nil unless it reads all of it.
    static func reference(_ text: String) -> Float? {
        let trimmed = text.trimmingCharacters(in: CharacterSet(charactersIn: " \t"))
        guard let first = trimmed.utf8.first, first > 0x20 else { return nil }
        return trimmed.withCString { start in
            var stop: UnsafeMutablePointer<CChar>? = nil
            let value = strtof(start, &stop)
            return stop == UnsafeMutablePointer(mutating: start) + trimmed.utf8.count ? value : nil
        }
    }

    static func parse(_ text: String) -> Float? {
        var bytes = Array(text.utf8)
        if bytes.isEmpty { return nil }
        return bytes.withUnsafeMutableBufferPointer { b in
            DecimalParser.float(UnsafePointer(b.baseAddress!), UnsafePointer(b.baseAddress!) + b.count)
        }
    }

    static func agree(_ text: String) -> Bool {
        let (a, b) = (parse(text), reference(text))
        switch (a, b) {
        case (nil, nil): return true
        case (let x?, let y?): return x.bitPattern == y.bitPattern || (x.isNaN && y.isNaN)
        default: return false
        }
    }

    @Test func edgeCases() {
        let cases = [
            "0", "-0", "+0", "+.5", "5.", ".5e-3", "1e", "e5", ".", "-", "+", "1.2.3", "  7 ", "\t8\t", "1 2", "1,5",
            "inf", "-Infinity", "nan", "NaN", "0x1p3", "1e39", "-1e39", "1e-46", "1e-45", "1.4e-45", "1e-38",
            "1.17549435e-38", "1.1754942e-38", "3.4028235e38", "3.4028236e38", "3.40282357e38", "16777216",
            "16777217", "16777218", "16777219", "1.00000005960464477539062500", "1.0000000596046447753906250001",
            "1.0000000596046447753906249999", "0.1", "0.2", "0.3", "2.5e-44", "123456789012345678901234567890",
            "1234567890123456789", "12345678901234567890", "0.000000000000000000000000000000000001",
            "9999999999999999999e-30", "00000000000000000000001.5", "1e+00", "1E-2", "-1.5E+3", "1e100000",
            "1e-100000", "", " ", "abc", "1a", "--1", "+-1", "1e+-2", "0.000", "-0.0e10",
        ]
        for text in cases {
            #expect(
                Self.agree(text),
                "'\(text)': \(String(describing: Self.parse(text))), strtof \(String(describing: Self.reference(text)))"
            )
        }
    }

    /// Random floats and doubles in the formats tables are written in, and random digit strings
    /// with random exponents: 200,000 texts, each checked against strtof.
    @Test func randomValuesInEveryFormatAgreeWithStrtof() {
        var rng = SystemRandomNumberGenerator()
        let formats = ["%.9g", "%.7g", "%.18e", "%.3f", "%g", "%.17g", "%e", "%.8e", "%.1f", "%.12g"]
        var disagreements: [String] = []
        for i in 0..<200_000 {
            let text: String
            switch i % 4 {
            case 0:
                let value = Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))
                text = String(format: formats[i % formats.count], Double(value))
            case 1:
                let value =
                    Double.random(in: -1...1, using: &rng) * pow(10, Double(Int.random(in: -40...38, using: &rng)))
                text = String(format: formats[(i / 4) % formats.count], value)
            case 2:
                let digits = (0..<Int.random(in: 1...22, using: &rng)).map { _ in
                    String(Int.random(in: 0...9, using: &rng))
                }
                let point = Int.random(in: 0...digits.count, using: &rng)
                let mantissa = digits[..<point].joined() + "." + digits[point...].joined()
                text =
                    (Bool.random(using: &rng) ? "-" : "") + mantissa + "e"
                    + String(Int.random(in: -50...40, using: &rng))
            default:
                // Near the midpoint between two floats: a float's exact value plus half an ulp.
                let f = Float(bitPattern: UInt32.random(in: 0x0080_0000...0x7F00_0000, using: &rng))
                let mid = Double(f) + Double(f.ulp) / 2 * (Bool.random(using: &rng) ? 1 : 1 + 1e-12)
                text = String(format: "%.25g", mid)
            }
            if !Self.agree(text) { disagreements.append(text) }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(20))")
    }
}
