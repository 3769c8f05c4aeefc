/// UTF-8 validation and lossy decoding, following Unicode's "maximal subpart" practice
/// (each maximal invalid subsequence becomes one U+FFFD), which is what Python's
/// `bytes.decode("utf-8", errors="replace")` and WHATWG decoders do.
enum UTF8Validation {
    /// The result of looking at the sequence that starts at one offset.
    enum Step: Equatable {
        /// A complete, valid character of this many bytes.
        case valid(Int)
        /// An invalid subsequence of this many bytes (one U+FFFD).
        case invalid(Int)
        /// A valid beginning that the buffer ends before completing.
        case incomplete
    }

    /// Classifies the sequence that starts at `i` in `p[0..<n]`.
    @inline(__always)
    static func step(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> Step {
        let b0 = p[i]
        if b0 < 0x80 { return .valid(1) }
        var need: Int
        var lo: UInt8 = 0x80
        var hi: UInt8 = 0xBF
        switch b0 {
        case 0xC2...0xDF: need = 1
        case 0xE0: need = 2; lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: need = 2
        case 0xED: need = 2; hi = 0x9F
        case 0xF0: need = 3; lo = 0x90
        case 0xF1...0xF3: need = 3
        case 0xF4: need = 3; hi = 0x8F
        default: return .invalid(1)
        }
        var j = 1
        while need > 0 {
            if i + j >= n { return .incomplete }
            let b = p[i + j]
            if b < lo || b > hi { return .invalid(j) }
            lo = 0x80
            hi = 0xBF
            j += 1
            need -= 1
        }
        return .valid(j)
    }

    /// The offset of the first byte that is not part of valid UTF-8, or nil if all of it is valid.
    static func firstInvalidOffset(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        guard let p = bytes.baseAddress else { return nil }
        let n = bytes.count
        var i = 0
        while i < n {
            // ASCII fast path, eight bytes at a time.
            while i + 8 <= n && UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                i += 8
            }
            if i >= n { break }
            switch step(p, i, n) {
            case .valid(let k): i += k
            case .invalid, .incomplete: return i
            }
        }
        return nil
    }

    /// The offset of the first byte that is not part of valid UTF-8, or nil if all of it is valid.
    static func firstInvalidOffset(_ bytes: [UInt8]) -> Int? {
        bytes.withUnsafeBufferPointer { firstInvalidOffset($0) }
    }

    /// Decodes `bytes` as UTF-8, replacing each maximal invalid subpart with U+FFFD.
    /// With `holdIncomplete`, a valid but unfinished sequence at the end is not decoded; the
    /// number of bytes consumed is returned beside the text.
    static func decodeLossy(_ bytes: UnsafeBufferPointer<UInt8>, holdIncomplete: Bool) -> (String, Int) {
        guard let p = bytes.baseAddress, bytes.count > 0 else { return ("", 0) }
        let n = bytes.count
        if firstInvalidOffset(bytes) == nil {
            return (String(decoding: bytes, as: UTF8.self), n)
        }
        var out: [UInt8] = []
        out.reserveCapacity(n + 8)
        var i = 0
        while i < n {
            switch step(p, i, n) {
            case .valid(let k):
                out.append(contentsOf: UnsafeBufferPointer(start: p + i, count: k))
                i += k
            case .invalid(let k):
                out.append(contentsOf: [0xEF, 0xBF, 0xBD])
                i += k
            case .incomplete:
                if holdIncomplete {
                    return (String(decoding: out, as: UTF8.self), i)
                }
                out.append(contentsOf: [0xEF, 0xBF, 0xBD])
                i = n
            }
        }
        return (String(decoding: out, as: UTF8.self), n)
    }
}
