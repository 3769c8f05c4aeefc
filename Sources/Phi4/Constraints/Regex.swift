// Regular expressions (an ECMA-262 subset) compiled to grammars: for whole outputs (like
// Python's re.fullmatch) and for JSON Schema's `pattern` inside a JSON string.

/// Regular expressions, the subset both ECMA-262 (JSON Schema's dialect) and Python agree on:
/// literals, `.` (any character but a line terminator: \n, \r, U+2028, U+2029), classes `[a-z]` / `[^…]`, the escapes
/// `\d \w \s \D \W \S`, `\n \t \r \f \v \0 \xHH \uHHHH` and escaped punctuation, groups `( … )` and
/// `(?: … )`, alternation `|`, the quantifiers `* + ? {n} {n,} {n,m}` (a lazy `?` after one is
/// accepted: it changes which match a search finds, not which texts match), and the anchors `^`
/// at the start and `$` at the end. Backreferences, lookaround, `\b` and named groups are
/// refused with an error naming them. The class escapes mean what both dialects agree on, so
/// that what is generated matches under either (ECMA's `\d` is `[0-9]`, Python's any Unicode
/// digit; Python's `\s` takes in U+001C–U+001F, which ECMA's does not): `\d`, `\w` and `\s`
/// generate `[0-9]`, `[A-Za-z0-9_]` and ASCII whitespace; `\D` and `\W` generate ASCII
/// characters outside those; `\S` any character that is whitespace in neither dialect; and in a
/// negated class `[^…]` an escape excludes what either dialect means by it.
public enum Regex {
    /// A grammar for text that matches `pattern` as a whole.
    public static func compile(_ pattern: String) throws(ConstraintError) -> Grammar {
        let b = GrammarBuilder()
        let (node, _, _) = try parse(pattern)
        let root = b.rule("root", [emit(node, b, json: false)])
        return try b.build(root: root)
    }

    indirect enum Node {
        case chars([ClosedRange<UInt32>])
        case seq([Node])
        case alt([Node])
        case rep(Node, Int, Int?)
    }

    /// Parses a pattern; also says whether it was anchored at the start and at the end.
    static func parse(_ pattern: String) throws(ConstraintError) -> (Node, Bool, Bool) {
        var p = Parser(text: Array(pattern.unicodeScalars))
        var start = false, end = false
        if p.peek == "^" { p.pos += 1; start = true }
        var text = p.text
        if text.count > p.pos, text.last == "$" {
            // An unescaped final $ anchors the end.
            var backslashes = 0
            var i = text.count - 2
            while i >= 0 && text[i] == "\\" { backslashes += 1; i -= 1 }
            if backslashes % 2 == 0 { text.removeLast(); end = true }
        }
        p = Parser(text: text, pos: p.pos)
        let node = try p.alternatives()
        guard p.pos == p.text.count else { throw p.error("unexpected ')'") }
        return (node, start, end)
    }

    /// The fewest and most code points a match of `n` has (nil: unbounded).
    static func lengths(_ n: Node) -> (Int, Int?) {
        switch n {
        case .chars: return (1, 1)
        case .seq(let items):
            var lo = 0, hi: Int? = 0
            for x in items {
                let (a, b) = lengths(x)
                lo += a
                hi = hi.flatMap { h in b.map { h + $0 } }
            }
            return (lo, hi)
        case .alt(let alts):
            let ls = alts.map(lengths)
            return (ls.map(\.0).min() ?? 0, ls.contains { $0.1 == nil } ? nil : ls.compactMap(\.1).max() ?? 0)
        case .rep(let x, let lo, let hi):
            let (a, b) = lengths(x)
            return (min(a * lo, 1 << 40), hi.flatMap { h in b.map { min($0 * h, 1 << 40) } })
        }
    }

    /// `n` with every repetition `x{lo,hi}` made `x{lo+raise, lo+cap}` within its own `hi` (cap nil: up to `hi`; unbounded ones `x{lo+raise,}`).
    static func bounding(_ n: Node, raise: Int, cap: Int?) -> Node {
        switch n {
        case .chars: return n
        case .seq(let items): return .seq(items.map { bounding($0, raise: raise, cap: cap) })
        case .alt(let alts): return .alt(alts.map { bounding($0, raise: raise, cap: cap) })
        case .rep(let x, let lo, let hi):
            let inner = bounding(x, raise: raise, cap: cap)
            let raised = hi.map { min($0, lo + raise) } ?? lo + raise
            let capped = cap.map { c in hi.map { min($0, lo + max(c, raise)) } ?? lo + max(c, raise) } ?? hi
            return .rep(inner, raised, capped)
        }
    }

