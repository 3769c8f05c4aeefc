import XCTest
@testable import Phi4

/// The constraint engine: UTF-8 classes, GBNF, regular expressions, JSON Schema refusals, exact
/// token masks and generation that always ends in a complete match. (Validity of generated JSON
/// against the jsonschema package and of regex outputs against Python's re is checked by
/// tools/schema_suite.py, run by make test.)
final class ConstraintTests: XCTestCase {
    /// A character class over code points accepts exactly the UTF-8 encodings of its members:
    /// checked for every code point of several ranges (surrogates never match).
    func testScalarClassesMatchExactlyTheirCodePoints() throws {
        let classes: [[ClosedRange<UInt32>]] = [[0x41...0x5A], [0x80...0x7FF], [0x7F0...0x1234], [0xD000...0xE100],
                                                [0xFFF0...0x10010], [0x1F600...0x1F64F], [0x20...0x10FFFF]]
        let samples: [UInt32] = Array(0...0x3000) + Array(stride(from: 0x3000, through: 0x10FFFF, by: 97)) + [0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x10FFFF]
        for ranges in classes {
            let b = GrammarBuilder()
            let root = b.rule("root", [[b.scalarClass(ranges)]])
            let g = try b.build(root: root)
            for c in samples {
                guard let scalar = Unicode.Scalar(c) else { continue }
                let want = ranges.contains { $0.contains(c) }
                XCTAssertEqual(g.matches(String(Character(scalar))), want, "U+\(String(c, radix: 16)) in \(ranges)")
            }
        }
    }

