// A context-free grammar over bytes, and the pushdown matcher that follows it byte by byte.
//
// Every constraint (GBNF grammars, regular expressions, JSON Schema) compiles to this one form:
// rules whose alternatives are sequences of byte sets and rule references. Text is UTF-8, so a
// character class over code points becomes alternatives of byte-set sequences (see
// ``GrammarBuilder/scalarRanges(_:)``), and a token that ends inside a character simply leaves
// the matcher inside that rule.

/// A set of bytes (256 bits).
public struct ByteSet: Hashable, Sendable {
    var bits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    /// The empty set.
    public init() {}

    /// The bytes `range`.
    public init(_ range: ClosedRange<UInt8>) {
        for b in range { insert(b) }
    }

    /// One byte.
    public init(byte: UInt8) { insert(byte) }

    /// Adds `b`.
    public mutating func insert(_ b: UInt8) {
        let bit = UInt64(1) << UInt64(b & 63)
        switch b >> 6 {
        case 0: bits.0 |= bit
        case 1: bits.1 |= bit
        case 2: bits.2 |= bit
        default: bits.3 |= bit
        }
    }

    /// Whether `b` is in the set.
    @inline(__always)
    public func contains(_ b: UInt8) -> Bool {
        let bit = UInt64(1) << UInt64(b & 63)
        switch b >> 6 {
        case 0: return bits.0 & bit != 0
        case 1: return bits.1 & bit != 0
        case 2: return bits.2 & bit != 0
        default: return bits.3 & bit != 0
        }
    }

    /// Whether the set is empty.
    public var isEmpty: Bool { bits.0 | bits.1 | bits.2 | bits.3 == 0 }

    public static func == (a: ByteSet, b: ByteSet) -> Bool {
        a.bits.0 == b.bits.0 && a.bits.1 == b.bits.1 && a.bits.2 == b.bits.2 && a.bits.3 == b.bits.3
    }

    public func hash(into h: inout Hasher) {
        h.combine(bits.0); h.combine(bits.1); h.combine(bits.2); h.combine(bits.3)
    }
}

/// A parser's position in a text of code points, with the number readers the GBNF and regex
/// parsers share.
protocol ScalarCursor {
    var text: [Unicode.Scalar] { get }
    var pos: Int { get set }
    /// An error at the current position.
    func error(_ m: String) -> ConstraintError
}

extension ScalarCursor {
    /// The code point at the position (nil at the end).
    var peek: Unicode.Scalar? { pos < text.count ? text[pos] : nil }

    /// A decimal number (saturated at 1,000,000), or nil when no digit is here.
    mutating func number() -> Int? {
        var v = 0, any = false
        while let c = peek, c >= "0" && c <= "9" {
            v = Swift.min(v * 10 + Int(c.value - 48), 1_000_000)
            pos += 1
            any = true
        }
        return any ? v : nil
    }

    /// Exactly `n` hex digits.
    mutating func hex(_ n: Int) throws(ConstraintError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<n {
            guard let c = peek, let d = Int(String(c), radix: 16) else { throw error("expected \(n) hex digits") }
            v = v * 16 + UInt32(d)
            pos += 1
        }
        return v
    }
}

/// Why a constraint could not be compiled.
public struct ConstraintError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What is wrong, and where.
    public let message: String
    /// Creates an error.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// Builds a ``Grammar``: rules are added one by one and refer to each other by index.
public final class GrammarBuilder {
    /// One element of an alternative.
    public enum Symbol: Hashable, Sendable {
        /// One byte from the set.
        case bytes(ByteSet)
        /// A whole match of the rule with this index.
        case rule(Int)
    }

    /// Each rule's alternatives (each a sequence of symbols; an empty one matches nothing).
    public private(set) var rules: [[[Symbol]]] = []
    /// Rule names, for messages.
    public private(set) var names: [String] = []
    private var memo: [[[Symbol]]: Int] = [:]

    /// An empty builder.
    public init() {}

    /// Reserves a rule to be defined later (for recursion); returns its index.
    public func declare(_ name: String) -> Int {
        rules.append([])
        names.append(name)
        return rules.count - 1
    }

    /// Sets the alternatives of a declared rule.
    public func define(_ rule: Int, _ alternatives: [[Symbol]]) {
        rules[rule] = alternatives
    }

    /// A new rule with these alternatives (an identical rule made before is reused).
    public func rule(_ name: String, _ alternatives: [[Symbol]]) -> Int {
        if let r = memo[alternatives] { return r }
        let r = declare(name)
        define(r, alternatives)
        memo[alternatives] = r
        return r
    }