    /// A part of `n` whose every match has `minLength`…`maxLength` code points: its repetitions
    /// get the smallest raised minimum that reaches `minLength` (within their own maximum), then
    /// the largest bound that stays within `maxLength`. Every match of the result matches `n`; nil when no
    /// such bounding fits (say, `a|bbb` with `minLength` 2).
    static func bounded(_ n: Node, minLength: Int, maxLength: Int?) -> Node? {
        let limit = max(minLength, maxLength ?? 0) + 1
        guard let raise = (0...limit).first(where: { lengths(bounding(n, raise: $0, cap: nil)).0 >= minLength }) else { return nil }
        guard let maxLength else { return bounding(n, raise: raise, cap: nil) }
        func fits(_ cap: Int) -> Bool {
            let (lo, hi) = lengths(bounding(n, raise: raise, cap: cap))
            return lo >= minLength && hi != nil && hi! <= maxLength
        }
        guard fits(raise) else { return nil }
        var lo = raise, hi = limit
        while lo < hi {  // the largest cap that fits
            let mid = (lo + hi + 1) / 2
            if fits(mid) { lo = mid } else { hi = mid - 1 }
        }
        return bounding(n, raise: raise, cap: lo)
    }

    /// Symbols for a node; with `json`, characters are written as inside a JSON string (quote,
    /// backslash and control characters escaped).
    static func emit(_ n: Node, _ b: GrammarBuilder, json: Bool) -> [GrammarBuilder.Symbol] {
        switch n {
        case .chars(let ranges):
            return [json ? JSONSchema.jsonChars(ranges, b) : b.scalarClass(ranges)]
        case .seq(let items):
            return items.flatMap { emit($0, b, json: json) }
        case .alt(let alts):
            return [b.choice(alts.map { emit($0, b, json: json) }, "re-alt")]
        case .rep(let x, let lo, let hi):
            return b.repeated(emit(x, b, json: json), min: lo, max: hi, "re-rep")
        }
    }

    static let digit: [ClosedRange<UInt32>] = [48...57]
    static let word: [ClosedRange<UInt32>] = [48...57, 65...90, 95...95, 97...122]
    static let space: [ClosedRange<UInt32>] = [9...13, 32...32]
    /// Everything either dialect may count as a digit or word character (all of ASCII's, and
    /// anything beyond ASCII), or as whitespace (Python's str.isspace() and ECMA's WhiteSpace
    /// and LineTerminator).
    static let wideDigit: [ClosedRange<UInt32>] = [48...57, 0x80...0x10FFFF]
    static let wideWord: [ClosedRange<UInt32>] = [48...57, 65...90, 95...95, 97...122, 0x80...0x10FFFF]
    static let wideSpace: [ClosedRange<UInt32>] = [9...13, 0x1C...0x20, 0x85...0x85, 0xA0...0xA0, 0x1680...0x1680,
                                                   0x2000...0x200A, 0x2028...0x2029, 0x202F...0x202F, 0x205F...0x205F,
                                                   0x3000...0x3000, 0xFEFF...0xFEFF]

    struct Parser: ScalarCursor {
        var text: [Unicode.Scalar]
        var pos = 0

        func error(_ m: String) -> ConstraintError { ConstraintError("regex at \(pos): \(m)") }

        mutating func alternatives() throws(ConstraintError) -> Node {
            var alts = [try sequence()]
            while peek == "|" {
                pos += 1
                alts.append(try sequence())
            }
            return alts.count == 1 ? alts[0] : .alt(alts)
        }

        mutating func sequence() throws(ConstraintError) -> Node {
            var items: [Node] = []
            while let c = peek, c != "|", c != ")" {
                var atom: Node
                pos += 1
                switch c {
                case "(":
                    if peek == "?" {
                        guard pos + 1 < text.count, text[pos + 1] == ":" else {
                            throw error("lookaround and named groups are not supported")
                        }
                        pos += 2
                    }
                    atom = try alternatives()
                    guard peek == ")" else { throw error("missing )") }
                    pos += 1
                case "[": atom = .chars(try charClass())
                case ".": atom = .chars(ScalarSet.complement([10...10, 13...13, 0x2028...0x2029]))  // no line terminator of either dialect
                case "\\": atom = .chars(try escape(inClass: false))
                case "^", "$": throw error("anchors are supported only at the start and the end")
                case "*", "+", "?", "{": throw error("nothing to repeat")
                default: atom = .chars([c.value...c.value])
                }
                atom = try quantifiers(atom)
                items.append(atom)
            }
            return items.count == 1 ? items[0] : .seq(items)
        }

