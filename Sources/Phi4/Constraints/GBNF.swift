// llama.cpp's GBNF grammar syntax, parsed into a ``Grammar``.

/// Code-point sets of character classes (sorted, non-overlapping ranges).
enum ScalarSet {
    static let all: [ClosedRange<UInt32>] = [0...0x10FFFF]

    /// The sorted union of `ranges`.
    static func normalize(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        let sorted = ranges.sorted { $0.lowerBound < $1.lowerBound }
        var out: [ClosedRange<UInt32>] = []
        for r in sorted {
            if let last = out.last, r.lowerBound <= last.upperBound &+ 1 {
                out[out.count - 1] = last.lowerBound...max(last.upperBound, r.upperBound)
            } else {
                out.append(r)
            }
        }
        return out
    }

    /// The code points of 0…10FFFF not in `ranges`.
    static func complement(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        var out: [ClosedRange<UInt32>] = []
        var next: UInt32 = 0
        for r in normalize(ranges) {
            if r.lowerBound > next { out.append(next...(r.lowerBound - 1)) }
            next = max(next, r.upperBound &+ 1)
            if r.upperBound >= 0x10FFFF { return out }
        }
        if next <= 0x10FFFF { out.append(next...0x10FFFF) }
        return out
    }

    /// `a` without the code points of `b`.
    static func subtract(_ a: [ClosedRange<UInt32>], _ b: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        intersect(a, complement(b))
    }

    /// The code points in both.
    static func intersect(_ a: [ClosedRange<UInt32>], _ b: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        var out: [ClosedRange<UInt32>] = []
        for x in normalize(a) {
            for y in normalize(b) where x.lowerBound <= y.upperBound && y.lowerBound <= x.upperBound {
                out.append(max(x.lowerBound, y.lowerBound)...min(x.upperBound, y.upperBound))
            }
        }
        return normalize(out)
    }
}

/// Parses llama.cpp's GBNF: `name ::= alternatives` rules (the start rule is `root`), string
/// literals with escapes (`\n \t \r \\ \" \xHH \uHHHH \UHHHHHHHH`), character classes `[a-z]`
/// and `[^…]`, `.` (any character), groups, `|`, and the repetitions `* + ? {m} {m,} {m,n}`;
/// `#` starts a comment. A rule may continue on the next lines until a line starts another
/// `name ::=`.
public enum GBNF {
    /// Compiles `text` to a grammar.
    public static func compile(_ text: String) throws(ConstraintError) -> Grammar {
        var p = Parser(text: Array(text.unicodeScalars))
        return try p.parse()
    }

    struct Parser: ScalarCursor {
        let text: [Unicode.Scalar]
        var pos = 0
        let b = GrammarBuilder()
        var ruleIndex: [String: Int] = [:]
        var defined: Set<String> = []

        init(text: [Unicode.Scalar]) { self.text = text }

        func error(_ m: String) -> ConstraintError {
            var line = 1, col = 1
            for c in text[..<min(pos, text.count)] { if c == "\n" { line += 1; col = 1 } else { col += 1 } }
            return ConstraintError("grammar, line \(line), column \(col): \(m)")
        }

        var atEnd: Bool { pos >= text.count }

        /// Skips spaces, tabs and comments; newlines too when `newlines`.
        mutating func skip(newlines: Bool) {
            while let c = peek {
                if c == " " || c == "\t" || c == "\r" || (newlines && c == "\n") { pos += 1 }
                else if c == "#" { while let d = peek, d != "\n" { _ = d; pos += 1 } }
                else { break }
            }
        }

        static func isNameChar(_ c: Unicode.Scalar) -> Bool {
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "-" || c == "_"
        }

        mutating func name() -> String? {
            let start = pos
            while let c = peek, Parser.isNameChar(c) { pos += 1 }
            return pos > start ? String(String.UnicodeScalarView(text[start..<pos])) : nil
        }

        /// Whether a rule definition (`name ::=`) starts at the current position.
        func startsRule() -> Bool {
            var i = pos
            while i < text.count, Parser.isNameChar(text[i]) { i += 1 }
            if i == pos { return false }
            while i < text.count, text[i] == " " || text[i] == "\t" { i += 1 }
            return i + 2 < text.count && text[i] == ":" && text[i + 1] == ":" && text[i + 2] == "="
        }

        mutating func ruleRef(_ n: String) -> Int {
            if let r = ruleIndex[n] { return r }
            let r = b.declare(n)
            ruleIndex[n] = r
            return r
        }

        mutating func parse() throws(ConstraintError) -> Grammar {
            skip(newlines: true)
            while !atEnd {
                guard let n = name() else { throw error("expected a rule name") }
                skip(newlines: false)
                guard pos + 2 < text.count, text[pos] == ":", text[pos + 1] == ":", text[pos + 2] == "=" else {
                    throw error("expected ::= after \(n)")
                }
                pos += 3
                guard defined.insert(n).inserted else { throw error("rule \(n) is defined twice") }
                let r = ruleRef(n)
                b.define(r, try alternatives(nested: false))
                skip(newlines: true)
            }
            guard let root = ruleIndex["root"], defined.contains("root") else { throw ConstraintError("grammar: no root rule") }
            for (n, _) in ruleIndex where !defined.contains(n) { throw ConstraintError("grammar: rule \(n) is used but not defined") }
            return try b.build(root: root)
        }

