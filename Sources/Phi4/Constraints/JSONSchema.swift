// JSON Schema compiled to a grammar whose every match is a valid instance.

/// Compiles a JSON Schema to a ``Grammar`` of the JSON texts that are valid instances.
///
/// Supported: `type` (one or an array of them; `null` too), `properties`, `required`,
/// `additionalProperties` (false, true or a schema), `items` (a schema or false), `prefixItems`,
/// `minItems` / `maxItems`, `enum`, `const`, `anyOf`, `oneOf`, `allOf` of object schemas, `$ref`
/// to `#`, `#/$defs/…` and `#/definitions/…` (recursive too), string `minLength` / `maxLength`
/// (code points), `pattern` (a search, as JSON Schema defines it; the ``Regex`` subset; with
/// lengths too, the output is a match of the pattern alone whose open repetitions are bounded to
/// fit them) and
/// `format` (date, time, date-time, uuid, email), integer and number `minimum` / `maximum` /
/// `exclusiveMinimum` / `exclusiveMaximum` with integer bounds. Annotations (`title`,
/// `description`, `default`, `examples`, `$schema`, `$id`, `$comment`, `deprecated`,
/// `readOnly`, `writeOnly`) are ignored; any other keyword is an error naming it.
///
/// What is generated (every output validates; some valid instances are never produced): for a
/// schema without `type`, values of the kind its keywords are about (objects for `properties`,
/// `additionalProperties`, `required`; arrays for `items`, `prefixItems`, `minItems`, `maxItems`;
/// strings; numbers), any value when it has none;
/// properties in a fixed order (the `required` ones in its order, then the others in name
/// order), each at most once; no properties beyond the declared ones when some are declared
/// (additional ones are allowed, not required); whitespace between tokens at most 16
/// characters; strings with `\uXXXX` escapes only outside the surrogates (so lengths count
/// code points as validators do); integers of at most 16 digits; numbers with at most 16
/// fraction digits and no exponent when bounded. `oneOf` is generated as `anyOf`: its branches
/// should not overlap.
public enum JSONSchema {
    /// Compiles the schema given as JSON text.
    public static func compile(_ schemaText: String) throws(ConstraintError) -> Grammar {
        let schema: JSONValue
        do { schema = try JSONParser.parse(schemaText) } catch { throw ConstraintError("the schema is not valid JSON: \(error)") }
        var c = Compiler(root: schema)
        // No whitespace around the value: once it is closed the output is complete.
        let value = try c.value(schema, path: "#")
        let root = c.b.rule("root", [value])
        return try c.b.build(root: root)
    }

    static let annotations: Set<String> = ["title", "description", "default", "examples", "$schema", "$id", "$comment",
                                           "deprecated", "readOnly", "writeOnly", "$anchor", "id"]

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

    struct Compiler {
        let rootSchema: JSONValue
        let b: GrammarBuilder
        var refs: [String: Int] = [:]
        lazy var ws: GrammarBuilder.Symbol = {
            let w = GrammarBuilder.Symbol.bytes({ var s = ByteSet(); for c in [0x20, 0x09, 0x0A] as [UInt8] { s.insert(c) }; return s }())
            return b.choice([b.repeated([w], min: 0, max: 16, "ws")], "ws")
        }()
        lazy var anyChar: GrammarBuilder.Symbol = {
            // One string character: unescaped, or an escape; \u outside the surrogates.
            var alts: [[GrammarBuilder.Symbol]] = [[b.scalarClass(ScalarSet.subtract(ScalarSet.all, [0...0x1F, 0x22...0x22, 0x5C...0x5C]), "str-plain")]]
            var simple = ByteSet()
            for c in "\"\\/bfnrt".utf8 { simple.insert(c) }
            alts.append([.bytes(ByteSet(byte: 0x5C)), .bytes(simple)])
            let hexd = GrammarBuilder.Symbol.bytes({ var s = ByteSet(48...57); for c in 65...70 as ClosedRange<UInt8> { s.insert(c) }; for c in 97...102 as ClosedRange<UInt8> { s.insert(c) }; return s }())
            var nonD = ByteSet(48...57)
            for c in "abcefABCEF".utf8 { nonD.insert(c) }
            var d = ByteSet(); d.insert(0x64); d.insert(0x44)
            alts.append(GrammarBuilder.literal("\\u") + [.bytes(nonD), hexd, hexd, hexd])
            alts.append(GrammarBuilder.literal("\\u") + [.bytes(d), .bytes(ByteSet(48...55)), hexd, hexd])
            return b.choice(alts, "str-char")
        }()
        lazy var anyValue: GrammarBuilder.Symbol = makeAnyValue()

