// JSON Schema compiled to a grammar whose every match is a valid instance.

/// Compiles a JSON Schema (draft 2020-12) to a ``Grammar`` of the JSON texts that are valid
/// instances.
///
/// Supported keywords:
/// - any value: `type` (one or an array of them), `enum` and `const` (with the keywords beside
///   them: only the listed values those admit are generated), `anyOf`, `allOf` (merged into one
///   schema; parts that constrain the same keyword differently are joined where that is exact —
///   bounds tightened, types intersected, integer `multipleOf` by their least common multiple,
///   property schemas and two `anyOf` lists combined — and refused otherwise), `oneOf` (where its
///   branches provably exclude each other: different kinds of value, different `const` / `enum`
///   values, a property one branch requires that the other forbids or gives other values; else
///   each branch joined with the negation of the others), `not`, `if` / `then` / `else` (through
///   the negation of a schema, below), `$ref` to `#`, `#/$defs/…`, `#/definitions/…`, `#name`
///   (`$anchor`), with keywords beside it, recursive too;
/// - objects: `properties`, `required`, `additionalProperties`, `patternProperties`,
///   `propertyNames`, `minProperties` / `maxProperties`, `dependentRequired`, `dependentSchemas`,
///   and `unevaluatedProperties` in a schema without combinators (where it means
///   `additionalProperties`);
/// - arrays: `items` (a schema or false), `prefixItems`, `minItems` / `maxItems`, `contains` with
///   `minContains` / `maxContains` (a `maxContains` needs the negation of `contains`),
///   `uniqueItems` where the items have a finite set of values (`enum`, `const`, `boolean`,
///   `null`), `unevaluatedItems` in a schema without combinators;
/// - strings: `minLength` / `maxLength` (code points), `pattern` (a search, as JSON Schema
///   defines it; the ``Regex`` subset), `format` (date, time, date-time, uuid, email, ipv4); a
///   format or pattern with lengths, and a format with a pattern, exactly (their automata's
///   product, see `Automaton`);
/// - numbers: `minimum` / `maximum` / `exclusiveMinimum` / `exclusiveMaximum` with integer bounds,
///   integer `multipleOf` (with both bounds: the multiples between them, up to 1,024).
///
/// The negation of a schema (for `not`, `if`, `oneOf`, `maxContains`) is a schema where one can
/// be written with these keywords: the values violating one of its keywords — a bound reversed, a
/// length or count past it, a required name absent, a property or item violating its schema's
/// negation, another type — by anyOf; `not` undone; De Morgan for allOf and anyOf. A `not` of a
/// type or of values the schema's own `enum` lists needs none of that.
///
/// Annotations (`title`, `description`, `default`, `examples`, `$schema`, `$id`, `$comment`,
/// `deprecated`, `readOnly`, `writeOnly`, `contentMediaType`, …) are ignored; any other keyword
/// is an error naming it, and so is a combination that cannot be a grammar (the message says
/// which). Not supported: `uniqueItems` over items with infinitely many values, `pattern` /
/// `format` / `const` / `enum` / `multipleOf` inside a negation, non-integer number bounds and
/// `multipleOf`, references to other documents or by `$id`, `$dynamicRef`, unevaluated keywords
/// beside combinators, formats other than the ones above.
///
/// What is generated (every output validates; some valid instances are never produced — the
/// generation restrictions): properties in a fixed order (the `required` ones in its order, then
/// the others in name order), each at most once; no properties beyond the declared ones when
/// some are declared (with `patternProperties` and no declared ones: names matching a pattern,
/// with values satisfying every pattern's schema); whitespace between tokens at most 16
/// characters; strings with `\uXXXX` escapes only outside the surrogates (so lengths count code
/// points as validators do); integers of at most 16 digits (multiples of a `multipleOf` of any
/// length); numbers with at most 16 fraction digits and an exponent of at most 3 digits, and at
/// most 15 significant digits next to a bound (so that a double reads back a value within it);
/// `uniqueItems` arrays in the order of the `enum`; format values from the formats' common
/// subsets (dates of the years 1000–9999 without 29 February, times without leap seconds,
/// dot-atom emails). A schema without `type` generates every kind of value, each under the
/// keywords about it. Compiled ``JSONSchema/compile(_:restrictions:)`` without restrictions, the
/// grammar also accepts extra properties beside declared ones, values failing `format` (an
/// annotation in draft 2020-12), and numbers of any length — for measuring what the restrictions
/// cost, never for generation.
public enum JSONSchema {
    /// Compiles the schema given as JSON text. With `restrictions` false the grammar also accepts
    /// valid instances that generation never writes (see the type's documentation); it is meant
    /// for measuring, not for masking generation (it may accept a few invalid ones, such as
    /// repeated property names).
    public static func compile(_ schemaText: String, restrictions: Bool = true) throws(ConstraintError) -> Grammar {
        let schema: JSONValue
        do { schema = try JSONParser.parse(schemaText) } catch { throw ConstraintError("the schema is not valid JSON: \(error)") }
        var c = Compiler(root: schema, relaxed: !restrictions)
        // No whitespace around the value: once it is closed the output is complete.
        let value = try c.value(schema, path: "#")
        let root = c.b.rule("root", [value])
        return try c.b.build(root: root)
    }

    static let annotations: Set<String> = ["title", "description", "default", "examples", "$schema", "$id", "$comment",
                                           "deprecated", "readOnly", "writeOnly", "$anchor", "id", "contentMediaType",
                                           "contentEncoding", "contentSchema", "$vocabulary"]

    /// One character inside a JSON string whose value is in `ranges`: printable ones as they
    /// are, `"` and `\` and control characters escaped.
    static func jsonChars(_ ranges: [ClosedRange<UInt32>], _ b: GrammarBuilder) -> GrammarBuilder.Symbol {
        var alts: [[GrammarBuilder.Symbol]] = []
        let plain = ScalarSet.subtract(ranges, [0...0x1F, 0x22...0x22, 0x5C...0x5C])
        if !plain.isEmpty { alts.append([b.scalarClass(plain, "str-char")]) }
        for r in ScalarSet.intersect(ranges, [0...0x1F, 0x22...0x22, 0x5C...0x5C]) {
            for c in r {
                let e: String
                switch c {
                case 0x22: e = "\\\""
                case 0x5C: e = "\\\\"
                case 0x0A: e = "\\n"
                case 0x09: e = "\\t"
                case 0x0D: e = "\\r"
                case 0x08: e = "\\b"
                case 0x0C: e = "\\f"
                default:
                    let h = String(c, radix: 16)
                    e = "\\u" + String(repeating: "0", count: 4 - h.count) + h
                }
                alts.append(GrammarBuilder.literal(e))
            }
        }
        return b.choice(alts, "json-char")
    }

    /// The symbols of the schema's instances, added to `builder` (for grammars that embed
    /// JSON, such as tool calls).
    static func symbols(_ schema: JSONValue, in builder: GrammarBuilder) throws(ConstraintError) -> [GrammarBuilder.Symbol] {
        var c = Compiler(root: schema, builder: builder)
        return try c.value(schema, path: "#")
    }

    /// The kinds of JSON value; numbers split into integral and other ones (`type: integer`
    /// admits the first, `type: number` both).
    enum Kind: CaseIterable, Hashable {
        case null, boolean, integer, fraction, string, array, object

        init(of v: JSONValue) {
            switch v {
            case .null: self = .null
            case .bool: self = .boolean
            case .number(let d): self = d.rounded() == d ? .integer : .fraction
            case .string: self = .string
            case .array: self = .array
            case .object: self = .object
            }
        }

        /// The kinds a `type` name admits (nil for an unknown name).
        static func named(_ t: String) -> Set<Kind>? {
            switch t {
            case "null": return [.null]
            case "boolean": return [.boolean]
            case "integer": return [.integer]
            case "number": return [.integer, .fraction]
            case "string": return [.string]
            case "array": return [.array]
            case "object": return [.object]
            default: return nil
            }
        }
    }

    /// Keywords that constrain only values of one kind (they hold for every value of the others).
    static let kindKeywords: [String: Kind] = [
        "properties": .object, "required": .object, "additionalProperties": .object, "patternProperties": .object,
        "propertyNames": .object, "minProperties": .object, "maxProperties": .object, "dependentRequired": .object,
        "unevaluatedProperties": .object,
        "items": .array, "prefixItems": .array, "minItems": .array, "maxItems": .array, "contains": .array,
        "minContains": .array, "maxContains": .array, "uniqueItems": .array, "unevaluatedItems": .array,
        "minLength": .string, "maxLength": .string, "pattern": .string, "format": .string,
        "minimum": .integer, "maximum": .integer, "exclusiveMinimum": .integer, "exclusiveMaximum": .integer,
        "multipleOf": .integer,
    ]

    struct Compiler {
        typealias Symbol = GrammarBuilder.Symbol
        let rootSchema: JSONValue
        let b: GrammarBuilder
        /// Without generation restrictions (for measuring; see ``JSONSchema/compile(_:restrictions:)``).
        let relaxed: Bool
        var refs: [String: Int] = [:]
        var depth = 0
        /// The schema resources (`$id`s) and anchors of the whole schema.
        let resources: Resources
        /// The base URI references resolve against here (the nearest `$id`).
        var base: String
        lazy var ws: Symbol = {
            let w = Symbol.bytes({ var s = ByteSet(); for c in [0x20, 0x09, 0x0A] as [UInt8] { s.insert(c) }; return s }())
            return b.choice([b.repeated([w], min: 0, max: relaxed ? nil : 16, "ws")], "ws")
        }()
        lazy var anyChar: Symbol = {
            // One string character: unescaped, or an escape; \u outside the surrogates.
            var alts: [[Symbol]] = [[b.scalarClass(ScalarSet.subtract(ScalarSet.all, [0...0x1F, 0x22...0x22, 0x5C...0x5C]), "str-plain")]]
            var simple = ByteSet()
            for c in "\"\\/bfnrt".utf8 { simple.insert(c) }
            alts.append([.bytes(ByteSet(byte: 0x5C)), .bytes(simple)])
            let hexd = Symbol.bytes({ var s = ByteSet(48...57); for c in 65...70 as ClosedRange<UInt8> { s.insert(c) }; for c in 97...102 as ClosedRange<UInt8> { s.insert(c) }; return s }())
            var nonD = ByteSet(48...57)
            for c in "abcefABCEF".utf8 { nonD.insert(c) }
            var d = ByteSet(); d.insert(0x64); d.insert(0x44)
            alts.append(GrammarBuilder.literal("\\u") + [.bytes(nonD), hexd, hexd, hexd])
            alts.append(GrammarBuilder.literal("\\u") + [.bytes(d), .bytes(ByteSet(48...55)), hexd, hexd])
            return b.choice(alts, "str-char")
        }()
        lazy var anyValue: Symbol = makeAnyValue()

        init(root: JSONValue, builder: GrammarBuilder = GrammarBuilder(), relaxed: Bool = false, resources: Resources? = nil) {
            rootSchema = root
            b = builder
            self.relaxed = relaxed
            self.resources = resources ?? Resources(root)
            base = self.resources.rootBase
        }