        mutating func alternatives(nested: Bool) throws(ConstraintError) -> [[GrammarBuilder.Symbol]] {
            var alts = [try sequence(nested: nested)]
            while peek == "|" {
                pos += 1
                skip(newlines: true)
                alts.append(try sequence(nested: nested))
            }
            return alts
        }

        mutating func sequence(nested: Bool) throws(ConstraintError) -> [GrammarBuilder.Symbol] {
            var seq: [GrammarBuilder.Symbol] = []
            while true {
                skip(newlines: nested)
                if !nested && peek == "\n" {
                    // A newline ends the rule only where the next line defines another one.
                    let save = pos
                    skip(newlines: true)
                    if atEnd || startsRule() { pos = save; return seq }
                    continue
                }
                guard let c = peek, c != "|", c != ")" else { return seq }
                var item: [GrammarBuilder.Symbol]
                if c == "\"" {
                    pos += 1
                    item = try literal()
                } else if c == "[" {
                    pos += 1
                    item = [b.scalarClass(try charClass())]
                } else if c == "." {
                    pos += 1
                    item = [b.scalarClass(ScalarSet.all, "any")]
                } else if c == "(" {
                    pos += 1
                    skip(newlines: true)
                    let alts = try alternatives(nested: true)
                    skip(newlines: true)
                    guard peek == ")" else { throw error("expected )") }
                    pos += 1
                    item = [b.choice(alts, "group")]
                } else if Parser.isNameChar(c) {
                    if startsRule() { return seq }
                    let n = name()!
                    item = [.rule(ruleRef(n))]
                } else {
                    throw error("unexpected character '\(c)'")
                }
                item = try postfix(item)
                seq += item
            }
        }

        mutating func postfix(_ item: [GrammarBuilder.Symbol]) throws(ConstraintError) -> [GrammarBuilder.Symbol] {
            var item = item
            while let c = peek {
                if c == "*" { pos += 1; item = [b.star(item)] }
                else if c == "+" { pos += 1; item = b.plus(item) }
                else if c == "?" { pos += 1; item = [b.optional(item)] }
                else if c == "{" {
                    pos += 1
                    let (lo, hi) = try bounds()
                    item = b.repeated(item, min: lo, max: hi)
                } else { break }
            }
            return item
        }

        /// `{m}`, `{m,}` or `{m,n}` after the brace.
        mutating func bounds() throws(ConstraintError) -> (Int, Int?) {
            skip(newlines: false)
            guard let lo = number() else { throw error("expected a count after {") }
            skip(newlines: false)
            var hi: Int? = lo
            if peek == "," {
                pos += 1
                skip(newlines: false)
                hi = number()
                skip(newlines: false)
            }
            guard peek == "}" else { throw error("expected }") }
            pos += 1
            if let h = hi, h < lo { throw error("repetition {\(lo),\(h)}: the maximum is below the minimum") }
            if (hi ?? lo) > 10_000 { throw error("repetition counts above 10000 are not supported") }
            return (lo, hi)
        }

        mutating func escape() throws(ConstraintError) -> UInt32 {
            guard let c = peek else { throw error("unfinished escape") }
            pos += 1
            switch c {
            case "n": return 10
            case "t": return 9
            case "r": return 13
            case "\\", "\"", "[", "]", "-", "^", "/": return c.value
            case "x": return try scalar(hex(2))
            case "u": return try scalar(hex(4))
            case "U": return try scalar(hex(8))
            default: throw error("unknown escape \\\(c)")
            }
        }

        func scalar(_ v: UInt32) throws(ConstraintError) -> UInt32 {
            guard v <= 0x10FFFF, !(0xD800...0xDFFF).contains(v) else { throw error("escape \\u\(v) is not a Unicode scalar") }
            return v
        }

        mutating func literal() throws(ConstraintError) -> [GrammarBuilder.Symbol] {
            var bytes: [UInt8] = []
            while true {
                guard let c = peek else { throw error("unterminated string") }
                pos += 1
                if c == "\"" { break }
                let v = c == "\\" ? try escape() : c.value
                appendUTF8(v, to: &bytes)
            }
            return GrammarBuilder.literal(bytes)
        }

        mutating func charClass() throws(ConstraintError) -> [ClosedRange<UInt32>] {
            var negate = false
            if peek == "^" { negate = true; pos += 1 }
            var ranges: [ClosedRange<UInt32>] = []
            while true {
                guard let c = peek else { throw error("unterminated character class") }
                if c == "]" { pos += 1; break }
                pos += 1
                let lo = c == "\\" ? try escape() : c.value
                var hi = lo
                if peek == "-", pos + 1 < text.count, text[pos + 1] != "]" {
                    pos += 1
                    let d = text[pos]
                    pos += 1
                    hi = d == "\\" ? try escape() : d.value
                    guard hi >= lo else { throw error("character range out of order") }
                }
                ranges.append(lo...hi)
            }
            let set = negate ? ScalarSet.complement(ranges) : ScalarSet.normalize(ranges)
            guard !set.isEmpty else { throw error("empty character class") }
            return set
        }
    }
}
