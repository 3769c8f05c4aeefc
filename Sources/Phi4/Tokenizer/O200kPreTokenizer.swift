/// The o200k pre-tokenizer (Phi-4-mini): splits UTF-8 text as tiktoken's o200k_base pattern does:
///
///     A  [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
///     B  [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
///     C  \p{N}{1,3}
///     D   ?[^\s\p{L}\p{N}]+[\r\n/]*
///     E  \s*[\r\n]+
///     F  \s+(?!\S)
///     G  \s+
///
/// Words split at case changes: an upper-case run followed by lower-case letters ("HTMLParser"
/// is one word, "HelloWorld" two). Like ``PreTokenizer`` it is a hand-written scanner that gives
/// the regex engine's leftmost-first answer for each alternative in turn, backtracking included:
/// in A, the upper-case run `U*` gives back its last character that may also continue a word
/// (`\p{Lm}`, `\p{Lo}`, marks) when no lower-case letter follows it; the optional first
/// character is tried taken, then not taken, before B is tried.
struct O200kPreTokenizer {
    private let p: UnsafePointer<UInt8>
    private let n: Int
    private var i = 0
    private let classes = CharacterClassTable.o200k

    /// A scanner over `count` bytes at `base`, which must be valid UTF-8.
    init(_ base: UnsafePointer<UInt8>, count: Int) {
        p = base
        n = count
    }

    /// The class and byte length of the scalar at `j`.
    @inline(__always)
    private func classAt(_ j: Int) -> (O200kClass, Int) {
        let b = p[j]
        if b < 0x80 {  // ASCII fast path
            if b >= 0x61 && b <= 0x7A { return (.lower, 1) }
            if b >= 0x41 && b <= 0x5A { return (.upper, 1) }
            if b >= 0x30 && b <= 0x39 { return (.number, 1) }
        }
        let (c, l) = decodeScalar(p, j)
        return (classes.classifyO200k(c), l)
    }

    /// The end of `(?i:'s|'t|'re|'ve|'m|'ll|'d)?` at `j` (j itself when absent); `'ſ` is `'s`.
    @inline(__always)
    private func contraction(_ j: Int) -> Int {
        guard j + 1 < n, p[j] == 0x27 else { return j }
        let a = p[j + 1] | 0x20
        if a == 0x73 || a == 0x74 || a == 0x6D || a == 0x64 { return j + 2 }  // s t m d
        if p[j + 1] == 0xC5 && j + 2 < n && p[j + 2] == 0xBF { return j + 3 }  // ſ (U+017F) folds to s
        guard j + 2 < n else { return j }
        let b = p[j + 2] | 0x20
        if (a == 0x72 && b == 0x65) || (a == 0x76 && b == 0x65) || (a == 0x6C && b == 0x6C) { return j + 3 }  // re ve ll
        return j
    }

    /// `U*W+` from `b` (alternative A's body), with its contraction: the end, or nil.
    private func wordA(_ b: Int) -> Int? {
        var e = b
        var lastBothEnd = -1  // end of the run's last character that may also continue a word
        while e < n {
            let (k, l) = classAt(e)
            if !k.startsWord { break }
            e += l
            if k.continuesWord { lastBothEnd = e }
        }
        if e < n, classAt(e).0.continuesWord {
            while e < n {
                let (k, l) = classAt(e)
                if !k.continuesWord { break }
                e += l
            }
            return contraction(e)
        }
        return lastBothEnd >= 0 ? contraction(lastBothEnd) : nil
    }

    /// `U+W*` from `b` (alternative B's body), with its contraction: the end, or nil.
    private func wordB(_ b: Int) -> Int? {
        var e = b
        while e < n {
            let (k, l) = classAt(e)
            if !k.startsWord { break }
            e += l
        }
        if e == b { return nil }
        while e < n {
            let (k, l) = classAt(e)
            if !k.continuesWord { break }
            e += l
        }
        return contraction(e)
    }

    /// The byte range of the next piece, or nil at the end of the text.
    mutating func next() -> Range<Int>? {
        guard i < n else { return nil }
        let start = i
        let (k, l) = classAt(i)
        let c0 = p[i]

        // A, then B: a word, optionally after one character that is not a letter, number, CR or LF.
        let prefix = c0 != 0x0A && c0 != 0x0D && k.isNotLetterOrNumber && i + l < n
        if (k.startsWord || k.continuesWord || prefix) {
            if prefix, let e = wordA(i + l) { i = e; return start..<e }
            if let e = wordA(i) { i = e; return start..<e }
            if prefix, let e = wordB(i + l) { i = e; return start..<e }
            if let e = wordB(i) { i = e; return start..<e }
        }

        // C. \p{N}{1,3}
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

        // D.  ?[^\s\p{L}\p{N}]+[\r\n/]* — punctuation and symbols (marks included), an optional
        //    leading space, and the line breaks and slashes right after.
        var run = -1
        if k == .other || k == .mark {
            run = i
        } else if c0 == 0x20 && i + 1 < n {
            let k2 = classAt(i + 1).0
            if k2 == .other || k2 == .mark { run = i + 1 }
        }
        if run >= 0 {
            var j = run
            while j < n {
                let (k2, l2) = classAt(j)
                if k2 != .other && k2 != .mark { break }
                j += l2
            }
            while j < n && (p[j] == 0x0A || p[j] == 0x0D || p[j] == 0x2F) { j += 1 }
            i = j
            return start..<i
        }

        // Whitespace: measure the run, remembering its last line break and its last character.
        var j = i
        var lastBreak = -1
        var lastStart = i
        var count = 0
        while j < n {
            let (k2, l2) = classAt(j)
            if k2 != .whitespace { break }
            if p[j] == 0x0A || p[j] == 0x0D { lastBreak = j }
            lastStart = j
            count += 1
            j += l2
        }
        if lastBreak >= 0 {
            i = lastBreak + 1      // E. \s*[\r\n]+ — up to and including the last line break.
        } else if j == n {
            i = n                  // F. \s+(?!\S) at the end of the text: all of it.
        } else if count >= 2 {
            i = lastStart          // F. all but the last, which may start the next word.
        } else {
            i = j                  // G. \s+ — one whitespace character before a non-space.
        }
        return start..<i
    }
}
