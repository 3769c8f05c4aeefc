/// The cl100k pre-tokenizer: splits UTF-8 text into the pieces that byte-pair encoding then
/// works on, exactly as tiktoken's pattern does:
///
///     '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+
///     |\s++$|\s*[\r\n]|\s+(?!\S)|\s
///
/// It is a hand-written scanner (no regex engine): each alternative of the pattern is one
/// numbered step of ``next()``, tried in the pattern's order. `$` is the end of the text the
/// scanner was given; callers hand it the text between special tokens, as tiktoken does.
struct PreTokenizer {
    private let p: UnsafePointer<UInt8>
    private let n: Int
    private var i = 0
    private let classes = CharacterClassTable.shared

    /// A scanner over `count` bytes at `base`, which must be valid UTF-8.
    init(_ base: UnsafePointer<UInt8>, count: Int) {
        p = base
        n = count
    }

    @inline(__always)
    private func decode(_ j: Int) -> (UInt32, Int) { decodeScalar(p, j) }

    @inline(__always)
    private func classAt(_ j: Int) -> (CharacterClass, Int) {
        let (c, l) = decode(j)
        return (classes.classify(c), l)
    }

    /// Skips letters from `j`; returns the offset after the last one.
    @inline(__always)
    private func skipLetters(_ j: Int) -> Int {
        var j = j
        while j < n {
            let b = p[j]
            if b < 0x80 {
                // ASCII letters are the common case.
                if (b | 0x20) >= 0x61 && (b | 0x20) <= 0x7A { j += 1; continue }
                return j
            }
            let (k, l) = classAt(j)
            if k != .letter { return j }
            j += l
        }
        return j
    }

    @inline(__always)
    private static func isASCIILetter(_ b: UInt8, _ lower: UInt8) -> Bool { b | 0x20 == lower }

    /// The byte range of the next piece, or nil at the end of the text.
    mutating func next() -> Range<Int>? {
        guard i < n else { return nil }
        let start = i
        let (c, l) = decode(i)

        // 1. '(?i:[sdmt]|ll|ve|re) — contractions; case-insensitive, so 'ſ (U+017F) counts as 's.
        if c == 0x27 && i + 1 < n {
            let a = p[i + 1]
            if (a | 0x20) == 0x73 || (a | 0x20) == 0x64 || (a | 0x20) == 0x6D || (a | 0x20) == 0x74 {
                i += 2
                return start..<i
            }
            if a == 0xC5 && i + 2 < n && p[i + 2] == 0xBF {
                i += 3
                return start..<i
            }
            if i + 2 < n {
                let b = p[i + 2]
                if (Self.isASCIILetter(a, 0x6C) && Self.isASCIILetter(b, 0x6C))       // ll
                    || (Self.isASCIILetter(a, 0x76) && Self.isASCIILetter(b, 0x65))   // ve
                    || (Self.isASCIILetter(a, 0x72) && Self.isASCIILetter(b, 0x65)) { // re
                    i += 3
                    return start..<i
                }
            }
        }

        let k = classes.classify(c)
        // 2. [^\r\n\p{L}\p{N}]?+\p{L}++ — a word, with at most one leading non-letter, non-number.
        if k == .letter {
            i = skipLetters(i + l)
            return start..<i
        }
        if k != .number && c != 0x0A && c != 0x0D && i + l < n {
            let (k2, l2) = classAt(i + l)
            if k2 == .letter {
                i = skipLetters(i + l + l2)
                return start..<i
            }
        }

        // 3. \p{N}{1,3}+ — numbers, in runs of at most three.
        if k == .number {
            var j = i + l
            var count = 1
            while count < 3 && j < n {
                let (k2, l2) = classAt(j)
                if k2 != .number { break }
                j += l2
                count += 1
            }
            i = j
            return start..<i
        }

        // 4.  ?[^\s\p{L}\p{N}]++[\r\n]*+ — punctuation and symbols, an optional leading space,
        //    and any line breaks right after.
        var punctuation = k == .other
        if c == 0x20 && i + 1 < n && classAt(i + 1).0 == .other { punctuation = true }
        if punctuation {
            var j = i + l
            while j < n {
                let (k2, l2) = classAt(j)
                if k2 != .other { break }
                j += l2
            }
            while j < n && (p[j] == 0x0A || p[j] == 0x0D) { j += 1 }
            i = j
            return start..<i
        }

        // Whitespace: measure the run, remembering its last line break and its last character.
        var j = i
        var lastBreak = -1
        var lastStart = i
        var count = 0
        while j < n {
            let (c2, l2) = decode(j)
            if classes.classify(c2) != .whitespace { break }
            if c2 == 0x0A || c2 == 0x0D { lastBreak = j }
            lastStart = j
            count += 1
            j += l2
        }
        if j == n {
            i = n                  // 5. \s++$ — trailing whitespace stays together.
        } else if lastBreak >= 0 {
            i = lastBreak + 1      // 6. \s*[\r\n] — up to and including the last line break.
        } else if count >= 2 {
            i = lastStart          // 7. \s+(?!\S) — all but the last, which joins the next word.
        } else {
            i = j                  // 8. \s — one whitespace character.
        }
        return start..<i
    }
}

/// Decodes the scalar at byte offset `j` of `p` (valid UTF-8 assumed): its value and length.
@inline(__always)
func decodeScalar(_ p: UnsafePointer<UInt8>, _ j: Int) -> (UInt32, Int) {
    let b0 = p[j]
    if b0 < 0x80 { return (UInt32(b0), 1) }
    if b0 < 0xE0 { return (UInt32(b0 & 0x1F) << 6 | UInt32(p[j + 1] & 0x3F), 2) }
    if b0 < 0xF0 {
        return (UInt32(b0 & 0x0F) << 12 | UInt32(p[j + 1] & 0x3F) << 6 | UInt32(p[j + 2] & 0x3F), 3)
    }
    return (UInt32(b0 & 0x07) << 18 | UInt32(p[j + 1] & 0x3F) << 12 | UInt32(p[j + 2] & 0x3F) << 6
            | UInt32(p[j + 3] & 0x3F), 4)
}