        mutating func makeAnyValue() -> Symbol {
            let value = b.declare("value")
            let ws = self.ws
            let string = stringRule(min: 0, max: nil)
            let number = b.choice([numberSymbols(integer: false)], "number")
            let member = [string, ws] + GrammarBuilder.literal(":") + [ws, .rule(value)]
            let members = member + [b.star([ws] + GrammarBuilder.literal(",") + [ws] + member, "members")]
            let object = GrammarBuilder.literal("{") + [ws, b.optional(members + [ws], "members-opt")] + GrammarBuilder.literal("}")
            let elements = [Symbol.rule(value)] + [b.star([ws] + GrammarBuilder.literal(",") + [ws, .rule(value)], "elements")]
            let array = GrammarBuilder.literal("[") + [ws, b.optional(elements + [ws], "elements-opt")] + GrammarBuilder.literal("]")
            b.define(value, [object, array, [string], [number], GrammarBuilder.literal("true"), GrammarBuilder.literal("false"),
                             GrammarBuilder.literal("null")])
            return .rule(value)
        }

        mutating func stringRule(min: Int, max: Int?) -> Symbol {
            let c = anyChar
            return b.choice([GrammarBuilder.literal("\"") + b.repeated([c], min: min, max: max, "chars") + GrammarBuilder.literal("\"")], "string")
        }

        /// `-?(0|[1-9][0-9]{0,15})`, with a fraction and exponent for numbers (unbounded digits
        /// without restrictions).
        mutating func numberSymbols(integer: Bool) -> [Symbol] {
            let digit = Symbol.bytes(ByteSet(48...57))
            let cap: Int? = relaxed ? nil : 15
            let intPart = b.choice([GrammarBuilder.literal("0"), [.bytes(ByteSet(49...57))] + b.repeated([digit], min: 0, max: cap, "digits")], "int")
            var out = [b.optional(GrammarBuilder.literal("-"), "sign"), intPart]
            if !integer {
                out.append(b.optional(GrammarBuilder.literal(".") + b.repeated([digit], min: 1, max: cap.map { $0 + 1 }, "frac"), "frac"))
                var e = ByteSet(); e.insert(0x65); e.insert(0x45)
                var sign = ByteSet(); sign.insert(0x2B); sign.insert(0x2D)
                out.append(b.optional([.bytes(e), b.optional([.bytes(sign)], "exp-sign")] + b.repeated([digit], min: 1, max: relaxed ? nil : 3, "exp"), "exp"))
            }
            return out
        }

        func fail(_ path: String, _ m: String) -> ConstraintError { ConstraintError("schema at \(path): \(m)") }

        /// Whether an error says that a schema admits no value at all (rather than that it
        /// cannot be compiled).
        static func isEmptiness(_ e: ConstraintError) -> Bool {
            ["admits no value", "no value of", "no object satisfies", "lies within the bounds", "no array"].contains { e.message.contains($0) }
        }

        /// Whether a schema object constrains anything (keywords other than annotations and
        /// definitions).
        static func constrains(_ o: [String: JSONValue]) -> Bool {
            o.keys.contains { !JSONSchema.annotations.contains($0) && $0 != "$defs" && $0 != "definitions" }
        }

        /// The schema with local references followed (nil when one points nowhere).
        func resolved(_ s: JSONValue) -> JSONValue? {
            var s = s
            var at = base
            for _ in 0..<32 {
                guard let o = s.objectValue, let ref = o["$ref"]?.stringValue else { return s }
                if o.keys.contains(where: { !JSONSchema.annotations.contains($0) && $0 != "$ref" && $0 != "$defs" && $0 != "definitions" }) { return s }
                if let id = o["$id"]?.stringValue { at = URI.withoutFragment(URI.resolve(id, against: at)) }
                guard let t = try? resolve(ref, from: "#", base: at) else { return nil }
                s = t.schema
                at = t.base
            }
            return nil
        }

        /// The kinds of value that can be valid for `s` (a superset; all kinds where unsure).
        func kinds(_ s: JSONValue, depth: Int = 0) -> Set<Kind> {
            let all = Set(Kind.allCases)
            guard depth < 16, let r = resolved(s) else { return all }
            if let v = r.boolValue { return v ? all : [] }
            guard let o = r.objectValue else { return all }
            if o["$ref"] != nil { return all }
            var k = all
            if let t = o["type"] {
                var ts: Set<Kind> = []
                for name in t.stringValue.map({ [$0] }) ?? (t.arrayValue ?? []).compactMap(\.stringValue) { ts.formUnion(Kind.named(name) ?? all) }
                k.formIntersection(ts)
            }
            if let c = o["const"] { k.formIntersection([Kind(of: c)]) }
            if let e = o["enum"]?.arrayValue { k.formIntersection(Set(e.map(Kind.init(of:)))) }
            for part in o["allOf"]?.arrayValue ?? [] { k.formIntersection(kinds(part, depth: depth + 1)) }
            for key in ["anyOf", "oneOf"] {
                if let list = o[key]?.arrayValue {
                    k.formIntersection(list.reduce(into: Set<Kind>()) { $0.formUnion(kinds($1, depth: depth + 1)) })
                }
            }
            if let n = o["not"]?.objectValue, n.keys.allSatisfy({ $0 == "type" || JSONSchema.annotations.contains($0) }), n["type"] != nil {
                k.subtract(kinds(.object(n), depth: depth + 1))
            }
            return k
        }

        /// The values a schema admits when it lists them (`const` / `enum`), else nil.
        func values(_ s: JSONValue) -> [JSONValue]? {
            guard let o = resolved(s)?.objectValue else { return nil }
            if let c = o["const"] { return [c] }
            return o["enum"]?.arrayValue
        }

        /// Whether no output of `gen`'s grammar is valid for `other` (used for `oneOf`).
        func excludes(_ gen: JSONValue, _ other: JSONValue) -> Bool {
            guard let g = resolved(gen), let o = resolved(other) else { return false }
            let shared = kinds(g).intersection(kinds(o))
            if shared.isEmpty { return true }
            if let vg = values(g) {
                if let vo = values(o), !vg.contains(where: { vo.contains($0) }) { return true }
                if vg.allSatisfy({ !kinds(o).contains(Kind(of: $0)) }) { return true }
            }
            // Objects only from here: a property one side has and the other cannot.
            guard shared == [.object], let go = g.objectValue, let oo = o.objectValue else { return false }
            let gRequired = Set((go["required"]?.arrayValue ?? []).compactMap(\.stringValue))
            let oRequired = Set((oo["required"]?.arrayValue ?? []).compactMap(\.stringValue))
            let gProps = go["properties"]?.objectValue ?? [:], oProps = oo["properties"]?.objectValue ?? [:]
            for p in gRequired {
                // Values of p on both sides disjoint.
                if let a = gProps[p].flatMap(values), let c = oProps[p].flatMap(values), !a.contains(where: { c.contains($0) }) { return true }
                if let a = gProps[p], let c = oProps[p], kinds(a).isDisjoint(with: kinds(c)) { return true }
                // The other side forbids p.
                if oProps[p] == .bool(false) { return true }
                if oProps[p] == nil && oo["additionalProperties"] == .bool(false) && oo["patternProperties"] == nil { return true }
            }
            // The other side requires a property the generated objects never have (declared
            // properties only, none beyond them).
            if !relaxed && !gProps.isEmpty && go["patternProperties"] == nil && go["dependentRequired"] == nil {
                for p in oRequired where gProps[p] == nil && !gRequired.contains(p) { return true }
            }
            return false
        }

        /// A sub-grammar, compiled on its own (to test values against a schema).
        func grammar(_ s: JSONValue, path: String) throws(ConstraintError) -> Grammar {
            var sub = Compiler(root: rootSchema, resources: resources)
            sub.base = base
            sub.depth = depth + 1
            guard sub.depth < 32 else { throw fail(path, "schemas nested too deeply") }
            let syms = try sub.value(s, path: path)
            return try sub.b.build(root: sub.b.rule("root", [syms]))
        }

        /// The values that are instances of `s` as generation would write them (none when `s`
        /// does not compile: used to keep only values that certainly validate).
        func admitted(_ s: JSONValue, _ values: [JSONValue], path: String) -> [JSONValue] {
            guard let g = try? grammar(s, path: path) else { return [] }
            return values.filter { v in
                var text = ""
                JSONSchema.spell(v, schema: s, root: rootSchema, into: &text, depth: 0)
                return g.matches(text)
            }
        }