    /// The bytes of `text`, one symbol each.
    public static func literal(_ text: String) -> [Symbol] { literal(Array(text.utf8)) }

    /// `bytes`, one symbol each.
    public static func literal(_ bytes: [UInt8]) -> [Symbol] { bytes.map { .bytes(ByteSet(byte: $0)) } }

    /// The bytes standing for the special token `text` (say `<|tool_call|>`) in a grammar: 0xFF,
    /// its text, 0xFF. No UTF-8 text contains 0xFF, so only that one token matches them.
    public static func specialTokenBytes(_ text: String) -> [UInt8] { [0xFF] + Array(text.utf8) + [0xFF] }

    /// The special token `text` as symbols: a grammar admits that token (the one token, never
    /// its text spelled in plain tokens) where these stand.
    public static func specialToken(_ text: String) -> [Symbol] { literal(specialTokenBytes(text)) }

    /// `x*`: zero or more matches of the sequence.
    public func star(_ x: [Symbol], _ name: String = "star") -> Symbol {
        let r = declare(name)
        define(r, [x + [.rule(r)], []])
        return .rule(r)
    }

    /// `x+`.
    public func plus(_ x: [Symbol], _ name: String = "plus") -> [Symbol] { x + [star(x, name)] }

    /// `x?`.
    public func optional(_ x: [Symbol], _ name: String = "opt") -> Symbol { .rule(rule(name, [x, []])) }

    /// `x{min,max}` (max nil: unbounded). Bounded repetitions nest optionals, so the matcher's
    /// stack does not grow with the count.
    public func repeated(_ x: [Symbol], min: Int, max: Int?, _ name: String = "rep") -> [Symbol] {
        var out: [Symbol] = []
        for _ in 0..<min { out += x }
        guard let max else { return out + [star(x, name)] }
        if max <= min { return out }
        // tail_k ::= x tail_{k-1} | ε
        var tail: Symbol? = nil
        for _ in 0..<(max - min) {
            let seq = x + (tail.map { [$0] } ?? [])
            tail = .rule(rule(name, [seq, []]))
        }
        return out + [tail!]
    }

    /// One of the alternatives, as a symbol.
    public func choice(_ alternatives: [[Symbol]], _ name: String = "alt") -> Symbol {
        if alternatives.count == 1 && alternatives[0].count == 1 { return alternatives[0][0] }
        return .rule(rule(name, alternatives))
    }

    /// One UTF-8 character whose code point lies in one of `ranges`, as alternatives of byte
    /// sequences (surrogates excluded).
    public func scalarClass(_ ranges: [ClosedRange<UInt32>], _ name: String = "char") -> Symbol {
        choice(GrammarBuilder.scalarRanges(ranges).map { seq in seq.map { Symbol.bytes($0) } }, name)
    }

    /// Byte-set sequences whose concatenations are exactly the UTF-8 encodings of the code
    /// points in `ranges` (surrogates D800–DFFF and values above 10FFFF excluded).
    public static func scalarRanges(_ ranges: [ClosedRange<UInt32>]) -> [[ByteSet]] {
        var out: [[ByteSet]] = []
        var parts: [ClosedRange<UInt32>] = []
        for r in ranges {
            let lo = r.lowerBound, hi = Swift.min(r.upperBound, 0x10FFFF)
            guard lo <= hi else { continue }
            // Split at the encoding-length boundaries and around the surrogates.
            let bounds: [ClosedRange<UInt32>] = [0...0x7F, 0x80...0x7FF, 0x800...0xD7FF, 0xE000...0xFFFF, 0x10000...0x10FFFF]
            for b in bounds where lo <= b.upperBound && hi >= b.lowerBound {
                parts.append(Swift.max(lo, b.lowerBound)...Swift.min(hi, b.upperBound))
            }
        }
        for p in parts { split(p, into: &out) }
        return out
    }

    /// Appends the byte-set sequences of a range whose ends have the same UTF-8 length: the range
    /// is cut where its ends are not aligned to whole blocks of continuation bytes, until each
    /// piece is a product of per-byte ranges.
    private static func split(_ r: ClosedRange<UInt32>, into out: inout [[ByteSet]]) {
        let lo = r.lowerBound, hi = r.upperBound
        let n = utf8(lo).count
        if n > 1 {
            for i in 1..<n {
                let m = (UInt32(1) << UInt32(6 * i)) - 1
                if lo & ~m != hi & ~m {
                    if lo & m != 0 {
                        split(lo...(lo | m), into: &out)
                        split(((lo | m) + 1)...hi, into: &out)
                        return
                    }
                    if hi & m != m {
                        split(lo...((hi & ~m) - 1), into: &out)
                        split((hi & ~m)...hi, into: &out)
                        return
                    }
                }
            }
        }
        let a = utf8(lo), b = utf8(hi)
        out.append((0..<n).map { ByteSet(a[$0]...b[$0]) })
    }