        init(root: JSONValue, builder: GrammarBuilder = GrammarBuilder()) {
            rootSchema = root
            b = builder
        }

        mutating func makeAnyValue() -> GrammarBuilder.Symbol {
            let value = b.declare("value")
            let ws = self.ws
            let string = stringRule(min: 0, max: nil)
            let number = b.choice([numberSymbols(integer: false)], "number")
            let member = [string, ws] + GrammarBuilder.literal(":") + [ws, .rule(value)]
            let members = member + [b.star([ws] + GrammarBuilder.literal(",") + [ws] + member, "members")]
            let object = GrammarBuilder.literal("{") + [ws, b.optional(members + [ws], "members-opt")] + GrammarBuilder.literal("}")
            let elements = [GrammarBuilder.Symbol.rule(value)] + [b.star([ws] + GrammarBuilder.literal(",") + [ws, .rule(value)], "elements")]
            let array = GrammarBuilder.literal("[") + [ws, b.optional(elements + [ws], "elements-opt")] + GrammarBuilder.literal("]")
            b.define(value, [object, array, [string], [number], GrammarBuilder.literal("true"), GrammarBuilder.literal("false"),
                             GrammarBuilder.literal("null")])
            return .rule(value)
        }

        mutating func stringRule(min: Int, max: Int?) -> GrammarBuilder.Symbol {
            let c = anyChar
            return b.choice([GrammarBuilder.literal("\"") + b.repeated([c], min: min, max: max, "chars") + GrammarBuilder.literal("\"")], "string")
        }

        /// `-?(0|[1-9][0-9]{0,15})`, with a fraction and exponent for numbers.
        mutating func numberSymbols(integer: Bool) -> [GrammarBuilder.Symbol] {
            let digit = GrammarBuilder.Symbol.bytes(ByteSet(48...57))
            let intPart = b.choice([GrammarBuilder.literal("0"), [.bytes(ByteSet(49...57))] + b.repeated([digit], min: 0, max: 15, "digits")], "int")
            var out = [b.optional(GrammarBuilder.literal("-"), "sign"), intPart]
            if !integer {
                out.append(b.optional(GrammarBuilder.literal(".") + b.repeated([digit], min: 1, max: 16, "frac"), "frac"))
                var e = ByteSet(); e.insert(0x65); e.insert(0x45)
                var sign = ByteSet(); sign.insert(0x2B); sign.insert(0x2D)
                out.append(b.optional([.bytes(e), b.optional([.bytes(sign)], "exp-sign")] + b.repeated([digit], min: 1, max: 3, "exp"), "exp"))
            }
            return out
        }

        func fail(_ path: String, _ m: String) -> ConstraintError { ConstraintError("schema at \(path): \(m)") }

