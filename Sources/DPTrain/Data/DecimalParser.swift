import Foundation

/// Text to Float32, correctly rounded: the result is always `strtof`'s (in the C locale), from
/// bytes, with no `String`.
///
/// Plain decimals (`[+-]digits[.digits][e[+-]digits]`, up to 19 significant digits, surrounded by
/// spaces or not) take a fast path: the digits as a 64-bit integer, scaled by a power of ten in
/// double precision (at most three roundings, each within half a double's ulp), then rounded to
/// float. That is `strtof`'s float unless the double lies within a few of its ulps of a midpoint
/// between two floats; those, subnormal and out-of-range results, and everything else (`inf`,
/// `nan`, hexadecimal, more digits) go to `strtof` itself.
public enum DecimalParser {
    /// The value of the bytes `start..<end` (spaces and tabs around them ignored), or nil when
    /// they are not a number as a whole.
    @inline(__always)
    public static func float(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Float? {
        var (p, last) = (start, end)
        while p < last && (p.pointee == 0x20 || p.pointee == 0x09) { p += 1 }
        while last > p && ((last - 1).pointee == 0x20 || (last - 1).pointee == 0x09) { last -= 1 }
        guard p < last else { return nil }
        return fast(p, last) ?? strtofWhole(p, last)
    }

    /// Exact powers of ten in double precision: 1e0 ... 1e22.
    static let powers: [Double] = (0...22).map { pow(10.0, Double($0)) }

    /// The fast path on a trimmed field; nil where `strtof` must decide.
    @inline(__always)
    static func fast(_ start: UnsafePointer<UInt8>, _ last: UnsafePointer<UInt8>) -> Float? {
        var p = start
        var negative = false
        if p.pointee == UInt8(ascii: "-") || p.pointee == UInt8(ascii: "+") {
            negative = p.pointee == UInt8(ascii: "-")
            p += 1
        }
        var mantissa: UInt64 = 0
        var digits = 0, exponent = 0, sawDigit = false
        while p < last, case let d = p.pointee &- 0x30, d < 10 {
            sawDigit = true
            if mantissa == 0 && d == 0 {
            } else if digits < 19 {
                mantissa = mantissa &* 10 &+ UInt64(d)
                digits += 1
            } else {
                return nil  // more than 19 significant digits
            }
            p += 1
        }
        if p < last && p.pointee == UInt8(ascii: ".") {
            p += 1
            while p < last, case let d = p.pointee &- 0x30, d < 10 {
                sawDigit = true
                if mantissa == 0 && d == 0 {
                    exponent -= 1
                } else if digits < 19 {
                    mantissa = mantissa &* 10 &+ UInt64(d)
                    digits += 1
                    exponent -= 1
                } else {
                    return nil
                }
                p += 1
            }
        }
        guard sawDigit else { return nil }
        if p < last && (p.pointee | 0x20) == UInt8(ascii: "e") {
            p += 1
            var negativeExponent = false
            if p < last && (p.pointee == UInt8(ascii: "-") || p.pointee == UInt8(ascii: "+")) {
                negativeExponent = p.pointee == UInt8(ascii: "-")
                p += 1
            }
            var e = 0, exponentDigits = 0
            while p < last, case let d = p.pointee &- 0x30, d < 10 {
                if e < 100_000 { e = e * 10 + Int(d) }
                exponentDigits += 1
                p += 1
            }
            guard exponentDigits > 0 else { return nil }
            exponent += negativeExponent ? -e : e
        }
        guard p == last else { return nil }
        if mantissa == 0 { return negative ? -0.0 : 0.0 }
        var value = Double(mantissa)
        switch exponent {
        case 0...22: value *= powers[exponent]
        case -22..<0: value /= powers[-exponent]
        case -44 ..< -22: value = value / powers[22] / powers[-exponent - 22]
        case 23...44: value = value * powers[22] * powers[exponent - 22]
        default: return nil
        }
        // Below float's normal range the rounding step differs; above it, strtof says infinity.
        guard value >= Double(Float.leastNormalMagnitude) && value <= Double(Float.greatestFiniteMagnitude) else {
            return nil
        }
        // The 29 mantissa bits a float drops: close to half of them is close to a midpoint.
        let dropped = Int64(value.bitPattern & 0x1FFF_FFFF)
        guard abs(dropped - 0x1000_0000) > 16 else { return nil }
        let result = Float(value)
        return negative ? -result : result
    }

    /// `strtof` on a trimmed field, nil unless it reads all of it. (strtof would skip white
    /// space before a number; a field starting with any is not one.)
    static func strtofWhole(_ start: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>) -> Float? {
        let count = end - start
        guard count < 512, start.pointee > 0x20 else { return nil }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: count + 1) { text in
            let base = text.baseAddress!
            UnsafeMutableRawPointer(base).copyMemory(from: start, byteCount: count)
            base[count] = 0
            var stop: UnsafeMutablePointer<CChar>? = nil
            let value = strtof(base, &stop)
            return stop == base + count ? value : nil
        }
    }
}