    private static func utf8(_ c: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        appendUTF8(c, to: &out)
        return out
    }

    /// The grammar with `root` as its start rule.
    public func build(root: Int) throws(ConstraintError) -> Grammar {
        try Grammar(rules: rules, names: names, root: root)
    }
}

/// A compiled context-free grammar over bytes: every alternative laid out in one array of
/// operations, with the fewest bytes that finish each position (for the token budget).
public struct Grammar: Sendable {
    /// One operation of an alternative.
    enum Op: Sendable, Equatable {
        /// Match one byte of the set with this index.
        case bytes(Int32)
        /// Match the rule with this index.
        case call(Int32)
        /// The alternative is complete.
        case end
    }

    let ops: [Op]
    let sets: [ByteSet]
    /// Start positions of each rule's alternatives.
    let alternatives: [[Int32]]
    /// The fewest bytes that complete the alternative from each position (Int32.max: none).
    let minRest: [Int32]
    /// The fewest bytes of a whole match of each rule.
    let ruleMin: [Int32]
    let root: Int
    /// Rule names, for messages.
    let names: [String]

    init(rules: [[[GrammarBuilder.Symbol]]], names: [String], root: Int) throws(ConstraintError) {
        var ops: [Op] = [], sets: [ByteSet] = [], setIndex: [ByteSet: Int32] = [:]
        var alternatives: [[Int32]] = []
        for alts in rules {
            var starts: [Int32] = []
            for alt in alts {
                starts.append(Int32(ops.count))
                for s in alt {
                    switch s {
                    case .bytes(let b):
                        if b.isEmpty { throw ConstraintError("an empty character class can match nothing") }
                        let i = setIndex[b] ?? { sets.append(b); setIndex[b] = Int32(sets.count - 1); return Int32(sets.count - 1) }()
                        ops.append(.bytes(i))
                    case .rule(let r):
                        guard r >= 0 && r < rules.count else { throw ConstraintError("reference to an unknown rule") }
                        ops.append(.call(Int32(r)))
                    }
                }
                ops.append(.end)
            }
            alternatives.append(starts)
        }
        self.ops = ops
        self.sets = sets
        self.alternatives = alternatives
        self.root = root
        self.names = names
        // Fewest bytes: a fixed point from "none" (rules only reach their minimum through others).
        var ruleMin = [Int32](repeating: .max, count: rules.count)
        var minRest = [Int32](repeating: .max, count: ops.count)
        var changed = true
        while changed {
            changed = false
            var i = ops.count - 1
            while i >= 0 {
                let v: Int32
                switch ops[i] {
                case .end: v = 0
                case .bytes: v = minRest[i + 1] == .max ? .max : minRest[i + 1] + 1
                case .call(let r): v = (ruleMin[Int(r)] == .max || minRest[i + 1] == .max) ? .max : Swift.min(Int32.max - 1, ruleMin[Int(r)] + minRest[i + 1])
                }
                if v != minRest[i] { minRest[i] = v; changed = true }
                i -= 1
            }
            for (r, starts) in alternatives.enumerated() {
                let m = starts.map { minRest[Int($0)] }.min() ?? .max
                if m != ruleMin[r] { ruleMin[r] = m; changed = true }
            }
        }
        self.minRest = minRest
        self.ruleMin = ruleMin
        guard root >= 0 && root < rules.count else { throw ConstraintError("no root rule") }
        guard ruleMin[root] != .max else { throw ConstraintError("the grammar matches no text at all") }
        try checkLeftRecursion()
    }

    /// Left recursion (a rule that can reach itself without consuming a byte) would make the
    /// matcher loop: it is refused.
    private func checkLeftRecursion() throws(ConstraintError) {
        let n = alternatives.count
        let nullable = ruleMin.map { $0 == 0 }
        // Rules reachable at the left edge of each rule.
        var edges = [[Int]](repeating: [], count: n)
        for r in 0..<n {
            for start in alternatives[r] {
                var i = Int(start)
                loop: while true {
                    switch ops[i] {
                    case .call(let s):
                        edges[r].append(Int(s))
                        if !nullable[Int(s)] { break loop }
                        i += 1
                    default: break loop
                    }
                }
            }
        }
        var state = [UInt8](repeating: 0, count: n)  // 0 new, 1 on the path, 2 done
        for r0 in 0..<n where state[r0] == 0 {
            var stack: [(Int, Int)] = [(r0, 0)]
            state[r0] = 1
            while let (r, k) = stack.last {
                if k < edges[r].count {
                    stack[stack.count - 1].1 += 1
                    let s = edges[r][k]
                    if state[s] == 1 { throw ConstraintError("rule \(names[s]) is left-recursive (it can reach itself before reading a byte)") }
                    if state[s] == 0 { state[s] = 1; stack.append((s, 0)) }
                } else {
                    state[r] = 2
                    stack.removeLast()
                }
            }
        }
    }
}