        /// The symbols of a valid instance of `s`.
        mutating func value(_ s: JSONValue, path: String) throws(ConstraintError) -> [GrammarBuilder.Symbol] {
            if let v = s.boolValue {
                if v { return [anyValue] }
                throw fail(path, "the schema false admits no value")
            }
            guard let o = s.objectValue else { throw fail(path, "a schema must be an object or a boolean") }
            let known: Set<String> = ["type", "properties", "required", "additionalProperties", "items", "prefixItems",
                                      "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs",
                                      "definitions", "minLength", "maxLength", "pattern", "format", "minimum", "maximum",
                                      "exclusiveMinimum", "exclusiveMaximum", "strict", "name"]
            for k in o.keys.sorted() where !known.contains(k) && !JSONSchema.annotations.contains(k) {
                throw fail(path, "the keyword \"\(k)\" is not supported")
            }
            if let ref = o["$ref"]?.stringValue {
                if o.keys.contains(where: { !JSONSchema.annotations.contains($0) && $0 != "$ref" && $0 != "$defs" && $0 != "definitions" }) {
                    throw fail(path, "keywords beside $ref are not supported")
                }
                return [.rule(try reference(ref, from: path))]
            }
            if let c = o["const"] { return GrammarBuilder.literal(c.serialized) }
            if let e = o["enum"] {
                guard let items = e.arrayValue, !items.isEmpty else { throw fail(path, "enum must be a non-empty array") }
                return [b.choice(items.map { GrammarBuilder.literal($0.serialized) }, "enum")]
            }
            for key in ["anyOf", "oneOf"] {
                if let list = o[key] {
                    guard let items = list.arrayValue, !items.isEmpty else { throw fail(path, "\(key) must be a non-empty array") }
                    var rest = o
                    rest[key] = nil
                    let base = rest.keys.contains { !JSONSchema.annotations.contains($0) && $0 != "$defs" && $0 != "definitions" }
                    var alts: [[GrammarBuilder.Symbol]] = []
                    for (i, item) in items.enumerated() {
                        var sub = item
                        if base, var io = item.objectValue {
                            // Shared keywords beside anyOf apply to every branch.
                            for (k, v) in rest where io[k] == nil { io[k] = v }
                            sub = .object(io)
                        }
                        alts.append(try value(sub, path: "\(path)/\(key)/\(i)"))
                    }
                    return [b.choice(alts, key)]
                }
            }
            if let all = o["allOf"] {
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
                for (i, item) in items.enumerated() {
                    if item.boolValue == false { throw fail("\(path)/allOf/\(i)", "the schema false admits no value") }
                    var io = item.objectValue ?? [:]
                    if let r = io["$ref"]?.stringValue { io = try resolve(r, from: "\(path)/allOf/\(i)").objectValue ?? [:] }
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
                                // The same property in two parts must satisfy both: one of them
                                // unconstrained, or both the same.
                                let open: (JSONValue?) -> Bool = { $0 == nil || $0 == .bool(true) || $0 == .object([:]) }
                                if open(p[pk]) { p[pk] = pv } else if !open(pv) && p[pk] != pv {
                                    throw fail("\(path)/allOf/\(i)", "allOf constraining property \"\(pk)\" twice is not supported")
                                }
                            }
                            merged[k] = .object(p)
                        case "required":
                            merged[k] = .array((merged[k]?.arrayValue ?? []) + (v.arrayValue ?? []))
                        case "type":
                            if let t = merged[k], t != v { throw fail("\(path)/allOf/\(i)", "allOf with different types is not supported") }
                            merged[k] = v
                        case "additionalProperties":
                            break  // see `allowed`
                        default:
                            if JSONSchema.annotations.contains(k) { continue }
                            if merged[k] != nil && merged[k] != v { throw fail("\(path)/allOf/\(i)", "allOf combining \"\(k)\" is not supported") }
                            merged[k] = v
                        }
                    }
                }
                if let allowed {
                    let props = (merged["properties"]?.objectValue ?? [:]).filter { allowed.contains($0.key) }
                    merged["properties"] = .object(props)
                    merged["additionalProperties"] = .bool(false)
                    for r in (merged["required"]?.arrayValue ?? []).compactMap(\.stringValue) where !allowed.contains(r) {
                        throw fail(path, "no object satisfies allOf: \"\(r)\" is required but additionalProperties: false excludes it")
                    }
                }
                return try value(.object(merged), path: path)
            }
            var types: [String] = []
            if let t = o["type"] {
                if let one = t.stringValue { types = [one] } else if let many = t.arrayValue {
                    types = many.compactMap(\.stringValue)
                    guard types.count == many.count, !types.isEmpty else { throw fail(path, "type must be a string or an array of strings") }
                } else { throw fail(path, "type must be a string or an array of strings") }
            } else if o["properties"] != nil || o["additionalProperties"] != nil || o["required"] != nil {
                // Without `type`, the keywords of one kind of value say which kind is generated
                // (the others are valid instances too, but never generated).
                types = ["object"]
            } else if o["items"] != nil || o["prefixItems"] != nil || o["minItems"] != nil || o["maxItems"] != nil {
                types = ["array"]
            } else if o["minLength"] != nil || o["maxLength"] != nil || o["pattern"] != nil || o["format"] != nil {
                types = ["string"]
            } else if o["minimum"] != nil || o["maximum"] != nil || o["exclusiveMinimum"] != nil || o["exclusiveMaximum"] != nil {
                types = ["number"]
            } else {
                return [anyValue]
            }
            var alts: [[GrammarBuilder.Symbol]] = []
            for t in types {
                switch t {
                case "string": alts.append(try string(o, path: path))
                case "integer": alts.append(try number(o, integer: true, path: path))
                case "number": alts.append(try number(o, integer: false, path: path))
                case "boolean": alts += [GrammarBuilder.literal("true"), GrammarBuilder.literal("false")]
                case "null": alts.append(GrammarBuilder.literal("null"))
                case "object": alts.append(try object(o, path: path))
                case "array": alts.append(try array(o, path: path))
                default: throw fail(path, "unknown type \"\(t)\"")
                }
            }
            return alts.count == 1 ? alts[0] : [b.choice(alts, "types")]
        }

        /// The schema a `$ref` points to.
        func resolve(_ ref: String, from path: String) throws(ConstraintError) -> JSONValue {
            guard ref.hasPrefix("#") else { throw fail(path, "only local references (#…) are supported: \(ref)") }
            var node = rootSchema
            for part in ref.dropFirst().split(separator: "/", omittingEmptySubsequences: true) {
                let key = String(part).split(separator: "~1", omittingEmptySubsequences: false).joined(separator: "/")
                    .split(separator: "~0", omittingEmptySubsequences: false).joined(separator: "~")
                guard let next = node[key] else { throw fail(path, "reference \(ref) points to nothing") }
                node = next
            }
            return node
        }

        mutating func reference(_ ref: String, from path: String) throws(ConstraintError) -> Int {
            if let r = refs[ref] { return r }
            let target = try resolve(ref, from: path)
            let r = b.declare(ref)
            refs[ref] = r
            b.define(r, [try value(target, path: ref)])
            return r
        }

        mutating func string(_ o: [String: JSONValue], path: String) throws(ConstraintError) -> [GrammarBuilder.Symbol] {
            let minLength = try count(o["minLength"], "minLength", path) ?? 0
            let maxLength = try count(o["maxLength"], "maxLength", path)
            if let m = maxLength, m < minLength { throw fail(path, "maxLength is below minLength") }
            if let f = o["format"] {
                guard let name = f.stringValue else { throw fail(path, "format must be a string") }
                if o["pattern"] != nil || o["minLength"] != nil || o["maxLength"] != nil {
                    throw fail(path, "format together with pattern or lengths is not supported")
                }
                return GrammarBuilder.literal("\"") + (try format(name, path: path)) + GrammarBuilder.literal("\"")
            }
            if let p = o["pattern"] {
                guard let text = p.stringValue else { throw fail(path, "pattern must be a string") }
                let (node, anchoredStart, anchoredEnd) = try Regex.parse(text)
                if o["minLength"] != nil || o["maxLength"] != nil {
                    // With lengths: matches of the pattern alone (a match contains itself), its
                    // open repetitions bounded so that every one has an allowed length.
                    guard let fit = Regex.bounded(node, minLength: minLength, maxLength: maxLength) else {
                        throw fail(path, "no bounding of pattern \(text) keeps its matches within minLength/maxLength")
                    }
                    return GrammarBuilder.literal("\"") + Regex.emit(fit, b, json: true) + GrammarBuilder.literal("\"")
                }
                let any = anyChar
                var out = GrammarBuilder.literal("\"")
                if !anchoredStart { out.append(b.star([any], "pattern-prefix")) }
                out += Regex.emit(node, b, json: true)
                if !anchoredEnd { out.append(b.star([any], "pattern-suffix")) }
                return out + GrammarBuilder.literal("\"")
            }
            return [stringRule(min: minLength, max: maxLength)]
        }

        func count(_ v: JSONValue?, _ name: String, _ path: String) throws(ConstraintError) -> Int? {
            guard let v else { return nil }
            guard let d = v.doubleValue, d >= 0, d == d.rounded(), d <= 100_000 else { throw fail(path, "\(name) must be a non-negative integer") }
            return Int(d)
        }

        mutating func format(_ name: String, path: String) throws(ConstraintError) -> [GrammarBuilder.Symbol] {
            let d = GrammarBuilder.Symbol.bytes(ByteSet(48...57))
            func lit(_ s: String) -> [GrammarBuilder.Symbol] { GrammarBuilder.literal(s) }
            func r(_ a: UInt8, _ z: UInt8) -> GrammarBuilder.Symbol { .bytes(ByteSet(a...z)) }
            let month = b.choice([lit("0") + [r(49, 57)], lit("1") + [r(48, 50)]], "month")
            let day = b.choice([lit("0") + [r(49, 57)], [r(49, 50), d], lit("3") + [r(48, 49)]], "day")
            let date = [d, d, d, d] + lit("-") + [month] + lit("-") + [day]
            let hour = b.choice([[r(48, 49), d], lit("2") + [r(48, 51)]], "hour")
            let minute = [r(48, 53), d]
            var zone = ByteSet(); zone.insert(0x5A); zone.insert(0x7A)
            var sign = ByteSet(); sign.insert(0x2B); sign.insert(0x2D)
            let offset = b.choice([[.bytes(zone)], [.bytes(sign), hour] + lit(":") + minute], "offset")
            let time = [hour] + lit(":") + minute + lit(":") + minute + [b.optional(lit(".") + b.repeated([d], min: 1, max: 9, "frac"), "frac")] + [offset]
            switch name {
            case "date": return date
            case "time": return time
            case "date-time":
                var t = ByteSet(); t.insert(0x54); t.insert(0x74)
                return date + [.bytes(t)] + time
            case "uuid":
                var h = ByteSet(48...57)
                for c in 97...102 as ClosedRange<UInt8> { h.insert(c) }
                for c in 65...70 as ClosedRange<UInt8> { h.insert(c) }
                let x = GrammarBuilder.Symbol.bytes(h)
                func hx(_ n: Int) -> [GrammarBuilder.Symbol] { Array(repeating: x, count: n) }
                return hx(8) + lit("-") + hx(4) + lit("-") + hx(4) + lit("-") + hx(4) + lit("-") + hx(12)
            case "email":
                // A dot-atom local part @ labels: ASCII letters, digits and "_%+-" in the local
                // part's atoms (no leading, trailing or double dot); a label is letters, digits
                // and inner hyphens (RFC 1035), at least two of them.
                var alnum = ByteSet(48...57)
                for c in 65...90 as ClosedRange<UInt8> { alnum.insert(c) }
                for c in 97...122 as ClosedRange<UInt8> { alnum.insert(c) }
                var atom = alnum
                for c in "_%+-".utf8 { atom.insert(c) }
                var inner = alnum
                inner.insert(0x2D)
                let part = [GrammarBuilder.Symbol.bytes(alnum)]
                    + [b.optional(b.repeated([.bytes(inner)], min: 0, max: 29, "label") + [.bytes(alnum)], "label")]
                let local = [GrammarBuilder.Symbol.bytes(alnum)] + b.repeated([.bytes(atom)], min: 0, max: 39, "local")
                    + b.repeated(lit(".") + b.repeated([.bytes(atom)], min: 1, max: 20, "atom"), min: 0, max: 3, "local")
                return local + lit("@") + part + b.repeated(lit(".") + part, min: 1, max: 4, "domain")
            default:
                throw fail(path, "format \"\(name)\" is not supported (date, time, date-time, uuid, email are)")
            }
        }

        /// Integers and numbers, with integer bounds where given.
        mutating func number(_ o: [String: JSONValue], integer: Bool, path: String) throws(ConstraintError) -> [GrammarBuilder.Symbol] {
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

        mutating func object(_ o: [String: JSONValue], path: String) throws(ConstraintError) -> [GrammarBuilder.Symbol] {
            let props = o["properties"]?.objectValue ?? [:]
            let required = (o["required"]?.arrayValue ?? []).compactMap(\.stringValue)
            for r in required where props[r] == nil && o["additionalProperties"]?.boolValue == false {
                throw fail(path, "required property \"\(r)\" is not allowed by additionalProperties: false")
            }
            var order: [String] = []
            for r in required where !order.contains(r) { order.append(r) }
            for k in props.keys.sorted() where !order.contains(k) { order.append(k) }
            let ws = self.ws
            var members: [(key: String, value: [GrammarBuilder.Symbol], required: Bool)] = []
            for k in order {
                let schema: JSONValue
                if let p = props[k] { schema = p }
                else if let a = o["additionalProperties"], a.objectValue != nil { schema = a }
                else { schema = .bool(true) }
                let kv = GrammarBuilder.literal(JSONValue.string(k).serialized) + [ws] + GrammarBuilder.literal(":") + [ws]
                    + (try value(schema, path: "\(path)/properties/\(k)"))
                members.append((k, kv, required.contains(k)))
            }
            // Additional members only when no property is declared (their keys could otherwise
            // repeat a declared one).
            var extra: [GrammarBuilder.Symbol]? = nil
            if props.isEmpty && o["additionalProperties"]?.boolValue != false {
                let schema = o["additionalProperties"] ?? .bool(true)
                let key = stringRule(min: 0, max: nil)
                extra = [key, ws] + GrammarBuilder.literal(":") + [ws] + (try value(schema, path: "\(path)/additionalProperties"))
            }
            let comma = [ws] + GrammarBuilder.literal(",") + [ws]
            // rest(i, first): members i… in order, optional ones skippable, commas between.
            var restRules: [String: GrammarBuilder.Symbol] = [:]
            func rest(_ i: Int, _ first: Bool) -> [GrammarBuilder.Symbol] {
                if i == members.count {
                    guard let e = extra else { return [] }
                    let more = b.star(comma + e, "members")
                    return first ? [b.optional(e + [more], "members")] : [b.star(comma + e, "members")]
                }
                let key = "\(i) \(first)"
                if let r = restRules[key] { return [r] }
                let m = members[i]
                let take = (first ? [] : comma) + m.value + rest(i + 1, false)
                let sym: GrammarBuilder.Symbol = m.required ? b.choice([take], "member") : b.choice([take, rest(i + 1, first)], "member")
                restRules[key] = sym
                return [sym]
            }
            return GrammarBuilder.literal("{") + [ws] + rest(0, true) + [ws] + GrammarBuilder.literal("}")
        }

        mutating func array(_ o: [String: JSONValue], path: String) throws(ConstraintError) -> [GrammarBuilder.Symbol] {
            let prefix = o["prefixItems"]?.arrayValue ?? []
            if o["prefixItems"] != nil && o["prefixItems"]?.arrayValue == nil { throw fail(path, "prefixItems must be an array") }
            let minItems = try count(o["minItems"], "minItems", path) ?? 0
            var maxItems = try count(o["maxItems"], "maxItems", path)
            if let m = maxItems, m < minItems { throw fail(path, "maxItems is below minItems") }
            var items: [GrammarBuilder.Symbol]? = [anyValue]
            if let it = o["items"] {
                if it.boolValue == false { items = nil } else if it.arrayValue != nil {
                    throw fail(path, "items as an array (draft 4 tuples) is not supported: use prefixItems")
                } else { items = try value(it, path: "\(path)/items") }
            }
            if items == nil { maxItems = min(maxItems ?? prefix.count, prefix.count) }
            if minItems > (maxItems ?? Int.max) { throw fail(path, "no array length satisfies the bounds") }
            let prefixSyms = try prefix.enumerated().map { (i, s) throws(ConstraintError) in try value(s, path: "\(path)/prefixItems/\(i)") }
            let ws = self.ws
            let comma = [ws] + GrammarBuilder.literal(",") + [ws]
            func element(_ i: Int) -> [GrammarBuilder.Symbol] { i < prefixSyms.count ? prefixSyms[i] : items! }
            // tail(i): elements i… given that i elements are written (i ≥ 1).
            func tail(_ i: Int) -> [GrammarBuilder.Symbol] {
                if let m = maxItems, i >= m { return [] }
                if i >= prefixSyms.count {
                    guard let it = items else { return [] }
                    return b.repeated(comma + it, min: max(0, minItems - i), max: maxItems.map { $0 - i }, "items")
                }
                let take = comma + element(i) + tail(i + 1)
                return [i < minItems ? b.choice([take], "item") : b.optional(take, "item")]
            }
            if maxItems == 0 { return GrammarBuilder.literal("[") + [ws] + GrammarBuilder.literal("]") }
            if prefixSyms.isEmpty && items == nil { return GrammarBuilder.literal("[") + [ws] + GrammarBuilder.literal("]") }
            let body = element(0) + tail(1)
            let inner: [GrammarBuilder.Symbol] = minItems == 0 ? [b.optional(body, "items")] : body
            return GrammarBuilder.literal("[") + [ws] + inner + [ws] + GrammarBuilder.literal("]")
        }
    }
}