        /// The symbols of a valid instance of `s`.
        mutating func value(_ s: JSONValue, path: String) throws(ConstraintError) -> [Symbol] {
            depth += 1
            defer { depth -= 1 }
            guard depth < 200 else { throw fail(path, "schemas nested too deeply") }
            if let v = s.boolValue {
                if v { return [anyValue] }
                throw fail(path, "the schema false admits no value")
            }
            guard var o = s.objectValue else { throw fail(path, "a schema must be an object or a boolean") }
            let savedBase = base
            defer { base = savedBase }
            if let id = o["$id"]?.stringValue { base = URI.withoutFragment(URI.resolve(id, against: base)) }
            let known: Set<String> = ["type", "properties", "required", "additionalProperties", "items", "prefixItems",
                                      "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs",
                                      "definitions", "minLength", "maxLength", "pattern", "format", "minimum", "maximum",
                                      "exclusiveMinimum", "exclusiveMaximum", "strict", "name", "not", "multipleOf",
                                      "patternProperties", "propertyNames", "minProperties", "maxProperties",
                                      "dependentRequired", "contains", "minContains", "maxContains", "uniqueItems",
                                      "unevaluatedProperties", "unevaluatedItems", "if", "then", "else", "dependentSchemas"]
            for k in o.keys.sorted() where !known.contains(k) && !JSONSchema.annotations.contains(k) {
                throw fail(path, "the keyword \"\(k)\" is not supported")
            }
            // unevaluated*: without combinators every evaluated property / item is one the
            // schema's own keywords name, so they mean additionalProperties / items.
            if o["unevaluatedProperties"] != nil || o["unevaluatedItems"] != nil {
                if ["allOf", "anyOf", "oneOf", "$ref", "not", "if", "then", "else", "dependentSchemas"].contains(where: { o[$0] != nil }) {
                    throw fail(path, "unevaluatedProperties / unevaluatedItems beside allOf, anyOf, oneOf, not, if, dependentSchemas or $ref are not supported")
                }
                if let u = o.removeValue(forKey: "unevaluatedProperties"), o["additionalProperties"] == nil { o["additionalProperties"] = u }
                if let u = o.removeValue(forKey: "unevaluatedItems"), o["items"] == nil { o["items"] = u }
            }
            if let ref = o["$ref"]?.stringValue {
                var rest = o
                rest["$ref"] = nil
                if Compiler.constrains(rest) {
                    // Keywords beside $ref: both apply.
                    rest["$defs"] = nil
                    rest["definitions"] = nil
                    return try value(.object(["allOf": .array([.object(["$ref": .string(ref)]), .object(rest)])]), path: path)
                }
                return [.rule(try reference(ref, from: path))]
            }
            // if / then / else and dependentSchemas: alternatives joined to the schema by allOf
            // (if-and-then, or the negation of if and else; a dependency's name absent, or its
            // schema).
            if o["if"] != nil || o["then"] != nil || o["else"] != nil || o["dependentSchemas"] != nil {
                var parts = o["allOf"]?.arrayValue ?? []
                if let i = o["if"] {
                    guard let n = negation(i) else {
                        throw fail(path, "if whose negation cannot be a grammar (it may use only type, bounds, lengths, counts, required, properties, items, not, allOf, anyOf) is not supported")
                    }
                    parts.append(.object(["anyOf": .array([.object(["allOf": .array([i, o["then"] ?? .bool(true)])]),
                                                          .object(["allOf": .array([n, o["else"] ?? .bool(true)])])])]))
                }
                if let d = o["dependentSchemas"] {
                    guard let deps = d.objectValue else { throw fail(path, "dependentSchemas must be an object") }
                    for (name, s) in deps.sorted(by: { $0.key < $1.key }) {
                        parts.append(.object(["anyOf": .array([.object(["type": .array(["null", "boolean", "number", "string", "array"].map { .string($0) })]),
                                                              .object(["type": .string("object"), "properties": .object([name: .bool(false)])]),
                                                              .object(["allOf": .array([s, .object(["type": .string("object"), "required": .array([.string(name)])])])])])]))
                    }
                }
                var rest = o
                for k in ["if", "then", "else", "dependentSchemas"] { rest[k] = nil }
                if !parts.isEmpty { rest["allOf"] = .array(parts) }
                return try value(.object(rest), path: path)
            }
            if o["const"] != nil || o["enum"] != nil {
                var list: [JSONValue]
                if let c = o["const"] {
                    list = [c]
                    if let e = o["enum"] {
                        guard let items = e.arrayValue else { throw fail(path, "enum must be an array") }
                        list = items.contains(c) ? [c] : []
                    }
                } else {
                    guard let items = o["enum"]?.arrayValue else { throw fail(path, "enum must be an array") }
                    list = items
                }
                var rest = o
                rest["const"] = nil
                rest["enum"] = nil
                var unique: [JSONValue] = []
                for v in list where !unique.contains(v) { unique.append(v) }
                if let n = rest["not"], let r = resolved(n), let excluded = values(r),
                   let no = r.objectValue, !Compiler.constrains(no.filter { $0.key != "enum" && $0.key != "const" }) {
                    // not of listed values: those values left out.
                    unique = unique.filter { !excluded.contains($0) }
                    rest["not"] = nil
                }
                if Compiler.constrains(rest) {
                    // The keywords beside them: only the values those admit.
                    let restSchema = JSONValue.object(rest)
                    let typed = rest["type"] != nil || rest.keys.contains { ["allOf", "anyOf", "oneOf", "not", "$ref"].contains($0) }
                    let about = Set(rest.keys.compactMap { JSONSchema.kindKeywords[$0] })
                    let checked = Set(admitted(restSchema, unique, path: path).map(\.serialized))
                    unique = unique.filter { v in
                        let k = Kind(of: v) == .fraction ? Kind.integer : Kind(of: v)
                        return (!typed && !about.contains(k)) || checked.contains(v.serialized)  // (no keyword applies to it)
                    }
                }
                guard !unique.isEmpty else { throw fail(path, "no value of enum / const satisfies the schema") }
                return [b.choice(unique.map { v in
                    var text = ""
                    JSONSchema.spell(v, schema: .object(rest), root: rootSchema, into: &text, depth: 0)
                    return GrammarBuilder.literal(text)
                }, "enum")]
            }
            for key in ["anyOf", "oneOf"] {
                if let list = o[key] {
                    guard let items = list.arrayValue, !items.isEmpty else { throw fail(path, "\(key) must be a non-empty array") }
                    var rest = o
                    rest[key] = nil
                    let base = Compiler.constrains(rest)
                    var branches: [(Int, JSONValue)] = []
                    for (i, item) in items.enumerated() {
                        if item.boolValue == false { continue }
                        var sub = item
                        if base {
                            // The keywords beside anyOf apply to every branch: merged with it as
                            // allOf merges (so that, say, the base's additionalProperties still
                            // holds for the branch's properties).
                            var r = rest
                            r[key] = nil
                            let parts = (r["allOf"]?.arrayValue ?? []) + [item]
                            do throws(ConstraintError) { sub = .object(try mergeAllOf(r, .array(parts), path: "\(path)/\(key)/\(i)")) } catch {
                                if Compiler.isEmptiness(error) { continue }
                                throw error
                            }
                        }
                        branches.append((i, sub))
                    }
                    if key == "oneOf" {
                        // Exactly one branch: every output of one must be invalid for the others
                        // — provably so, or made so by joining the negations of the others.
                        var joined: [(Int, JSONValue)] = []
                        for (i, x) in branches {
                            var negations: [JSONValue] = []
                            for (j, y) in branches where j != i && !excludes(x, y) {
                                guard branches.count <= 4, let n = negation(y) else {
                                    throw fail(path, "oneOf branches \(i) and \(j) may both hold for one value; only branches that exclude each other (different types, const / enum values, or a required property the other forbids or values differently), or whose negations can be grammars, are supported")
                                }
                                negations.append(n)
                            }
                            joined.append((i, negations.isEmpty ? x : .object(["allOf": .array([x] + negations)])))
                        }
                        branches = joined
                    }
                    var alts: [[Symbol]] = []
                    var errors: [ConstraintError] = []
                    for (i, sub) in branches {
                        // A branch that admits no value (say, its type contradicts the keywords
                        // beside anyOf) is left out.
                        do { alts.append(try value(sub, path: "\(path)/\(key)/\(i)")) } catch { errors.append(error) }
                    }
                    if let e = errors.first(where: { !Compiler.isEmptiness($0) }) { throw e }
                    if alts.isEmpty { throw fail(path, "the schema admits no value: no branch of \(key) does") }
                    return [b.choice(alts, key)]
                }
            }
            if let all = o["allOf"] {
                return try value(.object(try mergeAllOf(o, all, path: path)), path: path)
            }
            // Which kinds of value: the type, or for an untyped schema the kind its keywords
            // are about; minus those `not` excludes.
            var kindSet: Set<Kind>
            var inferred = false
            if let t = o["type"] {
                var names: [String] = []
                if let one = t.stringValue { names = [one] } else if let many = t.arrayValue {
                    names = many.compactMap(\.stringValue)
                    guard names.count == many.count, !names.isEmpty else { throw fail(path, "type must be a string or an array of strings") }
                } else { throw fail(path, "type must be a string or an array of strings") }
                kindSet = []
                for n in names {
                    guard let k = Kind.named(n) else { throw fail(path, "unknown type \"\(n)\"") }
                    kindSet.formUnion(k)
                }
            } else {
                // Without type: every kind of value, each under the keywords about it.
                kindSet = Set(Kind.allCases)
                inferred = o.keys.contains { JSONSchema.kindKeywords[$0] != nil }
            }
            if let n = o["not"] {
                do throws(ConstraintError) { kindSet = try applyNot(n, to: kindSet, path: path) } catch {
                    // Otherwise the negation as a schema, joined by allOf.
                    guard !Compiler.isEmptiness(error), let neg = negation(n, deferring: false) else { throw error }
                    var rest = o
                    rest["not"] = nil
                    return try value(.object(["allOf": .array([.object(rest), neg])]), path: path)
                }
            }
            if kindSet.isEmpty { throw fail(path, "the schema admits no value (its type and not exclude every kind)") }
            var alts: [[Symbol]] = []
            if kindSet == Set(Kind.allCases) && !inferred && o["not"] == nil { return [anyValue] }
            for k in Kind.allCases where kindSet.contains(k) {
                switch k {
                case .string: alts.append(try string(o, path: path))
                case .integer: if !kindSet.contains(.fraction) { alts.append(try number(o, integer: true, path: path)) }
                case .fraction:
                    if kindSet.contains(.integer) { alts.append(try number(o, integer: false, path: path)) } else {
                        // Numbers that are not integers (not of integer): a nonzero fraction.
                        if ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"].contains(where: { o[$0] != nil }) {
                            throw fail(path, "bounds or multipleOf on numbers that are not integers are not supported")
                        }
                        let digit = Symbol.bytes(ByteSet(48...57))
                        // (At most 15 significant digits, so that a double keeps the fraction.)
                        alts.append([b.optional(GrammarBuilder.literal("-"), "sign"), b.choice([GrammarBuilder.literal("0"), [.bytes(ByteSet(49...57))] + b.repeated([digit], min: 0, max: 6, "digits")], "int")]
                                    + GrammarBuilder.literal(".") + b.repeated([digit], min: 0, max: 7, "frac") + [.bytes(ByteSet(49...57))])
                    }
                case .boolean:
                    let excluded = o["not"].flatMap { resolved($0)?.objectValue }.flatMap(Compiler.excludedValues) ?? []
                    for v in [true, false] where !excluded.contains(.bool(v)) { alts.append(GrammarBuilder.literal(v ? "true" : "false")) }
                case .null: alts.append(GrammarBuilder.literal("null"))
                case .object: alts.append(try object(o, path: path))
                case .array: alts.append(try array(o, path: path))
                }
            }
            return alts.count == 1 ? alts[0] : [b.choice(alts, "types")]
        }