        mutating func quantifiers(_ atom: Node) throws(ConstraintError) -> Node {
            var atom = atom
            while let c = peek {
                var lo = 0, hi: Int? = nil
                switch c {
                case "*": pos += 1
                case "+": pos += 1; lo = 1
                case "?": pos += 1; hi = 1
                case "{":
                    // {n}, {n,}, {n,m}; a brace that starts none of these is a literal in ECMA
                    // but an error in Unicode mode: refused.
                    pos += 1
                    guard let n = number() else { throw error("expected a count after {") }
                    lo = n
                    hi = n
                    if peek == "," {
                        pos += 1
                        hi = number()
                    }
                    guard peek == "}" else { throw error("expected }") }
                    pos += 1
                    if let h = hi, h < lo { throw error("{\(lo),\(h)}: the maximum is below the minimum") }
                    if (hi ?? lo) > 10_000 { throw error("repetition counts above 10000 are not supported") }
                default: return atom
                }
                if peek == "?" { pos += 1 }  // lazy: the same set of matching texts
                atom = .rep(atom, lo, hi)
            }
            return atom
        }

        /// An escape after the backslash: its code points. A class escape gives what both
        /// dialects mean by it, or in a negated class (`excluded`) what either may mean.
        mutating func escape(inClass: Bool, excluded: Bool = false) throws(ConstraintError) -> [ClosedRange<UInt32>] {
            guard let c = peek else { throw error("pattern ends with a backslash") }
            pos += 1
            switch c {
            case "d": return excluded ? Regex.wideDigit : Regex.digit
            case "D": return ScalarSet.complement(excluded ? Regex.digit : Regex.wideDigit)
            case "w": return excluded ? Regex.wideWord : Regex.word
            case "W": return ScalarSet.complement(excluded ? Regex.word : Regex.wideWord)
            case "s": return excluded ? Regex.wideSpace : Regex.space
            case "S": return ScalarSet.complement(excluded ? Regex.space : Regex.wideSpace)
            case "n": return [10...10]
            case "t": return [9...9]
            case "r": return [13...13]
            case "f": return [12...12]
            case "v": return [11...11]
            case "0": return [0...0]
            case "x": let v = try hex(2); return [v...v]
            case "u":
                let v = try hex(4)
                guard !(0xD800...0xDFFF).contains(v) else { throw error("surrogate escapes are not supported") }
                return [v...v]
            case "b" where inClass: return [8...8]
            case "b", "B": throw error("word boundaries (\\\(c)) are not supported")
            case "1"..."9": throw error("backreferences are not supported")
            case "p", "P", "k", "c": throw error("\\\(c) escapes are not supported")
            default:
                guard !(c.properties.isAlphabetic || ("0"..."9").contains(c)) else { throw error("unknown escape \\\(c)") }
                return [c.value...c.value]
            }
        }

        mutating func charClass() throws(ConstraintError) -> [ClosedRange<UInt32>] {
            var negate = false
            if peek == "^" { negate = true; pos += 1 }
            var ranges: [ClosedRange<UInt32>] = []
            var first = true
            while true {
                guard let c = peek else { throw error("unterminated character class") }
                if c == "]" && !first { pos += 1; break }
                if c == "]" && first { pos += 1; break }  // [] matches nothing; [^] anything
                first = false
                pos += 1
                var lo: [ClosedRange<UInt32>]
                if c == "\\" { lo = try escape(inClass: true, excluded: negate) } else { lo = [c.value...c.value] }
                if peek == "-", pos + 1 < text.count, text[pos + 1] != "]", lo.count == 1, lo[0].count == 1 {
                    pos += 1
                    let d = text[pos]
                    pos += 1
                    var hi: [ClosedRange<UInt32>] = [d.value...d.value]
                    if d == "\\" { hi = try escape(inClass: true, excluded: negate) }
                    guard hi.count == 1, hi[0].count == 1, hi[0].lowerBound >= lo[0].lowerBound else {
                        throw error("invalid character range")
                    }
                    lo = [lo[0].lowerBound...hi[0].lowerBound]
                }
                ranges += lo
            }
            let set = negate ? ScalarSet.complement(ranges) : ScalarSet.normalize(ranges)
            return set
        }
    }
}