/// Integer ranges as digit patterns.
enum IntegerRange {
    /// Alternatives matching exactly the integers in lo…hi (nil: unbounded; at most 16 digits).
    static func alternatives(_ lo: Int?, _ hi: Int?, _ b: GrammarBuilder) -> [[GrammarBuilder.Symbol]] {
        let cap = 9_999_999_999_999_999
        var alts: [[GrammarBuilder.Symbol]] = []
        let l = lo ?? -cap, h = hi ?? cap
        if l <= -1 {
            // Negative part: "-" then |x| in max(1, -h)…-l.
            for seq in nonNegative(max(1, -h), -l) { alts.append(GrammarBuilder.literal("-") + seq.map { .bytes($0) }) }
        }
        if h >= 0 {
            for seq in nonNegative(max(0, l), h) { alts.append(seq.map { .bytes($0) }) }
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
        let digit = GrammarBuilder.Symbol.bytes(ByteSet(48...57))
        let frac = b.optional(GrammarBuilder.literal(".") + b.repeated([digit], min: 1, max: 16, "frac"), "frac")
        let zeros = b.optional(GrammarBuilder.literal(".") + b.repeated(GrammarBuilder.literal("0"), min: 1, max: 16, "zeros"), "zeros")
        let nonzero = GrammarBuilder.literal(".") + b.repeated(GrammarBuilder.literal("0"), min: 0, max: 15, "zeros")
            + [GrammarBuilder.Symbol.bytes(ByteSet(49...57))] + b.repeated([digit], min: 0, max: 15, "frac")
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
            alts += ints(l, l).map { $0 + (lExclusive ? nonzero : [frac]) }
            if l + 1 <= h - 1 { alts += ints(l + 1, h - 1).map { $0 + [frac] } }
            if !hiExclusive { alts += ints(h, h).map { $0 + [zeros] } }
        } else {
            alts += ints(l, l).map { $0 + (lExclusive ? nonzero : [frac]) }
            alts += ints(l + 1, nil).map { $0 + [frac] }
        }
        return alts
    }
}
