// Does a text satisfy a constraint? The same compiled grammar that masks generation, asked
// about a whole text; and the engine's own spelling of a JSON value.

extension Constraint {
    /// Whether `text` is a complete match of this constraint: the grammar that masks generation
    /// (``compile()``) accepts it from start to end. Throws when the constraint does not compile.
    public func matches(_ text: String) throws(ConstraintError) -> Bool {
        try compile().matches(text)
    }

    /// Whether the UTF-8 bytes `text` are a complete match of this constraint.
    public func matches(utf8 text: [UInt8]) throws(ConstraintError) -> Bool {
        let g = try compile()
        return g.advance(g.initialState, text).isComplete
    }
}

extension JSONSchema {
    /// A JSON value (given as JSON text) spelled as generation spells it: no whitespace; strings
    /// with `\"`, `\\`, `\n`, `\t`, `\r`, `\b`, `\f` and `\u00XX` for the other control characters,
    /// everything else as UTF-8; integral numbers below 10^16 as integers, other numbers in
    /// plain decimal (no exponent) where that round-trips, else Swift's shortest spelling; object
    /// members in the order generation writes them when `schema` says it (the `required` ones in
    /// its order, then the others by name, following `properties`, `additionalProperties`,
    /// `items`, `prefixItems` and local `$ref`s), else by name.
    public static func canonical(_ jsonText: String, schema: String? = nil) throws(ConstraintError) -> String {
        let value: JSONValue
        var root: JSONValue?
        do {
            value = try JSONParser.parse(jsonText)
            if let schema { root = try JSONParser.parse(schema) }
        } catch {
            throw ConstraintError("not valid JSON: \(error)")
        }
        var out = ""
        spell(value, schema: root, root: root, into: &out, depth: 0)
        return out
    }

    private static func resolved(_ schema: JSONValue?, root: JSONValue?) -> JSONValue? {
        var s = schema
        for _ in 0..<32 {  // a chain of references, cut off rather than followed forever
            guard let ref = s?["$ref"]?.stringValue, ref.hasPrefix("#"), var node = root else { return s }
            for part in ref.dropFirst().split(separator: "/") {
                let key = String(part).split(separator: "~1", omittingEmptySubsequences: false).joined(separator: "/")
                    .split(separator: "~0", omittingEmptySubsequences: false).joined(separator: "~")
                guard let next = node[key] else { return nil }
                node = next
            }
            s = node
        }
        return s
    }

    static func spell(_ v: JSONValue, schema: JSONValue?, root: JSONValue?, into out: inout String, depth: Int) {
        let s = depth < 64 ? resolved(schema, root: root) : nil
        switch v {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let d): out += number(d)
        case .string(let str): string(str, into: &out)
        case .array(let a):
            out += "["
            let prefix = s?["prefixItems"]?.arrayValue ?? []
            for (i, e) in a.enumerated() {
                if i > 0 { out += "," }
                spell(e, schema: i < prefix.count ? prefix[i] : s?["items"], root: root, into: &out, depth: depth + 1)
            }
            out += "]"
        case .object(let o):
            // The `required` names in generation's order: the schema's, then its allOf parts'.
            var names = (s?["required"]?.arrayValue ?? []).compactMap(\.stringValue)
            for part in s?["allOf"]?.arrayValue ?? [] {
                names += (resolved(part, root: root)?["required"]?.arrayValue ?? []).compactMap(\.stringValue)
            }
            let required = names.filter { o[$0] != nil }
            var seen = Set<String>()
            let order = required.filter { seen.insert($0).inserted } + o.keys.filter { !seen.contains($0) }.sorted()
            out += "{"
            for (i, k) in order.enumerated() {
                if i > 0 { out += "," }
                string(k, into: &out)
                out += ":"
                let partSchema = (s?["allOf"]?.arrayValue ?? []).lazy.compactMap { resolved($0, root: root)?["properties"]?[k] }.first
                spell(o[k]!, schema: s?["properties"]?[k] ?? partSchema ?? s?["additionalProperties"], root: root, into: &out, depth: depth + 1)
            }
            out += "}"
        }
    }

    private static func string(_ s: String, into out: inout String) { JSONValue.writeString(s, into: &out) }

    private static func number(_ d: Double) -> String {
        if d.rounded() == d && abs(d) < 1e16 { return String(Int64(d)) }
        let text = String(d)  // the shortest spelling that reads back
        guard let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }), let exp = Int(text[text.index(after: e)...]) else {
            return text
        }
        // Plain decimal from mantissa digits and exponent.
        var mantissa = String(text[..<e])
        let negative = mantissa.hasPrefix("-")
        if negative { mantissa.removeFirst() }
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        let whole = String(parts[0]), frac = parts.count > 1 ? String(parts[1]) : ""
        var digits = whole + frac
        var point = whole.count + exp
        if point <= 0 {
            digits = String(repeating: "0", count: 1 - point) + digits
            point = 1
        }
        if point >= digits.count { digits += String(repeating: "0", count: point - digits.count + 1) }
        var intPart = String(digits.prefix(point)), fracPart = String(digits.dropFirst(point))
        while fracPart.hasSuffix("0") { fracPart.removeLast() }
        while intPart.count > 1 && intPart.hasPrefix("0") { intPart.removeFirst() }
        let plain = (negative ? "-" : "") + intPart + (fracPart.isEmpty ? "" : "." + fracPart)
        return Double(plain) == d ? plain : text
    }
}

extension Grammar {
    /// A random complete match (its UTF-8 bytes), for testing that everything a grammar admits
    /// is valid: bytes chosen at random among those that can follow (an ASCII one nine times in
    /// ten where any can), stopping at a complete match now and then, and after `freeBytes`
    /// (drawn up to the given count) always taking a byte that brings completion closest. Nil
    /// when no match is reached within 64 KiB.
    public func randomMatch(using rng: inout some RandomNumberGenerator, freeBytes: Int = 64) -> [UInt8]? {
        var state = initialState
        var out: [UInt8] = []
        let free = Int.random(in: 0...Swift.max(0, freeBytes), using: &rng)
        while out.count < 65_536 {
            if state.isComplete && (!state.canContinue || out.count >= free || Int.random(in: 0..<10, using: &rng) == 0) { return out }
            var next: [(UInt8, GrammarState)] = []
            for byte in 0...255 {
                let t = advance(state, UInt8(byte))
                if !t.isDead { next.append((UInt8(byte), t)) }
            }
            if next.isEmpty { return state.isComplete ? out : nil }
            if out.count >= free {
                let distance = next.map { minBytesToComplete($0.1) }
                let best = distance.min()!
                next = zip(next, distance).filter { $0.1 == best }.map(\.0)
            } else {
                let ascii = next.filter { $0.0 < 0x80 }
                if !ascii.isEmpty && Int.random(in: 0..<10, using: &rng) != 0 { next = ascii }
            }
            let pick = next[Int.random(in: 0..<next.count, using: &rng)]
            out.append(pick.0)
            state = pick.1
        }
        return nil
    }
}

/// A small seeded random number generator (SplitMix64), so that random walks can be repeated.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator that starts from `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