        /// A schema whose instances are exactly the values `s` rejects, where one can be written
        /// with the supported keywords (nil otherwise): the values violating each keyword (of its
        /// kind: a bound reversed, a length or count past it, a required name absent, a property
        /// or item violating its schema; for `type`, the other kinds), joined by anyOf; `not`
        /// undone; De Morgan for allOf and anyOf.
        func negation(_ s: JSONValue, depth: Int = 0, deferring: Bool = true) -> JSONValue? {
            // (`deferring` false: no `not` of a keyword at the top, where it would come back to
            // the caller that could not compile it.)
            guard depth < 8, let r = resolved(s) else { return nil }
            if let v = r.boolValue { return .bool(!v) }
            guard let o = r.objectValue, o["$ref"] == nil else { return nil }
            var alts: [JSONValue] = []
            func add(_ x: JSONValue) { if !alts.contains(x) { alts.append(x) } }
            func typeNames(_ ks: Set<Kind>) -> [JSONValue] {
                var names: [String] = []
                for (n, k) in [("null", Kind.null), ("boolean", .boolean), ("string", .string), ("array", .array), ("object", .object)] where ks.contains(k) {
                    names.append(n)
                }
                if ks.contains(.integer) && ks.contains(.fraction) { names.append("number") }
                var out: [JSONValue] = names.isEmpty ? [] : [.object(["type": names.count == 1 ? .string(names[0]) : .array(names.map { .string($0) })])]
                if ks.contains(.fraction) && !ks.contains(.integer) { out.append(.object(["type": .string("number"), "not": .object(["type": .string("integer")])])) }
                if ks.contains(.integer) && !ks.contains(.fraction) { out.append(.object(["type": .string("integer")])) }
                return out
            }
            func num(_ v: JSONValue) -> Int? { v.doubleValue.flatMap { $0 >= 0 && $0 == $0.rounded() && $0 < 1e9 ? Int($0) : nil } }
            for (k, v) in o.sorted(by: { $0.key < $1.key }) {
                if JSONSchema.annotations.contains(k) || k == "$defs" || k == "definitions" { continue }
                switch k {
                case "type":
                    typeNames(Set(Kind.allCases).subtracting(kinds(.object(["type": v])))).forEach(add)
                case "minimum": add(.object(["type": .string("number"), "exclusiveMaximum": v]))
                case "exclusiveMinimum": add(.object(["type": .string("number"), "maximum": v]))
                case "maximum": add(.object(["type": .string("number"), "exclusiveMinimum": v]))
                case "exclusiveMaximum": add(.object(["type": .string("number"), "minimum": v]))
                case "minLength", "minItems", "minProperties":
                    guard let n = num(v) else { return nil }
                    let t = JSONValue.string(k == "minLength" ? "string" : k == "minItems" ? "array" : "object")
                    if n > 0 { add(.object(["type": t, "max" + String(k.dropFirst(3)): .number(Double(n - 1))])) }
                case "maxLength", "maxItems", "maxProperties":
                    guard let n = num(v) else { return nil }
                    let t = JSONValue.string(k == "maxLength" ? "string" : k == "maxItems" ? "array" : "object")
                    add(.object(["type": t, "min" + String(k.dropFirst(3)): .number(Double(n + 1))]))
                case "required":
                    for p in v.arrayValue ?? [] { add(.object(["type": .string("object"), "properties": .object([p.stringValue ?? "": .bool(false)])])) }
                case "properties":
                    for (p, ps) in (v.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
                        guard let n = negation(ps, depth: depth + 1, deferring: deferring) else { return nil }
                        if n != .bool(false) { add(.object(["type": .string("object"), "required": .array([.string(p)]), "properties": .object([p: n])])) }
                    }
                case "items":
                    guard o["prefixItems"] == nil, let n = negation(v, depth: depth + 1, deferring: deferring) else { return nil }
                    if n != .bool(false) { add(.object(["type": .string("array"), "contains": n])) }
                case "prefixItems":
                    for (i, ps) in (v.arrayValue ?? []).enumerated() {
                        guard let n = negation(ps, depth: depth + 1, deferring: deferring) else { return nil }
                        if n != .bool(false) {
                            add(.object(["type": .string("array"), "minItems": .number(Double(i + 1)), "prefixItems": .array(Array(repeating: .bool(true), count: i) + [n])]))
                        }
                    }
                case "contains":
                    guard o["maxContains"] == nil, let n = negation(v, depth: depth + 1, deferring: deferring) else { return nil }
                    let minC = o["minContains"].flatMap(num) ?? 1
                    if minC > 1 { return nil }
                    if minC == 1 { add(.object(["type": .string("array"), "items": n])) }
                case "minContains", "maxContains":
                    if o["contains"] == nil { continue }
                case "not": add(v)
                case "const", "enum", "pattern", "format", "multipleOf", "uniqueItems", "propertyNames", "patternProperties":
                    // No negation of their own: left as `not` of the keyword (for the kind it is
                    // about), which compiles where the context lists values (an enum) or a
                    // string automaton can exclude them, and is refused otherwise.
                    guard deferring || depth > 0 else { return nil }
                    if k == "const" || k == "enum" {
                        add(.object(["not": .object([k: v])]))
                    } else {
                        let kind = JSONSchema.kindKeywords[k]!
                        let t = kind == .integer ? "number" : kind == .string ? "string" : kind == .array ? "array" : "object"
                        add(.object(["type": .string(t), "not": .object([k: v])]))
                    }
                case "allOf":
                    for part in v.arrayValue ?? [] {
                        guard let n = negation(part, depth: depth + 1, deferring: deferring) else { return nil }
                        add(n)
                    }
                case "anyOf":
                    var all: [JSONValue] = []
                    for part in v.arrayValue ?? [] {
                        guard let n = negation(part, depth: depth + 1, deferring: deferring) else { return nil }
                        all.append(n)
                    }
                    add(.object(["allOf": .array(all)]))
                default:
                    return nil
                }
            }
            alts.removeAll { $0 == .bool(false) }
            if alts.isEmpty { return .bool(false) }
            return alts.count == 1 ? alts[0] : .object(["anyOf": .array(alts)])
        }

        /// The kinds left after `not` (the schema `n`), or an error where the rest of its meaning
        /// cannot be a grammar.
        func applyNot(_ n: JSONValue, to kindSet: Set<Kind>, path: String) throws(ConstraintError) -> Set<Kind> {
            guard let r = resolved(n) else { throw fail(path, "not: reference points to nothing") }
            if let v = r.boolValue {
                if v { throw fail(path, "not: true admits no value") }
                return kindSet
            }
            guard let no = r.objectValue else { throw fail(path, "not must be a schema") }
            // Nothing of the kinds generated can be valid for n: not holds for all of them.
            let nk = kinds(r)
            if nk.isDisjoint(with: kindSet) { return kindSet }
            // not of a type alone removes those kinds.
            if no.keys.allSatisfy({ $0 == "type" || JSONSchema.annotations.contains($0) }), no["type"] != nil {
                return kindSet.subtracting(nk)
            }
            // not of listed values: null and the booleans left out here, strings by the string
            // builder (see `excludedStrings`); numbers, arrays and objects cannot be left out.
            if let excluded = Compiler.excludedValues(no) {
                var out = kindSet
                if excluded.contains(.null) { out.remove(.null) }
                if excluded.contains(.bool(true)) && excluded.contains(.bool(false)) { out.remove(.boolean) }
                for v in excluded {
                    switch Kind(of: v) {
                    case .integer, .fraction, .array, .object:
                        if out.contains(Kind(of: v)) { throw fail(path, "not of a number, array or object value is not supported") }
                    default: break
                    }
                }
                return out
            }
            if !Compiler.constrains(no) { throw fail(path, "not: {} admits no value") }
            throw fail(path, "not of a schema other than a type (or of values the enum already excludes) is not supported")
        }

        /// The values a `not` of only `const` / `enum` excludes (nil for any other `not`).
        static func excludedValues(_ no: [String: JSONValue]) -> [JSONValue]? {
            guard no.keys.allSatisfy({ $0 == "const" || $0 == "enum" || JSONSchema.annotations.contains($0) }) else { return nil }
            if let c = no["const"] { return [c] }
            return no["enum"]?.arrayValue
        }

        /// The strings a schema's `not` excludes (none when it has no such `not`).
        func excludedStrings(_ o: [String: JSONValue]) -> [String] {
            guard let n = o["not"], let no = resolved(n)?.objectValue, let values = Compiler.excludedValues(no) else { return [] }
            return values.compactMap(\.stringValue)
        }

        /// allOf merged with its schema into one schema object.
        func mergeAllOf(_ o: [String: JSONValue], _ all: JSONValue, path: String) throws(ConstraintError) -> [String: JSONValue] {
            guard let items = all.arrayValue, !items.isEmpty else { throw fail(path, "allOf must be a non-empty array") }
            var merged = o
            merged["allOf"] = nil
            // additionalProperties: false in one part allows only that part's own properties:
            // the merged object may use the properties every such part allows.
            var allowed: Set<String>? = nil
            func restrict(_ part: [String: JSONValue]) {
                guard part["additionalProperties"]?.boolValue == false else { return }
                let own = Set((part["properties"]?.objectValue ?? [:]).keys)
                allowed = allowed.map { $0.intersection(own) } ?? own
            }
            restrict(o)
            var parts: [(Int, [String: JSONValue])] = []
            for (i, item) in items.enumerated() {
                if item.boolValue == false { throw fail("\(path)/allOf/\(i)", "the schema false admits no value") }
                guard let r = resolved(item) else { throw fail("\(path)/allOf/\(i)", "reference points to nothing") }
                var io = r.objectValue ?? [:]
                if io["$ref"] != nil { throw fail("\(path)/allOf/\(i)", "allOf of a reference with keywords beside it is not supported") }
                if io["unevaluatedProperties"] != nil || io["unevaluatedItems"] != nil {
                    throw fail("\(path)/allOf/\(i)", "unevaluatedProperties / unevaluatedItems inside allOf are not supported")
                }
                if let inner = io["allOf"] {
                    io = try mergeAllOf(io, inner, path: "\(path)/allOf/\(i)")
                }
                parts.append((i, io))
            }
            for (i, io) in parts {
                restrict(io)
                // `items` applies after the `prefixItems` of its own schema only: from two
                // different parts they cannot be merged into one.
                if (io["prefixItems"] != nil && merged["items"] != nil && io["items"] == nil)
                    || (io["items"] != nil && merged["prefixItems"] != nil && io["prefixItems"] == nil) {
                    throw fail("\(path)/allOf/\(i)", "allOf combining items and prefixItems of different parts is not supported")
                }
                for (k, v) in io {
                    switch k {
                    case "properties":
                        var p = merged[k]?.objectValue ?? [:]
                        for (pk, pv) in v.objectValue ?? [:] {
                            // The same property in two parts must satisfy both.
                            let open: (JSONValue?) -> Bool = { $0 == nil || $0 == .bool(true) || $0 == .object([:]) }
                            if open(p[pk]) { p[pk] = pv } else if !open(pv) && p[pk] != pv {
                                p[pk] = .object(["allOf": .array([p[pk]!, pv])])
                            }
                        }
                        merged[k] = .object(p)
                    case "required":
                        merged[k] = .array((merged[k]?.arrayValue ?? []) + (v.arrayValue ?? []))
                    case "type":
                        if let t = merged[k], t != v {
                            // Both types: their common kinds.
                            let names = Set(t.stringValue.map { [$0] } ?? (t.arrayValue ?? []).compactMap(\.stringValue))
                            let other = Set(v.stringValue.map { [$0] } ?? (v.arrayValue ?? []).compactMap(\.stringValue))
                            var common = names.intersection(other)
                            if names.contains("number") && other.contains("integer") { common.insert("integer") }
                            if other.contains("number") && names.contains("integer") { common.insert("integer") }
                            if common.isEmpty { throw fail("\(path)/allOf/\(i)", "the schema admits no value (allOf of types \(t.serialized) and \(v.serialized))") }
                            merged[k] = .array(common.sorted().map { .string($0) })
                        } else { merged[k] = v }
                    case "additionalProperties":
                        break  // false: see `allowed`; a schema: see below
                    case "minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains":
                        if let a = merged[k]?.doubleValue, let c = v.doubleValue { merged[k] = .number(Swift.max(a, c)) } else { merged[k] = v }
                    case "maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains":
                        if let a = merged[k]?.doubleValue, let c = v.doubleValue { merged[k] = .number(Swift.min(a, c)) } else { merged[k] = v }
                    case "multipleOf":
                        if let a = merged[k]?.doubleValue, let c = v.doubleValue, a != c {
                            guard a == a.rounded(), c == c.rounded(), a > 0, c > 0, a * c < 1e9 else {
                                throw fail("\(path)/allOf/\(i)", "allOf combining non-integer multipleOf values is not supported")
                            }
                            var x = Int(a), y = Int(c)
                            while y != 0 { (x, y) = (y, x % y) }
                            merged[k] = .number(a * c / Double(x))
                        } else { merged[k] = v }
                    case "anyOf":
                        // Two anyOf: one of every pair.
                        if let a = merged[k]?.arrayValue, let c = v.arrayValue, merged[k] != v {
                            guard a.count * c.count <= 16 else { throw fail("\(path)/allOf/\(i)", "allOf combining large anyOf lists is not supported") }
                            merged[k] = .array(a.flatMap { x in c.map { y in JSONValue.object(["allOf": .array([x, y])]) } })
                        } else { merged[k] = v }
                    case "$defs", "definitions":
                        break
                    default:
                        if JSONSchema.annotations.contains(k) { continue }
                        if merged[k] != nil && merged[k] != v { throw fail("\(path)/allOf/\(i)", "allOf combining \"\(k)\" is not supported") }
                        merged[k] = v
                    }
                }
            }
            // An additionalProperties schema holds for every property its own part does not
            // declare: for the other parts' properties, and for any more.
            var extraSchemas: [JSONValue] = []
            for part in [o] + parts.map(\.1) {
                guard let ap = part["additionalProperties"], ap.objectValue != nil else { continue }
                let own = part["properties"]?.objectValue ?? [:]
                var props = merged["properties"]?.objectValue ?? [:]
                for (k, v) in props where own[k] == nil { props[k] = .object(["allOf": .array([v, ap])]) }
                merged["properties"] = .object(props)
                extraSchemas.append(ap)
            }
            if !extraSchemas.isEmpty {
                merged["additionalProperties"] = extraSchemas.count == 1 ? extraSchemas[0] : .object(["allOf": .array(extraSchemas)])
            }
            if let allowed {
                let props = (merged["properties"]?.objectValue ?? [:]).filter { allowed.contains($0.key) }
                merged["properties"] = .object(props)
                merged["additionalProperties"] = .bool(false)
                for r in (merged["required"]?.arrayValue ?? []).compactMap(\.stringValue) where !allowed.contains(r) {
                    throw fail(path, "no object satisfies allOf: \"\(r)\" is required but additionalProperties: false excludes it")
                }
            }
            return merged
        }