/// Where a match stands: the set of pushdown stacks still alive. Each stack lists positions in
/// ``Grammar/ops`` from the bottom; its top is a byte set to match next, and an empty stack
/// means the text so far is a complete match.
public struct GrammarState: Hashable, Sendable {
    var stacks: [[Int32]]

    /// Whether the text so far is a complete match.
    public var isComplete: Bool { stacks.contains { $0.isEmpty } }
    /// Whether no continuation can match any more (the text so far is not a prefix of a match).
    public var isDead: Bool { stacks.isEmpty }
    /// Whether more bytes can follow.
    public var canContinue: Bool { stacks.contains { !$0.isEmpty } }
}

extension Grammar {
    /// The state before any byte.
    public var initialState: GrammarState {
        var out: [[Int32]] = []
        for start in alternatives[root] { expand([start], into: &out) }
        return GrammarState(stacks: Grammar.dedup(out))
    }

    /// The state after `byte`, dead when the byte cannot follow.
    public func advance(_ s: GrammarState, _ byte: UInt8) -> GrammarState {
        var out: [[Int32]] = []
        for stack in s.stacks {
            guard let top = stack.last, case .bytes(let set) = ops[Int(top)], sets[Int(set)].contains(byte) else { continue }
            var next = stack
            next[next.count - 1] = top + 1
            expand(next, into: &out)
        }
        return GrammarState(stacks: out.count > 1 ? Grammar.dedup(out) : out)
    }

    /// Per stack of `s`: the set of bytes its top accepts (nil for a finished stack).
    func topSets(_ s: GrammarState) -> [ByteSet?] {
        s.stacks.map { stack in
            guard let top = stack.last, case .bytes(let set) = ops[Int(top)] else { return nil }
            return sets[Int(set)]
        }
    }

    /// The state after `bytes` (dead as soon as one cannot follow).
    public func advance(_ s: GrammarState, _ bytes: some Sequence<UInt8>) -> GrammarState {
        var state = s
        for b in bytes {
            state = advance(state, b)
            if state.isDead { break }
        }
        return state
    }

    /// Whether `text` is a complete match.
    public func matches(_ text: String) -> Bool { advance(initialState, text.utf8).isComplete }

    /// The fewest bytes that complete a match from `s` (0 when complete; Int.max when dead).
    public func minBytesToComplete(_ s: GrammarState) -> Int {
        var best = Int.max
        for stack in s.stacks {
            var sum = 0
            for p in stack {
                let m = minRest[Int(p)]
                if m == .max { sum = .max; break }
                sum += Int(m)
            }
            best = Swift.min(best, sum)
        }
        return best
    }

    /// Brings a stack to positions whose top is a byte set (or empty), following calls and
    /// finished alternatives.
    private func expand(_ stack: [Int32], into out: inout [[Int32]], depth: Int = 0) {
        guard depth < 10_000 else { return }
        guard let top = stack.last else { out.append(stack); return }
        switch ops[Int(top)] {
        case .bytes:
            out.append(stack)
        case .end:
            var s = stack
            s.removeLast()
            expand(s, into: &out, depth: depth + 1)
        case .call(let r):
            var s = stack
            s.removeLast()
            // The continuation; a call in tail position leaves nothing (the stack stays flat
            // through right recursion such as x* and bounded repeats).
            if ops[Int(top) + 1] != .end { s.append(top + 1) }
            for start in alternatives[Int(r)] {
                var t = s
                t.append(start)
                expand(t, into: &out, depth: depth + 1)
            }
        }
    }

    private static func dedup(_ stacks: [[Int32]]) -> [[Int32]] {
        if stacks.count < 2 { return stacks }
        var seen = Set<[Int32]>()
        var out: [[Int32]] = []
        for s in stacks where seen.insert(s).inserted { out.append(s) }
        return out.sorted { a, b in a.lexicographicallyPrecedes(b) }
    }
}