/// A pattern as a nondeterministic finite automaton over code points (its empty moves folded
/// away), for what a recursive grammar cannot say directly: a pattern's matches of bounded length,
/// and the matches of two patterns at once (a format and a pattern). Both are products — with a
/// counter of code points, with another automaton — built only over the reachable states that can
/// still reach acceptance.
struct Automaton {
    /// Per state: its moves (a code-point class and the next state).
    var moves: [[(ranges: [ClosedRange<UInt32>], to: Int)]]
    /// Per state: whether a match may end there.
    var accepting: [Bool]
    var start = 0

    /// The automaton of a regex node; nil when it would exceed `limit` states.
    init?(_ n: Regex.Node, limit: Int = 20_000) {
        // Thompson's construction with empty moves, then closures.
        var eps: [[Int]] = [[]]
        var chars: [[([ClosedRange<UInt32>], Int)]] = [[]]
        func new() -> Int? {
            guard eps.count < limit else { return nil }
            eps.append([]); chars.append([])
            return eps.count - 1
        }
        func build(_ n: Regex.Node, from s: Int) -> Int? {
            switch n {
            case .chars(let r):
                guard let t = new() else { return nil }
                chars[s].append((r, t))
                return t
            case .seq(let items):
                var cur = s
                for x in items { guard let e = build(x, from: cur) else { return nil }; cur = e }
                return cur
            case .alt(let alts):
                guard let end = new() else { return nil }
                for x in alts {
                    guard let b = new() else { return nil }
                    eps[s].append(b)
                    guard let e = build(x, from: b) else { return nil }
                    eps[e].append(end)
                }
                return end
            case .rep(let x, let lo, let hi):
                var cur = s
                for _ in 0..<lo { guard let e = build(x, from: cur) else { return nil }; cur = e }
                if let hi {
                    for _ in lo..<Swift.max(lo, hi) {
                        guard let b = new(), let end = new() else { return nil }
                        eps[cur].append(b)
                        eps[cur].append(end)
                        guard let e = build(x, from: b) else { return nil }
                        eps[e].append(end)
                        cur = end
                    }
                    return cur
                }
                guard let loop = new() else { return nil }
                eps[cur].append(loop)
                guard let b = new() else { return nil }
                eps[loop].append(b)
                guard let e = build(x, from: b) else { return nil }
                eps[e].append(loop)
                return loop
            }
        }
        guard let final = build(n, from: 0) else { return nil }
        // Keep the start and every state a character move enters.
        var keep = [0]
        var index = [0: 0]
        for s in 0..<chars.count { for (_, t) in chars[s] where index[t] == nil { index[t] = keep.count; keep.append(t) } }
        moves = []
        accepting = []
        for s in keep {
            var seen: Set<Int> = [s], stack = [s]
            var m: [Int: [ClosedRange<UInt32>]] = [:]
            var accepts = false
            while let x = stack.popLast() {
                if x == final { accepts = true }
                for (r, t) in chars[x] { m[index[t]!, default: []] += r }
                for y in eps[x] where seen.insert(y).inserted { stack.append(y) }
            }
            moves.append(m.keys.sorted().map { (ScalarSet.normalize(m[$0]!), $0) })
            accepting.append(accepts)
        }
    }

    private init(moves: [[(ranges: [ClosedRange<UInt32>], to: Int)]], accepting: [Bool]) {
        self.moves = moves
        self.accepting = accepting
    }

    /// The decimal integers divisible by `k` (`0`, or an optional `-` and digits without a
    /// leading zero): states are the remainders of the digits read so far.
    static func multiples(of k: Int) -> Automaton {
        // 0: start, 1: after "-", 2: after "0", 3 + r: remainder r after a nonzero start.
        var moves: [[(ranges: [ClosedRange<UInt32>], to: Int)]] = [[([45...45], 1), ([48...48], 2)], [], []]
        for d in 1...9 { moves[0].append(([UInt32(48 + d)...UInt32(48 + d)], 3 + d % k)); moves[1].append(([UInt32(48 + d)...UInt32(48 + d)], 3 + d % k)) }
        for r in 0..<k {
            moves.append((0...9).map { d in ([UInt32(48 + d)...UInt32(48 + d)], 3 + (10 * r + d) % k) })
        }
        return Automaton(moves: moves, accepting: [false, false, true] + (0..<k).map { $0 == 0 })
    }