        /// The schema a `$ref` points to, and the base URI inside it: within this schema's
        /// resources (its `$id`s resolved against their parents', and `$anchor`s); a JSON pointer
        /// after `#` walks from the resource.
        func resolve(_ ref: String, from path: String, base given: String? = nil) throws(ConstraintError) -> (schema: JSONValue, base: String) {
            let absolute = URI.resolve(ref, against: given ?? base)
            let hash = absolute.firstIndex(of: "#")
            let doc = hash.map { String(absolute[..<$0]) } ?? absolute
            let fragment = hash.map { String(absolute[absolute.index(after: $0)...]) } ?? ""
            guard let resource = resources.documents[doc] else {
                throw fail(path, "references to other documents are not supported: \(ref)")
            }
            if fragment.isEmpty { return (resource, doc) }
            if !fragment.hasPrefix("/") {
                guard let s = resources.anchors[doc + "#" + fragment] else { throw fail(path, "reference \(ref) points to nothing") }
                return (s, doc)
            }
            var node = resource
            for part in fragment.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
                let raw = String(part).split(separator: "~1", omittingEmptySubsequences: false).joined(separator: "/")
                    .split(separator: "~0", omittingEmptySubsequences: false).joined(separator: "~")
                let key = JSONSchema.percentDecoded(raw)
                guard let next = node[key] ?? Int(key).flatMap({ i in node.arrayValue.flatMap { i >= 0 && i < $0.count ? $0[i] : nil } }) else {
                    throw fail(path, "reference \(ref) points to nothing")
                }
                node = next
            }
            return (node, doc)
        }

        mutating func reference(_ ref: String, from path: String) throws(ConstraintError) -> Int {
            let key = URI.resolve(ref, against: base)
            if let r = refs[key] { return r }
            let (target, targetBase) = try resolve(ref, from: path)
            let r = b.declare(ref)
            refs[key] = r
            let saved = base
            base = targetBase
            defer { base = saved }
            b.define(r, [try value(target, path: ref)])
            return r
        }

        mutating func string(_ o: [String: JSONValue], path: String) throws(ConstraintError) -> [Symbol] {
            let minLength = try count(o["minLength"], "minLength", path) ?? 0
            let maxLength = try count(o["maxLength"], "maxLength", path)
            if let m = maxLength, m < minLength { throw fail(path, "maxLength is below minLength") }
            var formatNode: Regex.Node? = nil
            if let f = o["format"] {
                guard let name = f.stringValue else { throw fail(path, "format must be a string") }
                // Measuring without restrictions: format is an annotation (any string is valid).
                if !relaxed {
                    guard let re = JSONSchema.formats[name] else {
                        throw fail(path, "format \"\(name)\" is not supported (\(JSONSchema.formats.keys.sorted().joined(separator: ", ")) are)")
                    }
                    formatNode = try Regex.parse(re).0
                }
            }
            var patternNode: Regex.Node? = nil, anchoredStart = true, anchoredEnd = true
            if let p = o["pattern"] {
                guard let text = p.stringValue else { throw fail(path, "pattern must be a string") }
                (patternNode, anchoredStart, anchoredEnd) = try Regex.parse(text)
            }
            let lengths = o["minLength"] != nil || o["maxLength"] != nil
            let excluded = excludedStrings(o)
            if formatNode == nil && patternNode == nil && excluded.isEmpty { return [stringRule(min: minLength, max: maxLength)] }
            if let node = formatNode ?? patternNode, formatNode == nil || patternNode == nil, !lengths, excluded.isEmpty {
                let any = anyChar
                var out = GrammarBuilder.literal("\"")
                if !anchoredStart { out.append(b.star([any], "pattern-prefix")) }
                out += Regex.emit(node, b, json: true)
                if !anchoredEnd { out.append(b.star([any], "pattern-suffix")) }
                return out + GrammarBuilder.literal("\"")
            }
            // Lengths, or a format and a pattern: the automata's product (with a count of code
            // points), exact.
            var search: Regex.Node? = patternNode
            if let p = patternNode {
                let anyStar = Regex.Node.rep(.chars(ScalarSet.all), 0, nil)
                search = .seq((anchoredStart ? [] : [anyStar]) + [p] + (anchoredEnd ? [] : [anyStar]))
            }
            var automaton: Automaton? = nil
            switch (formatNode.flatMap { Automaton($0) }, search.flatMap { Automaton($0) }) {
            case (let f?, let s?): automaton = Automaton.product(f, s)
            case (let f?, nil): automaton = formatNode != nil && search == nil ? f : nil
            case (nil, let s?): automaton = formatNode == nil ? s : nil
            default: if formatNode == nil && search == nil { automaton = Automaton(.rep(.chars(ScalarSet.all), 0, nil)) }
            }
            if !excluded.isEmpty {
                // not of listed strings: times the automaton of every other string.
                guard let a = automaton, let without = Automaton.product(a, Automaton.excluding(excluded)) else {
                    throw fail(path, "not of these strings together with this format or pattern is too large")
                }
                automaton = without
            }
            // Deterministic where that stays small: one matcher stack per state, not one per
            // path through the pattern.
            automaton = automaton.map { $0.determinized() ?? $0 }
            if let a = automaton {
                var body: [Symbol]? = nil, tooLarge: ConstraintError? = nil
                do throws(ConstraintError) { body = try a.symbols(minLength: minLength, maxLength: maxLength, b, json: true) } catch { tooLarge = error }
                if tooLarge == nil {
                    guard let body else {
                        throw fail(path, "the schema admits no value: no string satisfies its \(formatNode != nil ? "format" : "pattern")\(patternNode != nil && formatNode != nil ? " and pattern" : "")\(lengths ? " within minLength/maxLength" : "")")
                    }
                    return GrammarBuilder.literal("\"") + body + GrammarBuilder.literal("\"")
                }
            }
            if formatNode != nil && patternNode != nil { throw fail(path, "format together with pattern is too large to intersect") }
            // Too large to count exactly: matches of the pattern alone (a match contains
            // itself), its repetitions bounded so that every one has an allowed length.
            guard let fit = Regex.bounded((formatNode ?? patternNode)!, minLength: minLength, maxLength: maxLength) else {
                throw fail(path, "no bounding of the \(o["format"] != nil ? "format" : "pattern")'s repetitions keeps its matches within minLength/maxLength")
            }
            return GrammarBuilder.literal("\"") + Regex.emit(fit, b, json: true) + GrammarBuilder.literal("\"")
        }

        func count(_ v: JSONValue?, _ name: String, _ path: String) throws(ConstraintError) -> Int? {
            guard let v else { return nil }
            guard let d = v.doubleValue, d >= 0, d == d.rounded(), d <= 100_000 else { throw fail(path, "\(name) must be a non-negative integer") }
            return Int(d)
        }

        /// Integers and numbers, with integer bounds where given, or multiples of an integer.
        mutating func number(_ o: [String: JSONValue], integer: Bool, path: String) throws(ConstraintError) -> [Symbol] {
            func bound(_ k: String) throws(ConstraintError) -> Double? {
                guard let v = o[k] else { return nil }
                if v.boolValue != nil { throw fail(path, "\(k) as a boolean (draft 4) is not supported") }
                guard let d = v.doubleValue, d.isFinite else { throw fail(path, "\(k) must be a number") }
                return d
            }
            var lo = try bound("minimum"), hi = try bound("maximum")
            var loExclusive = false, hiExclusive = false
            if let e = try bound("exclusiveMinimum"), lo == nil || e >= lo! { lo = e; loExclusive = true }
            if let e = try bound("exclusiveMaximum"), hi == nil || e <= hi! { hi = e; hiExclusive = true }
            if let m = o["multipleOf"] {
                guard let d = m.doubleValue, d > 0, d.isFinite else { throw fail(path, "multipleOf must be a positive number") }
                guard d == d.rounded(), d <= 1000 else {
                    throw fail(path, "multipleOf \(m.serialized): only integer divisors up to 1000 are supported")
                }
                if lo == nil && hi == nil { return multiples(of: Int(d)) }
                // With bounds: the automaton of the integers within them times the automaton
                // of the multiples.
                let l = lo.map { loExclusive ? ($0 + 1).rounded(.down) : $0.rounded(.up) }
                let hh = hi.map { hiExclusive ? ($0 - 1).rounded(.up) : $0.rounded(.down) }
                guard abs(l ?? 0) < 1e15, abs(hh ?? 0) < 1e15 else { throw fail(path, "bounds beyond ±10^15 are not supported") }
                if let a = l, let z = hh, a > z { throw fail(path, "no integer lies within the bounds") }
                let range = Regex.Node.alt(IntegerRange.sequences(l.map { Int($0) }, hh.map { Int($0) }).map { seq in
                    .seq(seq.map { set in .chars((0...255).filter { set.contains(UInt8($0)) }.map { UInt32($0)...UInt32($0) }) })
                })
                guard let ra = Automaton(range), let both = Automaton.product(ra, Automaton.multiples(of: Int(d))) else {
                    throw fail(path, "multipleOf with these bounds is too large")
                }
                guard let syms = try both.symbols(minLength: 0, maxLength: nil, b, json: false) else {
                    throw fail(path, "no multiple lies within the bounds")
                }
                return syms
            }
            if lo == nil && hi == nil { return numberSymbols(integer: integer) }
            if integer {
                // Integer bounds: round inwards.
                var l = lo.map { loExclusive ? ($0 + 1).rounded(.down) : $0.rounded(.up) }
                var h = hi.map { hiExclusive ? ($0 - 1).rounded(.up) : $0.rounded(.down) }
                if let x = l, x == x.rounded(), loExclusive, x - 1 != lo! { l = lo!.rounded(.down) + 1 }
                if let x = h, hiExclusive, x + 1 != hi! { h = hi!.rounded(.up) - 1 }
                guard abs(l ?? 0) < 1e15, abs(h ?? 0) < 1e15 else { throw fail(path, "bounds beyond ±10^15 are not supported") }
                let li = l.map { Int($0) }, hiI = h.map { Int($0) }
                if let a = li, let z = hiI, a > z { throw fail(path, "no integer lies within the bounds") }
                return [b.choice(IntegerRange.alternatives(li, hiI, b), "int-range")]
            }
            for (v, k) in [(lo, "minimum"), (hi, "maximum")] where v != nil && v! != v!.rounded() {
                throw fail(path, "\(k) \(v!) on a number: only integer bounds are supported")
            }
            guard abs(lo ?? 0) < 1e15, abs(hi ?? 0) < 1e15 else { throw fail(path, "bounds beyond ±10^15 are not supported") }
            if let a = lo, let z = hi, a > z || (a == z && (loExclusive || hiExclusive)) { throw fail(path, "no number lies within the bounds") }
            return [b.choice(NumberRange.alternatives(lo.map { Int($0) }, loExclusive, hi.map { Int($0) }, hiExclusive, b), "num-range")]
        }

        /// The integers divisible by `k`: decimal digits read through the remainders modulo k.
        mutating func multiples(of k: Int) -> [Symbol] {
            if k == 1 { return numberSymbols(integer: true) }
            let rem = (0..<k).map { _ in b.declare("multiple") }
            func step(_ r: Int, _ digits: ClosedRange<UInt8>) -> [[Symbol]] {
                var byTarget: [Int: ByteSet] = [:]
                for g in digits { byTarget[(10 * r + Int(g - 48)) % k, default: ByteSet()].insert(g) }
                return byTarget.keys.sorted().map { [.bytes(byTarget[$0]!), .rule(rem[$0])] }
            }
            for r in 0..<k { b.define(rem[r], step(r, 48...57) + (r == 0 ? [[]] : [])) }
            let nonzero = b.choice(step(0, 49...57), "multiple")
            return [b.choice([GrammarBuilder.literal("0"), [nonzero], GrammarBuilder.literal("-") + [nonzero]], "multiples")]
        }

        /// Object members: the declared ones in a fixed order (optional ones skippable), then
        /// more members where the schema allows them and declares none; the count of members,
        /// `dependentRequired` and the members already written followed through the order.
        mutating func object(_ o: [String: JSONValue], path: String) throws(ConstraintError) -> [Symbol] {
            guard o["properties"] == nil || o["properties"]?.objectValue != nil else { throw fail(path, "properties must be an object") }
            let props = o["properties"]?.objectValue ?? [:]
            let required = (o["required"]?.arrayValue ?? []).compactMap(\.stringValue)
            let additional = o["additionalProperties"]
            let minP = try count(o["minProperties"], "minProperties", path) ?? 0
            let maxP = try count(o["maxProperties"], "maxProperties", path)
            if let m = maxP, m < minP { throw fail(path, "maxProperties is below minProperties") }
            var patterns: [(String, JSONValue)] = []
            if let pp = o["patternProperties"] {
                guard let ppo = pp.objectValue else { throw fail(path, "patternProperties must be an object") }
                patterns = ppo.keys.sorted().map { ($0, ppo[$0]!) }
            }
            var dependencies: [String: [String]] = [:]
            if let dr = o["dependentRequired"] {
                guard let dro = dr.objectValue else { throw fail(path, "dependentRequired must be an object") }
                for (k, v) in dro {
                    guard let list = v.arrayValue?.compactMap(\.stringValue) else { throw fail(path, "dependentRequired values must be arrays of names") }
                    dependencies[k] = list.filter { $0 != k }
                }
            }
            let names = o["propertyNames"]
            // Does a name satisfy a string schema (a pattern, propertyNames)?
            var nameGrammars: [String: Grammar] = [:]
            func nameOK(_ schema: JSONValue, _ name: String) throws(ConstraintError) -> Bool {
                if schema == .bool(true) { return true }
                if schema == .bool(false) { return false }
                let key = schema.serialized
                if nameGrammars[key] == nil {
                    var ns = schema.objectValue ?? [:]
                    if ns["type"] == nil { ns["type"] = .string("string") }
                    do { nameGrammars[key] = try grammar(.object(ns), path: "\(path)/propertyNames") } catch {
                        if Compiler.isEmptiness(error) { return false }
                        throw error
                    }
                }
                return nameGrammars[key]!.matches(JSONValue.string(name).serialized)
            }
            func patternMatches(_ p: String, _ name: String) throws(ConstraintError) -> Bool {
                try nameOK(.object(["pattern": .string(p)]), name)
            }

            // The declared members, in generation's order.
            var order: [String] = []
            for r in required where !order.contains(r) { order.append(r) }
            for k in props.keys.sorted() where !order.contains(k) { order.append(k) }
            for (k, deps) in dependencies.sorted(by: { $0.key < $1.key }) {
                for d in [k] + deps where !order.contains(d) { order.append(d) }
            }
            struct Member { let key: String; var value: [Symbol]?; let required: Bool }
            var members: [Member] = []
            let ws = self.ws
            for k in order {
                var schema: JSONValue
                var allowed = true
                var matching: [(String, JSONValue)] = []
                for p in patterns where try patternMatches(p.0, k) { matching.append(p) }
                if let p = props[k] { schema = p }
                else if !matching.isEmpty { schema = .bool(true) }
                else if let a = additional { schema = a }
                else { schema = .bool(true) }
                for (_, ps) in matching where ps != .bool(true) && ps != .object([:]) {
                    schema = schema == .bool(true) || schema == .object([:]) ? ps : .object(["allOf": .array([schema, ps])])
                }
                if schema == .bool(false) { allowed = false }
                if let n = names, try !nameOK(n, k) { allowed = false }
                var v: [Symbol]? = nil
                if allowed {
                    do {
                        v = GrammarBuilder.literal(JSONValue.string(k).serialized) + [ws] + GrammarBuilder.literal(":") + [ws]
                            + (try value(schema, path: "\(path)/properties/\(k)"))
                    } catch {
                        // A property no value satisfies cannot be present.
                        guard Compiler.isEmptiness(error) else { throw error }
                    }
                }
                if v == nil && required.contains(k) {
                    throw fail(path, "no object satisfies the schema: required property \"\(k)\" admits no value or name")
                }
                members.append(Member(key: k, value: v, required: required.contains(k)))
            }

            // More members: only where none is declared (their names could otherwise repeat a
            // declared one).
            var extra: [Symbol]? = nil
            if members.isEmpty && additional != .bool(false) || (members.isEmpty && !patterns.isEmpty) {
                var key: [Symbol]? = nil
                var valueSchema: JSONValue = additional ?? .bool(true)
                if !patterns.isEmpty {
                    // Names matching one of the patterns; each value satisfies every pattern's
                    // schema (a name may match several).
                    if let n = names, n != .bool(true) { throw fail(path, "patternProperties together with propertyNames is not supported") }
                    let schemas = patterns.map(\.1).filter { $0 != .bool(true) && $0 != .object([:]) }
                    valueSchema = schemas.isEmpty ? .bool(true) : schemas.count == 1 ? schemas[0] : .object(["allOf": .array(schemas)])
                    var alts: [[Symbol]] = []
                    for (p, _) in patterns { alts.append(try string(["pattern": .string(p)], path: "\(path)/patternProperties")) }
                    key = [b.choice(alts, "pattern-name")]
                    if additional != .bool(false) && relaxed {
                        // Names outside the patterns (with additionalProperties' schema): not
                        // generated, accepted when measuring.
                        key = [b.choice(alts + [[stringRule(min: 0, max: nil)]], "name")]
                    }
                } else if let n = names {
                    if n == .bool(false) { key = nil } else {
                        var ns = n.objectValue ?? [:]
                        let t = ns["type"]
                        let names = t.flatMap { $0.stringValue.map { [$0] } ?? $0.arrayValue?.compactMap(\.stringValue) } ?? ["string"]
                        ns["type"] = names.contains("string") ? .string("string") : .array([])
                        do { key = try value(.object(ns), path: "\(path)/propertyNames") } catch {
                            guard Compiler.isEmptiness(error) else { throw error }
                            key = nil
                        }
                    }
                } else {
                    key = [stringRule(min: 0, max: nil)]
                }
                if let key {
                    do { extra = key + [ws] + GrammarBuilder.literal(":") + [ws] + (try value(valueSchema, path: "\(path)/additionalProperties")) } catch {
                        guard Compiler.isEmptiness(error) else { throw error }
                    }
                }
                if extra != nil && minP >= 2 {
                    throw fail(path, "minProperties \(minP) with no declared properties is not supported (generated names could repeat)")
                }
            }
            // Measuring without restrictions: more members beside declared ones too.
            // (Names matching a pattern with that pattern's schema alone, names matching none with
            // additionalProperties'.)
            var relaxedExtra: [Symbol]? = nil
            if relaxed && (!members.isEmpty || !patterns.isEmpty) && names == nil {
                var alts: [[Symbol]] = []
                for (p, ps) in patterns where ps != .bool(false) {
                    alts.append(try string(["pattern": .string(p)], path: path) + [ws] + GrammarBuilder.literal(":") + [ws] + (try value(ps, path: path)))
                }
                if additional != .bool(false) {
                    alts.append([stringRule(min: 0, max: nil), ws] + GrammarBuilder.literal(":") + [ws]
                                + (try value(additional ?? .bool(true), path: "\(path)/additionalProperties")))
                }
                if !alts.isEmpty { relaxedExtra = [b.choice(alts, "member")] }
            }

            let comma = [ws] + GrammarBuilder.literal(",") + [ws]
            let relevant = Set(dependencies.keys).union(dependencies.values.flatMap { $0 })
            let index = Dictionary(uniqueKeysWithValues: members.enumerated().map { ($1.key, $0) })
            let countCap = Swift.max(minP, maxP ?? 0, 1)
            var memo: [String: Symbol?] = [:]
            var budget = 20_000
            // rest(i, n, taken): members i… given n written (capped) and the relevant ones taken.
            func rest(_ i: Int, _ n: Int, _ taken: Set<String>) throws(ConstraintError) -> Symbol? {
                let key = "\(i) \(n) \(taken.sorted())"
                if let m = memo[key] { return m }
                budget -= 1
                if budget < 0 { throw fail(path, "the object's combination of properties, counts and dependencies is too large") }
                let r = b.declare("members")
                memo[key] = .rule(r)
                let sep = n == 0 ? [] : comma
                var alts: [[Symbol]] = []
                if i == members.count {
                    let need = Swift.max(0, minP - n)
                    let room = maxP.map { $0 - n }
                    if need == 0 { alts.append([]) }
                    if let e = extra, room ?? 1 > 0 {
                        if n == 0 {
                            alts.append(e + b.repeated(comma + e, min: Swift.max(0, need - 1), max: room.map { $0 - 1 }, "members"))
                        } else if need > 0 || room ?? 1 > 0 {
                            alts.append(b.repeated(comma + e, min: Swift.max(1, need), max: room, "members"))
                        }
                    }
                } else {
                    let m = members[i]
                    let owed = taken.contains { dependencies[$0]?.contains(m.key) == true }
                    let depsOK = (dependencies[m.key] ?? []).allSatisfy { d in
                        guard let j = index[d], members[j].value != nil else { return false }
                        return j > i || taken.contains(d)
                    }
                    if let v = m.value, depsOK, maxP.map({ n < $0 }) ?? true {
                        let t = relevant.contains(m.key) ? taken.union([m.key]) : taken
                        if let next = try rest(i + 1, Swift.min(n + 1, countCap), t) { alts.append(sep + v + [next]) }
                    }
                    if !m.required && !owed, let next = try rest(i + 1, n, taken) { alts.append([next]) }
                }
                if let e = relaxedExtra, let next = try rest(i, Swift.min(n + 1, countCap), taken) { alts.append(sep + e + [next]) }
                if alts.isEmpty { memo[key] = .some(nil); return nil }
                b.define(r, alts)
                return .rule(r)
            }
            guard let body = try rest(0, 0, []) else {
                throw fail(path, "no object satisfies the schema (required properties, counts and dependencies contradict)")
            }
            return GrammarBuilder.literal("{") + [ws, body, ws] + GrammarBuilder.literal("}")
        }

        mutating func array(_ o: [String: JSONValue], path: String) throws(ConstraintError) -> [Symbol] {
            let prefixAll = o["prefixItems"]?.arrayValue ?? []
            if o["prefixItems"] != nil && o["prefixItems"]?.arrayValue == nil { throw fail(path, "prefixItems must be an array") }
            let minItems = try count(o["minItems"], "minItems", path) ?? 0
            var maxItems = try count(o["maxItems"], "maxItems", path)
            if let m = maxItems, m < minItems { throw fail(path, "maxItems is below minItems") }
            var itemSchema: JSONValue? = .bool(true)
            if let it = o["items"] {
                if it.boolValue == false { itemSchema = nil } else if it.arrayValue != nil {
                    throw fail(path, "items as an array (draft 4 tuples) is not supported: use prefixItems")
                } else { itemSchema = it }
            }
            if itemSchema == nil { maxItems = Swift.min(maxItems ?? prefixAll.count, prefixAll.count) }
            // A prefix item no value satisfies ends the array before it.
            if let i = prefixAll.firstIndex(of: .bool(false)) { maxItems = Swift.min(maxItems ?? i, i) }
            let prefix = Array(prefixAll.prefix(maxItems ?? prefixAll.count))
            if minItems > (maxItems ?? Int.max) { throw fail(path, "no array length satisfies the bounds") }
            let ws = self.ws
            let comma = [ws] + GrammarBuilder.literal(",") + [ws]
            let open = GrammarBuilder.literal("[") + [ws], close = [ws] + GrammarBuilder.literal("]")

            if o["uniqueItems"]?.boolValue == true && (maxItems ?? 2) > 1 {
                return open + (try uniqueElements(o, itemSchema, prefix: prefix, minItems: minItems, maxItems: maxItems, comma: comma, path: path)) + close
            }
            if let c = o["contains"] {
                return open + (try containing(c, o, itemSchema, prefix: prefix, minItems: minItems, maxItems: maxItems, comma: comma, path: path)) + close
            }
            let items = try itemSchema.map { s throws(ConstraintError) in try value(s, path: "\(path)/items") }
            let prefixSyms = try prefix.enumerated().map { (i, s) throws(ConstraintError) in try value(s, path: "\(path)/prefixItems/\(i)") }
            func element(_ i: Int) -> [Symbol] { i < prefixSyms.count ? prefixSyms[i] : items! }
            // tail(i): elements i… given that i elements are written (i ≥ 1).
            func tail(_ i: Int) -> [Symbol] {
                if let m = maxItems, i >= m { return [] }
                if i >= prefixSyms.count {
                    guard let it = items else { return [] }
                    return b.repeated(comma + it, min: Swift.max(0, minItems - i), max: maxItems.map { $0 - i }, "items")
                }
                let take = comma + element(i) + tail(i + 1)
                return [i < minItems ? b.choice([take], "item") : b.optional(take, "item")]
            }
            if maxItems == 0 || (prefixSyms.isEmpty && items == nil) { return open + GrammarBuilder.literal("]") }
            let body = element(0) + tail(1)
            let inner: [Symbol] = minItems == 0 ? [b.optional(body, "items")] : body
            return open + inner + close
        }

        /// `uniqueItems: true` over a finite set of item values: distinct values, in the order of
        /// the set (any order when measuring without restrictions is not attempted: the order
        /// is a generation restriction).
        mutating func uniqueElements(_ o: [String: JSONValue], _ itemSchema: JSONValue?, prefix: [JSONValue], minItems: Int, maxItems: Int?,
                                     comma: [Symbol], path: String) throws(ConstraintError) -> [Symbol] {
            if o["contains"] != nil { throw fail(path, "uniqueItems together with contains is not supported") }
            if !prefix.isEmpty { throw fail(path, "uniqueItems together with prefixItems is not supported") }
            guard let s = itemSchema, let r = resolved(s) else { return [] }
            var set: [JSONValue]
            if let v = values(r) { set = v } else {
                let k = kinds(r)
                guard k.isSubset(of: [.boolean, .null]), r.objectValue.map({ !Compiler.constrains($0.filter { $0.key != "type" }) }) ?? false else {
                    throw fail(path, "uniqueItems: true is supported for items with a finite set of values (enum, const, boolean, null), not for these items")
                }
                set = (k.contains(.boolean) ? [JSONValue.bool(false), .bool(true)] : []) + (k.contains(.null) ? [.null] : [])
            }
            var distinct: [JSONValue] = []
            for v in admitted(r, set, path: "\(path)/items") where !distinct.contains(v) { distinct.append(v) }
            let hi = Swift.min(maxItems ?? distinct.count, distinct.count)
            if minItems > hi { throw fail(path, "no array of distinct items reaches minItems") }
            let lits = distinct.map { v -> [Symbol] in
                var t = ""
                JSONSchema.spell(v, schema: r, root: rootSchema, into: &t, depth: 0)
                return GrammarBuilder.literal(t)
            }
            // after(j, n): more values after value j with n written.
            var memo: [String: Symbol] = [:]
            func after(_ j: Int, _ n: Int) -> [Symbol] {
                let key = "\(j) \(n)"
                if let m = memo[key] { return [m] }
                var alts: [[Symbol]] = n >= minItems ? [[]] : []
                if n < hi {
                    for k in (j + 1)..<lits.count where lits.count - k >= minItems - n { alts.append(comma + lits[k] + after(k, n + 1)) }
                }
                let sym = b.choice(alts, "unique")
                memo[key] = sym
                return [sym]
            }
            var alts: [[Symbol]] = minItems == 0 ? [[]] : []
            if hi > 0 { for k in 0..<lits.count where lits.count - k >= minItems { alts.append(lits[k] + after(k, 1)) } }
            return [b.choice(alts, "unique")]
        }

        /// `contains`: at least minContains (default 1) and at most maxContains elements valid
        /// for it, anywhere in the array.
        mutating func containing(_ c: JSONValue, _ o: [String: JSONValue], _ itemSchema: JSONValue?, prefix: [JSONValue], minItems: Int,
                                 maxItems: Int?, comma: [Symbol], path: String) throws(ConstraintError) -> [Symbol] {
            if !prefix.isEmpty { throw fail(path, "contains together with prefixItems is not supported") }
            let minC = try count(o["minContains"], "minContains", path) ?? 1
            var maxC = try count(o["maxContains"], "maxContains", path)
            if let m = maxC, m < minC { throw fail(path, "maxContains is below minContains") }
            if let m = maxC, let mi = maxItems, m >= mi { maxC = nil }
            let items = itemSchema ?? .bool(false)
            // Elements valid for contains, and (with maxContains) elements that are not.
            var hit: [Symbol]? = nil
            do { hit = try value(items == .bool(true) ? c : .object(["allOf": .array([items, c])]), path: "\(path)/contains") } catch {
                guard Compiler.isEmptiness(error) else { throw error }
            }
            var miss: [Symbol]? = nil
            if itemSchema != nil {
                if maxC != nil {
                    do {
                        let not = JSONValue.object(["not": c])
                        miss = try value(items == .bool(true) ? not : .object(["allOf": .array([items, not])]), path: "\(path)/items")
                    } catch {
                        throw fail(path, "maxContains needs the elements not valid for contains as a grammar: \(error.message)")
                    }
                } else { miss = try value(items, path: "\(path)/items") }
            }
            let cap = maxC ?? minC
            let nCap = Swift.max(minItems, maxItems ?? 0)
            if nCap > 256 || (cap + 1) * (nCap + 1) > 4096 { throw fail(path, "contains with counts this large is not supported") }
            var memo: [String: Symbol?] = [:]
            // next(n, k): elements after n written (capped), k of them valid for contains (capped).
            func next(_ n: Int, _ k: Int) -> Symbol? {
                let key = "\(n) \(k)"
                if let m = memo[key] { return m }
                let r = b.declare("contains")
                memo[key] = .rule(r)
                let sep = n == 0 ? [] : comma
                var alts: [[Symbol]] = []
                if n >= minItems && k >= minC { alts.append([]) }
                if maxItems.map({ n < $0 }) ?? true {
                    let n1 = maxItems == nil ? Swift.min(n + 1, Swift.max(minItems, 1)) : n + 1
                    if let h = hit, maxC.map({ k < $0 }) ?? true, let t = next(n1, Swift.min(k + 1, cap)) { alts.append(sep + h + [t]) }
                    if let m = miss, let t = next(n1, k) { alts.append(sep + m + [t]) }
                }
                if alts.isEmpty { memo[key] = .some(nil); return nil }
                b.define(r, alts)
                return .rule(r)
            }
            guard let body = next(0, 0) else { throw fail(path, "no array satisfies contains with these counts") }
            return [body]
        }
    }

    /// Formats as patterns over the format's common subset (see the type's documentation).
    static let formats: [String: String] = {
        let date = "[1-9][0-9]{3}-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"
        let time = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
        let octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
        // A dot-atom local part @ labels: ASCII letters, digits and "_%+-" in the local part's
        // atoms (no leading, trailing or double dot); a label is letters, digits and inner
        // hyphens (RFC 1035), at least two of them.
        let label = "[A-Za-z0-9]([A-Za-z0-9-]{0,29}[A-Za-z0-9])?"
        let email = "[A-Za-z0-9][A-Za-z0-9_%+-]{0,39}(\\.[A-Za-z0-9_%+-]{1,20}){0,3}@" + label + "(\\." + label + "){1,4}"
        return ["date": "^" + date + "$", "time": "^" + time + "$", "date-time": "^" + date + "[Tt]" + time + "$",
                "uuid": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
                "email": "^" + email + "$", "ipv4": "^" + octet + "(\\." + octet + "){3}$"]
    }()
}