    func testGBNF() throws {
        let g = try GBNF.compile("""
            # arithmetic
            root ::= expr
            expr ::= term (("+" | "-") term)*
            term ::= [0-9]+ | "(" expr ")"
            """)
        for s in ["1", "12+3", "(1-2)+30", "((7))"] { XCTAssertTrue(g.matches(s), s) }
        for s in ["", "+1", "1+", "(1", "a"] { XCTAssertFalse(g.matches(s), s) }
        let h = try GBNF.compile(#"root ::= "é" [^a-z\n]{2,3} "\x41" .?"#)
        XCTAssertTrue(h.matches("éXYA"))
        XCTAssertTrue(h.matches("é日本語A!"))
        XCTAssertFalse(h.matches("éxyA"))
        XCTAssertFalse(h.matches("éXYZWA"))
        for bad in ["expr ::= \"a\"", "root ::= undefined", "root ::= \"a", "root ::= root \"a\"", "root ::= [z-a]", "root ::= x{3,1}"] {
            XCTAssertThrowsError(try GBNF.compile(bad), bad)
        }
    }

    /// Whole-output regular expressions, against answers worked out by hand (Python's
    /// re.fullmatch gives the same; tools/schema_suite.py checks generated outputs with it).
    func testRegex() throws {
        let cases: [(String, [String], [String])] = [
            (#"[a-z]{3,6}@[a-z]+\.(com|org)"#, ["abc@x.com", "abcdef@yy.org"], ["ab@x.com", "abc@x.net", "abc@.com"]),
            (#"\d{4}-\d{2}-\d{2}"#, ["2024-01-31"], ["2024-1-31", "20240131"]),
            (#"^(?:yes|no)$"#, ["yes", "no"], ["yesno", ""]),
            (#"\w+\s\S"#, ["a_1 x", "Z\t!"], ["a  x", " x"]),
            (#"a.c"#, ["abc", "a c", "a日c"], ["a\nc", "ac"]),
            (#"x*?y+?"#, ["y", "xxyy"], ["x", ""]),
            (#"[\]\-]+"#, ["]-]"], ["a"]),
        ]
        for (pattern, good, bad) in cases {
            let g = try Regex.compile(pattern)
            for s in good { XCTAssertTrue(g.matches(s), "\(pattern) \(s)") }
            for s in bad { XCTAssertFalse(g.matches(s), "\(pattern) \(s)") }
        }
        for unsupported in [#"(a)\1"#, "(?=a)", #"\bword"#, "a{2,1}", "*a"] {
            XCTAssertThrowsError(try Regex.compile(unsupported), unsupported)
        }
    }

    /// Unsupported keywords are errors naming them; annotations are ignored.
    func testSchemaRefusalsNameTheKeyword() throws {
        for (schema, word) in [(#"{"type": "array", "uniqueItems": true}"#, "uniqueItems"),
                               (#"{"not": {"pattern": "a"}}"#, "not"),
                               (#"{"if": {"pattern": "a"}, "then": {}}"#, "not of a schema"),
                               (##"{"$dynamicRef": "#meta"}"##, "$dynamicRef"),
                               (#"{"type": "string", "format": "uri"}"#, "uri"),
                               (#"{"type": "number", "minimum": 0.5}"#, "minimum"),
                               (#"{"$ref": "https://example.com/s.json"}"#, "other documents"),
                               (#"{"allOf": [{"properties": {"a": {}}, "required": ["a"]}], "additionalProperties": false}"#, "no object")] {
            XCTAssertThrowsError(try JSONSchema.compile(schema), schema) { XCTAssertTrue("\($0)".contains(word), "\($0)") }
        }
        XCTAssertNoThrow(try JSONSchema.compile(#"{"title": "t", "description": "d", "$comment": "c", "examples": [1], "type": "integer"}"#))
        let g = try JSONSchema.compile(#"{"type": "object", "properties": {"a": {"type": "integer", "minimum": 3, "maximum": 12}}, "required": ["a"], "additionalProperties": false}"#)
        for s in [#"{"a":3}"#, #"{ "a" : 12 }"#, #"{"a":7}"#] { XCTAssertTrue(g.matches(s), s) }
        for s in [#"{"a":2}"#, #"{"a":13}"#, #"{}"#, #"{"a":03}"#, #"{"a":3,"b":1}"#] { XCTAssertFalse(g.matches(s), s) }
        let n = try JSONSchema.compile(#"{"type": "number", "exclusiveMinimum": -1, "maximum": 1}"#)
        for s in ["-0.5", "0", "1", "1.000", "0.25", "-0.999"] { XCTAssertTrue(n.matches(s), s) }
        for s in ["-1", "-1.0", "1.01", "2", "-1.5"] { XCTAssertFalse(n.matches(s), s) }
    }

    /// `format: email`: a dot-atom local part and at least two labels of letters, digits and
    /// inner hyphens (RFC 5322 / RFC 1035 rules, written out by hand).
    func testEmailFormat() throws {
        let g = try JSONSchema.compile(#"{"type": "string", "format": "email"}"#)
        for s in ["a@b.co", "first.last+tag@mail.example.org", "x_y%z-1@a-b.c1", "A1@B2.C3"] { XCTAssertTrue(g.matches("\"\(s)\""), s) }
        for s in ["a@b", "a..b@x.com", ".a@x.com", "a.@x.com", "a@x-.com", "a@-x.com", "a@x..com", "a@x.com.", "@x.com", "a b@x.com"] {
            XCTAssertFalse(g.matches("\"\(s)\""), s)
        }
    }

    /// Cached masks of all constraints together stay within the process budget (a server may
    /// hold many compiled constraints), and a mask computed again after its eviction is the same.
    func testMaskCacheBudget() throws {
        let tok = try Tokenizer.load(path: tokenizerFixtures + "/phi4")
        // Every position of a bounded repeat is a state of its own: 2 × 250 dense masks of 200 KB
        // are more than the budget.
        let a = TokenConstraint(grammar: try Regex.compile("[a-z]{0,250}"), tokenizer: tok, vocabSize: 100352)
        let b = TokenConstraint(grammar: try Regex.compile("[0-9a-f]{0,250}"), tokenizer: tok, vocabSize: 100352)
        let first = a.mask(a.grammar.initialState)
        for c in [a, b] {
            var state = c.grammar.initialState
            for _ in 0..<250 {
                _ = c.mask(state)
                XCTAssertLessThanOrEqual(TokenConstraint.cachedMaskBytes, TokenConstraint.cacheBudget)
                state = c.grammar.advance(state, UInt8(ascii: "a"))
            }
        }
        XCTAssertGreaterThan(TokenConstraint.cachedMaskBytes, TokenConstraint.cacheBudget / 2)
        XCTAssertEqual(a.mask(a.grammar.initialState), first)
    }

    /// The mask from the trie walk equals a brute-force check of every token (its bytes run
    /// through the grammar one by one) at prefixes of a JSON text, with the fewest bytes that
    /// finish the match after each allowed token.
    func testMasksEqualBruteForce() throws {
        let tok = try Tokenizer.load(path: tokenizerFixtures + "/phi4")
        let schema = #"{"type": "object", "properties": {"name": {"type": "string", "maxLength": 6}, "n": {"type": "integer", "minimum": -20, "maximum": 300}, "ok": {"type": "boolean"}}, "required": ["name", "n"], "additionalProperties": false}"#
        let c = TokenConstraint(grammar: try JSONSchema.compile(schema), tokenizer: tok, vocabSize: 100352)
        let g = c.grammar
        let text = #"{"name": "é\"z", "n": -17, "ok": true}"#
        XCTAssertTrue(g.matches(text))
        let bytes = Array(text.utf8)
        for cut in [0, 1, 5, 10, 12, 16, 20, 25, 30, bytes.count] {
            let state = g.advance(g.initialState, bytes[..<cut])
            XCTAssertFalse(state.isDead)
            let mask = c.mask(state)
            for id in 0..<100352 {
                var want = TokenConstraint.forbidden
                if !tok.isSpecial(TokenID(id)), let b = tok.vocabulary.bytes(of: id), b.count > 0 {
                    var s = state
                    for x in b {
                        s = g.advance(s, x)
                        if s.isDead { break }
                    }
                    if !s.isDead { want = UInt16(min(g.minBytesToComplete(s), 65534)) }
                }
                if mask[id] != want { XCTFail("prefix \(cut), token \(id): \(mask[id]) vs \(want)"); break }
            }
        }
    }

    /// Generation on the demo model: JSON that parses and keeps the schema's facts for several
    /// seeds, a short budget still closes every value, and the output stops once the value is
    /// complete. Impossible constraints are errors before generation.
    func testGenerationAlwaysCompletesAndParses() throws {
        let model = try Model.load(path: fixturesDirectory + "/../../../models/phi4-demo-q8_0.gguf")
        let schema = #"{"type": "object", "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 99}, "tags": {"type": "array", "items": {"type": "string", "maxLength": 4}, "maxItems": 3}}, "required": ["id", "tags"], "additionalProperties": false}"#
        for (seed, maxTokens) in [(1, 200), (2, 200), (3, 30), (4, 18)] {
            var o = GenerationOptions()
            o.maxTokens = maxTokens
            o.sampling.temperature = 1
            o.sampling.seed = UInt64(seed)
            o.constraint = .jsonSchema(schema)
            let r = try Session(model: model, contextLength: 512).generate(model.tokenizer.encode("Data:"), options: o)
            let v = try JSONParser.parse(r.text)
            let id = v["id"]?.doubleValue ?? 0
            XCTAssertTrue(id >= 1 && id <= 99 && id == id.rounded(), r.text)
            XCTAssertLessThanOrEqual(v["tags"]?.arrayValue?.count ?? 9, 3, r.text)
            XCTAssertEqual(Set(v.objectValue?.keys.map { $0 } ?? []), ["id", "tags"], r.text)
            XCTAssertLessThanOrEqual(r.tokens.count, maxTokens)
        }
        var o = GenerationOptions()
        o.maxTokens = 3
        o.constraint = .jsonSchema(schema)
        XCTAssertThrowsError(try Session(model: model, contextLength: 512).generate(model.tokenizer.encode("x"), options: o))
        o.maxTokens = 50
        o.constraint = .grammar("root ::= [")
        XCTAssertThrowsError(try Session(model: model, contextLength: 512).generate(model.tokenizer.encode("x"), options: o))
    }

    /// Prompt lookup under a constraint: drafts are proposed (the prompt repeats the answer's
    /// shape), every verified position is masked, and the output equals the one without lookup
    /// token for token, greedy and sampled with a seed (speculative sampling's rule leaves the
    /// distribution, and with a seed the draws, unchanged), and it follows the schema.
    func testPromptLookupUnderConstraint() throws {
        let model = try Model.load(path: fixturesDirectory + "/../../../models/phi4-demo-q8_0.gguf")
        let schema = #"{"type": "object", "properties": {"items": {"type": "array", "items": {"enum": ["alpha beta", "gamma delta", "epsilon"]}, "maxItems": 6}}, "required": ["items"], "additionalProperties": false}"#
        let example = #"{"items": ["alpha beta", "gamma delta", "epsilon", "alpha beta", "gamma delta"]}"#
        let prompt = model.tokenizer.encode(String(repeating: "JSON: " + example + "\n", count: 3) + "JSON: ")
        var drafted = 0
        for (seed, temperature) in [(0, Float(0)), (1, 1), (2, 1), (3, 1)] {
            var plain = GenerationOptions()
            plain.maxTokens = 60
            plain.sampling.temperature = temperature
            plain.sampling.seed = UInt64(seed)
            plain.constraint = .jsonSchema(schema)
            var lookup = plain
            lookup.lookup = 6
            let a = try Session(model: model, contextLength: 512).generate(prompt, options: plain)
            let b = try Session(model: model, contextLength: 512).generate(prompt, options: lookup)
            XCTAssertEqual(b.tokens, a.tokens, "seed \(seed)")
            XCTAssertEqual(b.stopReason, a.stopReason)
            XCTAssertEqual(a.draftTokens, 0)
            drafted += b.draftTokens
            let v = try JSONParser.parse(b.text)
            XCTAssertEqual(Set(v.objectValue?.keys.map { $0 } ?? []), ["items"], b.text)
            for item in v["items"]?.arrayValue ?? [] {
                XCTAssertTrue(["alpha beta", "gamma delta", "epsilon"].contains(item.stringValue ?? ""), b.text)
            }
        }
        XCTAssertGreaterThan(drafted, 0)
    }
}

/// Matching whole texts (`Constraint.matches`, what `phi4_constraint_match` and `phi4 dev match`
/// answer) and the engine's canonical JSON spelling.
final class ConstraintMatchingTests: XCTestCase {
    func testMatchesAnswersWithTheGenerationGrammar() throws {
        let schema = #"{"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}, "s": {"type": "string"}}, "required": ["n"]}"#
        let c = Constraint.jsonSchema(schema)
        XCTAssertTrue(try c.matches(#"{"n":3}"#))
        XCTAssertTrue(try c.matches(#"{"n":3,"s":"a"}"#))
        XCTAssertTrue(try c.matches(#"{ "n" : 3 }"#))         // whitespace between tokens
        XCTAssertFalse(try c.matches(#"{"n":0}"#))             // below the minimum
        XCTAssertFalse(try c.matches(#"{"n":3.5}"#))           // not an integer
        XCTAssertFalse(try c.matches(#"{"s":"a","n":3}"#))     // generation's member order is required first
        XCTAssertFalse(try c.matches(#"{"n":3"#))              // incomplete
        XCTAssertTrue(try Constraint.regex("[a-c]{3}x").matches("abcx"))
        XCTAssertFalse(try Constraint.regex("[a-c]{3}x").matches("abcxx"))
        XCTAssertTrue(try Constraint.grammar(#"root ::= "hi" | "ho""#).matches(utf8: Array("ho".utf8)))
        XCTAssertThrowsError(try Constraint.grammar("root ::= (").matches("x"))
    }

    /// Cases of the official JSON-Schema-Test-Suite (draft 2020-12; tools/json_schema_suite.py)
    /// that were accepted though invalid: keywords of one kind of value in a schema without
    /// `type` were ignored, `false` inside `allOf` was read as `true`, and `prefixItems` and
    /// `items` of different `allOf` parts were merged.
    func testSchemasWithoutTypeKeepTheirKeywords() throws {
        XCTAssertFalse(try Constraint.jsonSchema(#"{"maxItems": 2}"#).matches("[1,2,3]"))
        XCTAssertTrue(try Constraint.jsonSchema(#"{"maxItems": 2}"#).matches("[1,2]"))
        XCTAssertFalse(try Constraint.jsonSchema(#"{"minItems": 1}"#).matches("[]"))
        XCTAssertFalse(try Constraint.jsonSchema(#"{"required": ["__proto__"]}"#).matches("{}"))
        XCTAssertTrue(try Constraint.jsonSchema(#"{"required": ["a"]}"#).matches(#"{"a":1}"#))
        XCTAssertThrowsError(try Constraint.jsonSchema(#"{"allOf": [{"type": "string"}, false]}"#).compile())
        XCTAssertThrowsError(try Constraint.jsonSchema(#"{"allOf": [{"prefixItems": [{"minimum": 3}]}], "items": {"minimum": 5}}"#).compile())
    }

    /// Keywords beyond the basic ones, each accepting valid instances and rejecting invalid ones.
    /// The labels are JSON Schema's (checked with jsonschema 4.26, Draft202012Validator); the
    /// valid instances are written in generation's member order and spelling. The whole
    /// official test suite, random walks included, runs in tools/json_schema_suite.py.
    func testKeywordsMatchJSONSchemaSemantics() throws {
        let cases: [(String, [String], [String])] = [
            (#"{"oneOf": [{"type": "string"}, {"type": "integer"}]}"#,
             [#"1"#, #""a""#],
             [#"1.5"#, #"null"#]),
            (#"{"oneOf": [{"type": "object", "properties": {"kind": {"const": "a"}, "x": {"type": "integer"}}, "required": ["kind", "x"]}, {"type": "object", "properties": {"kind": {"const": "b"}}, "required": ["kind"]}]}"#,
             [#"{"kind":"a","x":1}"#, #"{"kind":"b"}"#],
             [#"{"kind":"c"}"#, #"{"kind":"a"}"#]),
            (#"{"type": "object", "properties": {"foo": {"type": "string"}}, "anyOf": [{"properties": {"foo": {"maxLength": 2}}}]}"#,
             [#"{"foo":"ab"}"#],
             [#"{"foo":"abc"}"#, #"{"foo":1}"#]),
            (#"{"enum": [1, "a", 2.5, 3], "type": "integer"}"#,
             [#"1"#, #"3"#],
             [#""a""#, #"2.5"#]),
            (#"{"enum": [1, "a", "bb"], "minLength": 2}"#,
             [#"1"#, #""bb""#],
             [#""a""#]),
            (#"{"type": "object", "properties": {"a": {}, "b": {}, "c": {}}, "minProperties": 2, "maxProperties": 2}"#,
             [#"{"a":1,"b":2}"#, #"{"a":1,"c":3}"#],
             [#"{"a":1}"#, #"{"a":1,"b":2,"c":3}"#]),
            (#"{"type": "object", "minProperties": 1}"#,
             [#"{"x":1}"#],
             [#"{}"#]),
            (#"{"type": "object", "properties": {"a": {}, "b": {}}, "dependentRequired": {"b": ["a"]}}"#,
             [#"{"a":1,"b":1}"#, #"{"a":1}"#, #"{}"#],
             [#"{"b":1}"#]),
            (#"{"type": "object", "patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": false}"#,
             [#"{"x-a":1}"#, #"{}"#],
             [#"{"x-a":"s"}"#, #"{"y":1}"#]),
            (#"{"type": "object", "propertyNames": {"maxLength": 3}}"#,
             [#"{"abc":1}"#],
             [#"{"abcd":1}"#]),
            (#"{"type": "integer", "multipleOf": 7}"#,
             [#"14"#, #"-21"#, #"0"#],
             [#"15"#, #"7.5"#]),
            (#"{"type": "integer", "multipleOf": 5, "minimum": 3, "maximum": 20}"#,
             [#"5"#, #"20"#],
             [#"0"#, #"25"#, #"7"#]),
            (#"{"type": "array", "items": {"type": "integer"}, "contains": {"minimum": 10}, "minContains": 2}"#,
             [#"[10,1,11]"#, #"[12,13]"#],
             [#"[10,1]"#, #"[]"#]),
            (#"{"type": "array", "contains": {"type": "string"}, "maxContains": 1}"#,
             [#"["a",1]"#, #"[1,"a",2]"#],
             [#"["a","b"]"#, #"[1]"#]),
            (#"{"type": "array", "items": {"enum": ["x", "y", "z"]}, "uniqueItems": true}"#,
             [#"["x","z"]"#, #"[]"#],
             [#"["x","x"]"#, #"["w"]"#]),
            (#"{"not": {"type": "string"}}"#,
             [#"1"#, #"null"#, #"{"a":"b"}"#],
             [#""a""#]),
            (#"{"type": "number", "not": {"type": "integer"}}"#,
             [#"1.5"#, #"-0.25"#],
             [#"1"#, #"1.0"#]),
            (#"{"type": "string", "format": "email", "maxLength": 10}"#,
             [#""a@b.co""#],
             [#""abcdefgh@b.co""#, #""abcdefghijk""#]),
            (#"{"type": "object", "properties": {"a": {}}, "unevaluatedProperties": false}"#,
             [#"{"a":1}"#, #"{}"#],
             [#"{"b":1}"#]),
            (##"{"$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n", "minimum": 5}"##,
             [#"5"#, #"6"#],
             [#"4"#, #""x""#]),
            (##"{"$defs": {"x": {"$anchor": "pos", "type": "integer", "minimum": 1}}, "$ref": "#pos"}"##,
             [#"1"#],
             [#"0"#]),
            (#"{"minLength": 2}"#,
             [#""ab""#, #"1"#, #"null"#, #"[]"#],
             [#""a""#]),
            (#"{"oneOf": [true, {"type": "string"}]}"#,
             [#"1"#, #"null"#, #"{}"#],
             [#""a""#]),
            (#"{"oneOf": [{"required": ["a"]}, {"required": ["b"]}]}"#,
             [#"{"a":1}"#, #"{"b":1}"#],
             [#"{"a":1,"b":2}"#, #"1"#, #"{}"#]),
            (#"{"type": "integer", "if": {"minimum": 10}, "then": {"multipleOf": 5}, "else": {"maximum": 3}}"#,
             [#"10"#, #"15"#, #"3"#, #"-4"#],
             [#"11"#, #"5"#, #"7"#]),
            (#"{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "dependentSchemas": {"a": {"required": ["b"]}}}"#,
             [#"{"b":"x","a":1}"#, #"{"b":"x"}"#, #"{}"#],
             [#"{"a":1}"#]),
            (#"{"not": {"type": "object", "required": ["a"]}}"#,
             [#"1"#, #"{}"#],
             [#"{"a":1}"#]),
            (#"{"$id": "http://example.com/root.json", "$defs": {"item": {"$id": "item.json", "type": "integer", "minimum": 1}}, "type": "array", "items": {"$ref": "item.json"}}"#,
             [#"[1,2]"#, #"[]"#],
             [#"[0]"#, #"["a"]"#]),
        ]
        for (schema, valid, invalid) in cases {
            let g = try JSONSchema.compile(schema)
            for v in valid { XCTAssertTrue(g.matches(v), "\(schema) should accept \(v)") }
            for v in invalid { XCTAssertFalse(g.matches(v), "\(schema) should reject \(v)") }
        }
        // Generation restrictions: distinct items in the enum's order; an oneOf whose branches
        // can overlap and have no negation is refused rather than generated as anyOf.
        XCTAssertFalse(try JSONSchema.compile(#"{"type": "array", "items": {"enum": ["x", "y", "z"]}, "uniqueItems": true}"#).matches(#"["z","x"]"#))
        for overlapping in [#"{"oneOf": [{"pattern": "a"}, {"pattern": "b"}]}"#, #"{"oneOf": [{"const": 1}, {"type": "integer"}]}"#] {
            XCTAssertThrowsError(try JSONSchema.compile(overlapping), overlapping) { XCTAssertTrue("\($0)".contains("oneOf"), "\($0)") }
        }
    }

    /// Random walks of a grammar end in complete matches, and the same seed gives the same walk.
    func testRandomWalksAreMatches() throws {
        let g = try JSONSchema.compile(#"{"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 3}, "s": {"enum": ["a", "b"]}}, "required": ["n"]}"#)
        var r1 = SeededGenerator(seed: 5), r2 = SeededGenerator(seed: 5)
        for _ in 0..<50 {
            let m = try XCTUnwrap(g.randomMatch(using: &r1))
            XCTAssertTrue(g.advance(g.initialState, m).isComplete)
            XCTAssertEqual(m, g.randomMatch(using: &r2))
        }
    }

    /// The canonical spelling parses back to the same value, uses generation's escapes and member
    /// order, and the schema's grammar accepts it.
    func testCanonicalSpellingIsWhatGenerationWrites() throws {
        let schema = #"{"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "string"}, "c": {"type": "array", "items": {"type": "number"}}}, "required": ["b"]}"#
        let text = #"{"c": [0.5, 1e-7, 2.0], "a": "x\b\u0001\u00e9\"\\", "b": 1.0}"#
        let canonical = try JSONSchema.canonical(text, schema: schema)
        XCTAssertEqual(canonical, #"{"b":1,"a":"x\b\u0001é\"\\","c":[0.5,0.0000001,2]}"#)
        XCTAssertEqual(try JSONParser.parse(canonical), try JSONParser.parse(text))
        XCTAssertTrue(try Constraint.jsonSchema(schema).matches(canonical))
        XCTAssertEqual(try JSONSchema.canonical(#"{"z": 1, "a": [true, null]}"#), #"{"a":[true,null],"z":1}"#)
        XCTAssertThrowsError(try JSONSchema.canonical("{"))
    }
}