    /// Every text except the given ones: a trie of them, leaving it (to an accepting state that
    /// takes anything) at the first character no excluded text has there.
    static func excluding(_ words: [String]) -> Automaton {
        var moves: [[(ranges: [ClosedRange<UInt32>], to: Int)]] = [[], [([0...0x10FFFF], 1)]]  // 0: root, 1: left the trie
        var accepting = [true, true]
        var children: [[UInt32: Int]] = [[:], [:]]
        for w in Set(words) {
            var s = 0
            for c in w.unicodeScalars {
                if let t = children[s][c.value] { s = t; continue }
                moves.append([]); accepting.append(true); children.append([:])
                children[s][c.value] = moves.count - 1
                s = moves.count - 1
            }
            accepting[s] = false
        }
        for s in 0..<moves.count where s != 1 {
            let own = children[s].keys.sorted()
            for c in own { moves[s].append(([c...c], children[s][c]!)) }
            let rest = ScalarSet.complement(ScalarSet.normalize(own.map { $0...$0 }))
            if !rest.isEmpty { moves[s].append((rest, 1)) }
        }
        return Automaton(moves: moves, accepting: accepting)
    }

    /// The same language with one state per set of states (subset construction), so that the
    /// grammar built from it keeps one stack at a time; nil beyond `limit` states.
    func determinized(limit: Int = 4_000) -> Automaton? {
        var index: [[Int]: Int] = [[start]: 0]
        var sets: [[Int]] = [[start]]
        var outMoves: [[(ranges: [ClosedRange<UInt32>], to: Int)]] = []
        var outAccepting: [Bool] = []
        var i = 0
        while i < sets.count {
            let set = sets[i]
            // The code points split where any move's class begins or ends.
            var points = Set<UInt32>()
            for s in set { for (rs, _) in moves[s] { for r in rs { points.insert(r.lowerBound); points.insert(r.upperBound &+ 1) } } }
            let bounds = points.sorted()
            var byTarget: [[Int]: [ClosedRange<UInt32>]] = [:]
            for (a, z) in zip(bounds, bounds.dropFirst()) {
                var targets = Set<Int>()
                for s in set { for (rs, t) in moves[s] where rs.contains(where: { $0.contains(a) }) { targets.insert(t) } }
                if !targets.isEmpty { byTarget[targets.sorted(), default: []].append(a...(z - 1)) }
            }
            var out: [(ranges: [ClosedRange<UInt32>], to: Int)] = []
            for key in byTarget.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                if index[key] == nil {
                    guard sets.count < limit else { return nil }
                    index[key] = sets.count
                    sets.append(key)
                }
                out.append((ScalarSet.normalize(byTarget[key]!), index[key]!))
            }
            outMoves.append(out)
            outAccepting.append(set.contains { accepting[$0] })
            i += 1
        }
        return Automaton(moves: outMoves, accepting: outAccepting)
    }

    /// The automaton of the texts both accept; nil beyond `limit` states.
    static func product(_ a: Automaton, _ b: Automaton, limit: Int = 20_000) -> Automaton? {
        var index: [Int: Int] = [a.start * b.moves.count + b.start: 0]
        var pairs = [(a.start, b.start)]
        var moves: [[(ranges: [ClosedRange<UInt32>], to: Int)]] = []
        var i = 0
        while i < pairs.count {
            let (x, y) = pairs[i]
            var m: [(ranges: [ClosedRange<UInt32>], to: Int)] = []
            for (r1, t1) in a.moves[x] {
                for (r2, t2) in b.moves[y] {
                    let r = ScalarSet.intersect(r1, r2)
                    if r.isEmpty { continue }
                    let key = t1 * b.moves.count + t2
                    if index[key] == nil {
                        guard pairs.count < limit else { return nil }
                        index[key] = pairs.count
                        pairs.append((t1, t2))
                    }
                    m.append((r, index[key]!))
                }
            }
            moves.append(m)
            i += 1
        }
        return Automaton(moves: moves, accepting: pairs.map { a.accepting[$0.0] && b.accepting[$0.1] })
    }

    /// Symbols for the accepted texts of `minLength`…`maxLength` code points (maxLength nil:
    /// unbounded), written as inside a JSON string when `json`; nil when there are none, or when
    /// more than `limit` rules would be needed.
    func symbols(minLength: Int, maxLength: Int?, _ b: GrammarBuilder, json: Bool, limit: Int = 60_000) throws(ConstraintError) -> [GrammarBuilder.Symbol]? {
        // Counts of code points, saturating at minLength when there is no maximum. Once the
        // count has reached minLength and no continuation can pass maxLength, it no longer
        // matters: such pairs share the count `free` (-1).
        let cap = maxLength ?? minLength
        // The longest continuation to acceptance from each state (capped at cap + 1: too long).
        var longest = [Int](repeating: -1, count: moves.count)
        for s in 0..<moves.count where accepting[s] { longest[s] = 0 }
        var grew = true
        while grew {
            grew = false
            for s in 0..<moves.count {
                for mv in moves[s] where longest[mv.to] >= 0 {
                    let l = Swift.min(cap + 1, longest[mv.to] + 1)
                    if l > longest[s] { longest[s] = l; grew = true }
                }
            }
        }
        let free = -1
        func settle(_ s: Int, _ k: Int) -> Int {
            k != free && k >= minLength && (maxLength == nil || k + longest[s] <= maxLength!) ? free : k
        }
        func next(_ s: Int, _ k: Int) -> Int? {
            if k == free { return free }
            return maxLength == nil ? Swift.min(k + 1, cap) : (k + 1 <= cap ? k + 1 : nil)
        }
        // Forward: the reachable (state, count) pairs.
        var index: [Int: Int] = [:]
        let k0 = settle(start, 0)
        var pairs: [(Int, Int)] = [(start, k0)]
        index[start * (cap + 2) + k0 + 1] = 0
        var edges: [[(Int, Int)]] = []  // per pair: (move number, next pair)
        var i = 0
        while i < pairs.count {
            let (s, k) = pairs[i]
            var out: [(Int, Int)] = []
            if let k1 = next(s, k) {
                for (mi, mv) in moves[s].enumerated() {
                    let k2 = settle(mv.to, k1)
                    let key = mv.to * (cap + 2) + k2 + 1
                    if index[key] == nil {
                        guard pairs.count < limit else { throw ConstraintError("the pattern with these lengths needs more than \(limit) states") }
                        index[key] = pairs.count
                        pairs.append((mv.to, k2))
                    }
                    out.append((mi, index[key]!))
                }
            }
            edges.append(out)
            i += 1
        }
        // Backward: the pairs from which an accepted text of an allowed length is reachable.
        var alive = pairs.map { accepting[$0.0] && ($0.1 == free || $0.1 >= minLength) }
        var into = [[Int]](repeating: [], count: pairs.count)
        for p in 0..<pairs.count { for (_, q) in edges[p] { into[q].append(p) } }
        var work = (0..<pairs.count).filter { alive[$0] }
        while let q = work.popLast() {
            for p in into[q] where !alive[p] { alive[p] = true; work.append(p) }
        }
        guard alive[0] else { return nil }
        var rules: [Int: Int] = [:]
        for p in 0..<pairs.count where alive[p] { rules[p] = b.declare("re-len") }
        var classes: [[ClosedRange<UInt32>]: GrammarBuilder.Symbol] = [:]
        func chars(_ r: [ClosedRange<UInt32>]) -> GrammarBuilder.Symbol {
            if let c = classes[r] { return c }
            let c = json ? JSONSchema.jsonChars(r, b) : b.scalarClass(r)
            classes[r] = c
            return c
        }
        for p in 0..<pairs.count where alive[p] {
            let (s, k) = pairs[p]
            var byTarget: [Int: [ClosedRange<UInt32>]] = [:]
            for (mi, q) in edges[p] where alive[q] { byTarget[q, default: []] += moves[s][mi].ranges }
            var alts: [[GrammarBuilder.Symbol]] = byTarget.keys.sorted().map { q in
                let r = ScalarSet.normalize(byTarget[q]!)
                return [chars(r), .rule(rules[q]!)]
            }
            if accepting[s] && (k == free || k >= minLength) { alts.append([]) }
            b.define(rules[p]!, alts)
        }
        return [.rule(rules[0]!)]
    }
}