/// Integer ranges as digit patterns.
enum IntegerRange {
    /// Alternatives matching exactly the integers in lo…hi (nil: unbounded; at most 16 digits).
    static func alternatives(_ lo: Int?, _ hi: Int?, _ b: GrammarBuilder) -> [[GrammarBuilder.Symbol]] {
        sequences(lo, hi).map { $0.map { .bytes($0) } }
    }

    /// The same as byte-set sequences ("-" included).
    static func sequences(_ lo: Int?, _ hi: Int?) -> [[ByteSet]] {
        let cap = 9_999_999_999_999_999
        var alts: [[ByteSet]] = []
        let l = lo ?? -cap, h = hi ?? cap
        if l <= -1 {
            // Negative part: "-" then |x| in max(1, -h)…-l.
            for seq in nonNegative(max(1, -h), -l) { alts.append([ByteSet(byte: 0x2D)] + seq) }
        }
        if h >= 0 {
            alts += nonNegative(max(0, l), h)
        }
        return alts
    }

    /// Byte-set sequences for the decimal forms (no leading zeros) of a…z, 0 ≤ a ≤ z.
    static func nonNegative(_ a: Int, _ z: Int) -> [[ByteSet]] {
        var out: [[ByteSet]] = []
        var lo = a
        while lo <= z {
            let digits = String(lo).count
            let top = min(z, digits >= 16 ? z : Int(pow10(digits)) - 1)
            out += sameLength(Array(String(lo).utf8), Array(String(top).utf8))
            if top == z { break }
            lo = top + 1
        }
        return out
    }

    static func pow10(_ n: Int) -> Double {
        var v = 1.0
        for _ in 0..<n { v *= 10 }
        return v
    }

    /// Sequences for the numbers from `a` to `b`, both of the same number of digits.
    static func sameLength(_ a: [UInt8], _ b: [UInt8]) -> [[ByteSet]] {
        let n = a.count
        if n == 0 { return [[]] }
        if a == b { return [a.map { ByteSet(byte: $0) }] }
        if a[0] == b[0] { return sameLength(Array(a[1...]), Array(b[1...])).map { [ByteSet(byte: a[0])] + $0 } }
        let zeros = [UInt8](repeating: 48, count: n - 1), nines = [UInt8](repeating: 57, count: n - 1)
        var out: [[ByteSet]] = []
        // a[0] followed by a[1...]…9…9
        if Array(a[1...]) == zeros {
            // a starts a whole block: merge it with the middle.
        }
        var firstFull = a[0]
        if Array(a[1...]) != zeros {
            out += sameLength(Array(a[1...]), nines).map { [ByteSet(byte: a[0])] + $0 }
            firstFull = a[0] + 1
        }
        var lastFull = b[0]
        var lastPart: [[ByteSet]] = []
        if Array(b[1...]) != nines {
            lastPart = sameLength(zeros, Array(b[1...])).map { [ByteSet(byte: b[0])] + $0 }
            lastFull = b[0] - 1
        }
        if firstFull <= lastFull {
            out.append([ByteSet(firstFull...lastFull)] + Array(repeating: ByteSet(48...57), count: n - 1))
        }
        return out + lastPart
    }
}

/// Numbers (with optional fraction) between integer bounds.
enum NumberRange {
    /// Alternatives for the numbers x with lo ≤ x ≤ hi (< with the exclusive flags; nil:
    /// unbounded): zero, the positive ones, and "-" before the magnitudes of the negative ones.
    static func alternatives(_ lo: Int?, _ loExclusive: Bool, _ hi: Int?, _ hiExclusive: Bool,
                             _ b: GrammarBuilder) -> [[GrammarBuilder.Symbol]] {
        var alts: [[GrammarBuilder.Symbol]] = []
        let zeroAbove = lo == nil || lo! < 0 || (lo! == 0 && !loExclusive)
        let zeroBelow = hi == nil || hi! > 0 || (hi! == 0 && !hiExclusive)
        if zeroAbove && zeroBelow {
            let zeros = b.optional(GrammarBuilder.literal(".") + b.repeated(GrammarBuilder.literal("0"), min: 1, max: 16, "zeros"), "zeros")
            alts.append(GrammarBuilder.literal("0") + [zeros])
        }
        if hi == nil || hi! > 0 {
            alts += alternatives(lo.map { $0 > 0 ? $0 : 0 }, lo.map { $0 > 0 ? loExclusive : true } ?? true, hi, hiExclusive, b, positiveOnly: true)
        }
        if lo == nil || lo! < 0 {
            // -x for x < 0: magnitudes above max(-hi, 0) and up to -lo.
            let mLo: Int? = hi.map { $0 < 0 ? -$0 : 0 }
            let mLoExclusive = hi.map { $0 < 0 ? hiExclusive : true } ?? true
            alts += alternatives(mLo, mLoExclusive, lo.map { -$0 }, loExclusive, b, positiveOnly: true)
                .map { GrammarBuilder.literal("-") + $0 }
        }
        return alts
    }

    /// Positive magnitudes m (m > 0) with lo ≤ m ≤ hi (exclusive flags as given; lo nil: > 0).
    static func alternatives(_ lo: Int?, _ loExclusive: Bool, _ hi: Int?, _ hiExclusive: Bool,
                             _ b: GrammarBuilder, positiveOnly: Bool) -> [[GrammarBuilder.Symbol]] {
        // At most 15 significant digits in all (integer part included), so that a double reads
        // back a value on the same side of every bound (1.0000000000000001 would read as 1).
        let digit = GrammarBuilder.Symbol.bytes(ByteSet(48...57))
        let zeros = b.optional(GrammarBuilder.literal(".") + b.repeated(GrammarBuilder.literal("0"), min: 1, max: 16, "zeros"), "zeros")
        func room(_ intPart: [GrammarBuilder.Symbol]) -> Int { Swift.max(1, 15 - intPart.count) }
        func frac(_ n: Int) -> GrammarBuilder.Symbol { b.optional(GrammarBuilder.literal(".") + b.repeated([digit], min: 1, max: n, "frac"), "frac") }
        func nonzero(_ n: Int) -> [GrammarBuilder.Symbol] {
            // Zeros, then a nonzero digit, within n fraction digits.
            [b.choice((1...n).map { k in GrammarBuilder.literal(".") + b.repeated([digit], min: k - 1, max: k - 1, "frac") + [.bytes(ByteSet(49...57))] }, "nonzero")]
        }
        func ints(_ a: Int, _ z: Int?) -> [[GrammarBuilder.Symbol]] {
            if let z, a > z { return [] }
            return IntegerRange.alternatives(a, z, b)
        }
        var alts: [[GrammarBuilder.Symbol]] = []
        let l = max(lo ?? 0, 0)
        // Integer part l: m > 0 needs a nonzero fraction when l == 0 or the bound is exclusive.
        let lExclusive = lo == nil || lo! <= 0 || loExclusive
        if let h = hi {
            if l > h { return [] }
            if l == h {
                // Only the value l itself (inclusive both sides, l > 0).
                if !lExclusive && !hiExclusive { alts += ints(l, l).map { $0 + [zeros] } }
                return alts
            }
            alts += ints(l, l).map { $0 + (lExclusive ? nonzero(room($0)) : [frac(room($0))]) }
            if l + 1 <= h - 1 { alts += ints(l + 1, h - 1).map { $0 + [frac(room($0))] } }
            if !hiExclusive { alts += ints(h, h).map { $0 + [zeros] } }
        } else {
            alts += ints(l, l).map { $0 + (lExclusive ? nonzero(room($0)) : [frac(room($0))]) }
            alts += ints(l + 1, nil).map { $0 + [frac(room($0))] }
        }
        return alts
    }
}

extension JSONSchema {
    /// A schema's resources: every subschema with an `$id` by its absolute URI (resolved against
    /// the enclosing one's), the root by its own, and `$anchor`s as URI#name.
    struct Resources: Sendable {
        var documents: [String: JSONValue] = [:]
        var anchors: [String: JSONValue] = [:]
        let rootBase: String

        init(_ root: JSONValue) {
            rootBase = root["$id"]?.stringValue.map { URI.withoutFragment(URI.resolve($0, against: "")) } ?? ""
            documents[rootBase] = root
            walk(root, base: rootBase, depth: 0)
        }

        private mutating func walk(_ s: JSONValue, base: String, depth: Int) {
            guard depth < 64 else { return }
            switch s {
            case .object(let o):
                var b = base
                if let id = o["$id"]?.stringValue, depth > 0 {
                    b = URI.withoutFragment(URI.resolve(id, against: base))
                    if documents[b] == nil { documents[b] = s }
                }
                if let a = o["$anchor"]?.stringValue, anchors[b + "#" + a] == nil { anchors[b + "#" + a] = s }
                for k in o.keys.sorted() where !["enum", "const", "default", "examples"].contains(k) { walk(o[k]!, base: b, depth: depth + 1) }
            case .array(let a):
                for x in a { walk(x, base: base, depth: depth + 1) }
            default: break
            }
        }
    }

    /// URI references resolved against a base (RFC 3986's rules, for the forms schemas use).
    enum URI {
        /// `ref` resolved against `base`.
        static func resolve(_ ref: String, against base: String) -> String {
            if let colon = ref.firstIndex(of: ":"), !ref[..<colon].contains(where: { "/?#".contains($0) }) { return normalized(ref) }
            let b = withoutFragment(base)
            if ref.hasPrefix("#") { return b + ref }
            if ref.isEmpty { return b }
            if ref.hasPrefix("//") { return (b.firstIndex(of: ":").map { String(b[...$0]) } ?? "") + ref }
            if ref.hasPrefix("/") {
                // scheme://authority of the base, then the path.
                let chars = Array(b)
                if let i = (0..<Swift.max(0, chars.count - 2)).first(where: { chars[$0] == ":" && chars[$0 + 1] == "/" && chars[$0 + 2] == "/" }) {
                    let authorityEnd = (i + 3..<chars.count).first { chars[$0] == "/" } ?? chars.count
                    return normalized(String(chars[..<authorityEnd]) + ref)
                }
                return normalized(ref)
            }
            // A relative path: beside the base's last segment.
            guard let slash = b.lastIndex(of: "/") else { return normalized(ref) }
            return normalized(String(b[...slash]) + ref)
        }

        static func withoutFragment(_ u: String) -> String { u.firstIndex(of: "#").map { String(u[..<$0]) } ?? u }

        /// `.` and `..` segments of the path removed.
        static func normalized(_ u: String) -> String {
            guard u.contains("/.") || u.hasPrefix(".") else { return u }
            let hash = u.firstIndex(of: "#")
            let path = hash.map { String(u[..<$0]) } ?? u
            let fragment = hash.map { String(u[$0...]) } ?? ""
            var out: [Substring] = []
            let parts = path.split(separator: "/", omittingEmptySubsequences: false)
            for (i, p) in parts.enumerated() {
                if p == "." { if i == parts.count - 1 { out.append("") }; continue }
                if p == ".." {
                    if out.count > 1 { out.removeLast() }
                    if i == parts.count - 1 { out.append("") }
                    continue
                }
                out.append(p)
            }
            return out.joined(separator: "/") + fragment
        }
    }

    /// `%XX` escapes in a JSON pointer taken from a URI fragment, decoded (invalid ones kept).
    static func percentDecoded(_ s: String) -> String {
        guard s.contains("%") else { return s }
        var out: [UInt8] = []
        let bytes = Array(s.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0x25, i + 2 < bytes.count, let v = UInt8(String(decoding: bytes[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                out.append(v)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
