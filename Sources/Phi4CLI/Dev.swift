// `phi4 dev`: developer tools (random full-size models for measurements).

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
@preconcurrency import Glibc  // stdout and stderr: C globals (FILE streams lock themselves)
#endif

struct Dev: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Developer tools (random models for measurements, constraint matching).", subcommands: [RandomModelCommand.self, MaskBenchCommand.self, MatchCommand.self])
}

struct RandomModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "random-model",
        abstract: "Write a Phi-4-shaped GGUF with random weights, streaming (for speed and memory measurements).")

    @Option(help: "Shape: phi4 (14B) or phi4-mini (3.8B: partial rotary, LongRoPE with factors 1, tied lm_head; use the o200k tokenizer).")
    var shape = "phi4"

    @Option(help: "Number of layers (default: the shape's, 40 or 32).")
    var layers: Int?

    @Option(help: "Any file type llama-quantize names (f16, q8_0, q4_0, q4_k_m, q3_k_m, iq4_xs, iq3_m, iq2_m, iq1_m, …) or q4_0-mixed, with llama-quantize's per-tensor types without an importance matrix (K-quants, IQ types, Q4_1: random bits with sane scales).")
    var type: String

    @Option(help: "A tokenizer (model directory, tokenizer.json or .tiktoken) whose vocabulary to embed.")
    var tokenizer: String

    @Option(help: "The GGUF file to write.")
    var out: String

    @Option(help: "Random seed.")
    var seed: UInt64 = 1

    @Flag(help: "Zero matrices written as a sparse file (any size, no disk space; for load and memory-limit tests).")
    var zeros = false

    @Option(help: "A file of lines 'TENSOR_NAME TYPE' (GGML type names, e.g. blk.0.ffn_up.weight IQ3_S) overriding --type's recipe per tensor: tools/make_random_mix.sh writes it from llama-quantize --dry-run, for the mixes the recipes do not know (IQ3_M, IQ2_M …).")
    var tensorTypes: String?

    func run() throws {
        let config: ModelConfig
        switch shape {
        case "phi4": config = .phi4
        case "phi4-mini":
            // Phi-4-mini-instruct's shape; the LongRoPE factors are 1 (speed does not depend on them).
            config = ModelConfig(hiddenSize: 3072, intermediateSize: 8192, layerCount: 32, headCount: 24, kvHeadCount: 8,
                                 headDim: 128, vocabSize: 200_064, maxPositions: 131_072, rmsNormEps: 1e-5, ropeTheta: 10000,
                                 rotaryDim: 96, longRoPE: LongRoPE(shortFactors: Array(repeating: 1, count: 48),
                                                                  longFactors: Array(repeating: 1, count: 48),
                                                                  originalMaxPositions: 4096,
                                                                  attentionFactor: LongRoPE.defaultAttentionFactor(scale: 32, originalMaxPositions: 4096)),
                                 tieWordEmbeddings: true, bosTokenID: 199_999, eosTokenIDs: [200_020, 199_999],
                                 padTokenID: 199_999)
        default: throw ValidationError("--shape must be phi4 or phi4-mini")
        }
        guard let t = GGUFExport.FileType(name: type) else { throw ValidationError("unknown --type \(type)") }
        var overrides: [String: GGMLType] = [:]
        if let tensorTypes {
            let names = Dictionary(uniqueKeysWithValues: GGMLType.allCases.map { ($0.displayName.uppercased(), $0) })
            let text = try String(contentsOfFile: tensorTypes, encoding: .utf8)
            for line in text.split(separator: "\n") where !line.isEmpty {
                let parts = line.split(separator: " ")
                guard parts.count == 2, let ty = names[parts[1].uppercased()] else {
                    throw ValidationError("--tensor-types: cannot read the line '\(line)' (expected 'TENSOR_NAME TYPE')")
                }
                overrides[String(parts[0])] = ty
            }
        }
        let tok = try loadTokenizer(tokenizer)
        let clock = ContinuousClock()
        let start = clock.now
        do {
            try RandomModel.write(config: config, layers: layers, type: t, tokenizer: tok,
                                  tokenizerDirectory: tokenizer, output: out, seed: seed, zeros: zeros,
                                  tensorTypes: overrides) { done, total, name in
                fputs("\r\(done)/\(total) \(name)                    ", stderr)
                if done == total { fputs("\n", stderr) }
            }
        } catch {
            throw RuntimeError(error)
        }
        printError("wrote \(out) in \((clock.now - start).components.seconds) s; peak memory \(fmt(Double(residentMemory().peak) / 1e9)) GB")
    }
}


/// Times constrained decoding's mask computation: for each schema, a greedy constrained output
/// is generated, then replayed token by token on a fresh constraint (empty caches, so states are
/// met for the first time as in a new request), timing each mask on one thread.
struct MaskBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mask-bench", abstract: "Time token-mask computation over a list of JSON Schemas (one thread).")

    @Option(help: "A model whose vocabulary to use (and to generate the replayed outputs).")
    var model: String

    @Option(help: "A JSON list of {\"name\", \"schema\"} (e.g. Tests/Phi4Tests/Fixtures/constraints/schemas.json).")
    var schemas: String

    @Option(name: .customLong("max-tokens"), help: "Tokens per output.")
    var maxTokens = 128

    @Option(help: "Write each schema's replayed tokens and mask times (µs) to this JSON file (tools/llguidance_bench.py reads it).")
    var dump: String?

    func run() throws {
        let m = try loadModel(model)
        let list: JSONValue
        do { list = try JSONParser.parse(try FileIO.readAll(schemas, limit: 1 << 26)) } catch { throw RuntimeError(error) }
        var times: [Double] = [], compiles: [Double] = []
        var dumped: [JSONValue] = []
        let clock = ContinuousClock()
        func us(_ d: Duration) -> Double { Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12 }
        for item in list.arrayValue ?? [] {
            guard let schema = item["schema"] else { continue }
            let text = schema.serialized
            var o = GenerationOptions()
            o.maxTokens = maxTokens
            o.sampling.temperature = 0
            o.constraint = .jsonSchema(text)
            let r: GenerationResult
            do { r = try Session(model: m, contextLength: 1024).generate(m.tokenizer.encode("JSON:"), options: o) } catch { throw RuntimeError(error) }
            let t0 = clock.now
            let g: Grammar
            do { g = try JSONSchema.compile(text) } catch { throw RuntimeError(error) }
            let c = TokenConstraint(grammar: g, tokenizer: m.tokenizer, vocabSize: m.config.vocabSize)
            compiles.append(us(clock.now - t0))
            var state = g.initialState
            var these: [Double] = []
            for t in r.tokens {
                let a = clock.now
                _ = c.mask(state)
                these.append(us(clock.now - a))
                state = c.advance(state, t)
            }
            times += these
            dumped.append(.object(["name": item["name"] ?? .null, "schema": .string(text), "compile_us": .number(compiles.last ?? 0),
                                   "tokens": .array(r.tokens.map { .number(Double($0)) }), "mask_us": .array(these.map { .number($0) })]))
        }
        if let dump {
            do { try FileIO.writeAll(dump, Array(JSONValue.array(dumped).serialized.utf8)) } catch { throw RuntimeError(error) }
        }
        times.sort()
        compiles.sort()
        func q(_ a: [Double], _ p: Double) -> Double { a.isEmpty ? 0 : a[min(a.count - 1, Int(p * Double(a.count)))] }
        print("vocabulary \(m.config.vocabSize), \(compiles.count) schemas, \(times.count) masks (fresh caches per schema), cpu \(Kernels.cpuModel)")
        print("mask µs: median \(fmt(q(times, 0.5))), p90 \(fmt(q(times, 0.9))), p99 \(fmt(q(times, 0.99))), max \(fmt(times.last ?? 0))")
        print("schema compile µs: median \(fmt(q(compiles, 0.5))), max \(fmt(compiles.last ?? 0))")
    }
}

struct MatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "match",
        abstract: "Whether texts are complete matches of a constraint (the grammar that masks generation), or JSON values spelled as generation spells them.",
        discussion: """
        Prints true or false per text (a constraint that does not compile exits 1 with its message). With --canonical \
        it prints each text, a JSON value, in the engine's own spelling instead: no whitespace, generation's escapes \
        and numbers, object members in the order generation writes them when --json-schema gives one. With --jsonl the \
        texts are JSON strings, one per line on stdin, and each answer is one JSON line.
        """)

    @OptionGroup(title: "The constraint") var constraints: ConstraintOptions

    @Flag(help: "Print each text (a JSON value) as generation spells it instead of matching.")
    var canonical = false

    @Flag(help: "Read texts as JSON strings, one per line on stdin; write one JSON answer per line.")
    var jsonl = false

    @Flag(name: .customLong("without-restrictions"), help: "With --json-schema: also accept valid values generation never writes (extra properties beside declared ones, values failing format, long numbers), to tell restrictions from gaps.")
    var withoutRestrictions = false

    @Option(help: "Instead of matching, print this many random complete matches of the grammar, one JSON string per line (null where a walk found none).")
    var walks: Int?

    @Option(help: "The seed of --walks.")
    var seed: UInt64 = 1

    @Argument(help: "The texts.")
    var texts: [String] = []

    func run() throws {
        let schema = try constraints.schemaText()
        let given = try constraints.constraint()
        guard given != nil || canonical else { throw ValidationError("give a constraint, or --canonical") }
        var grammarCompiled: Grammar?
        if !canonical, let c = given {
            do {
                if withoutRestrictions, let schema { grammarCompiled = try JSONSchema.compile(schema, restrictions: false) } else { grammarCompiled = try c.compile() }
            } catch { throw RuntimeError(error) }
        }
        if let walks, let g = grammarCompiled {
            var rng = SeededGenerator(seed: seed)
            for _ in 0..<max(0, walks) {
                if let m = g.randomMatch(using: &rng) {
                    var out = ""
                    JSONValue.writeString(String(decoding: m, as: UTF8.self), into: &out)
                    print(out)
                } else { print("null") }
            }
            return
        }
        func answer(_ text: String) throws -> String {
            if canonical {
                do { return try JSONSchema.canonical(text, schema: schema) } catch { throw RuntimeError(error) }
            }
            return grammarCompiled!.matches(text) ? "true" : "false"
        }
        if jsonl {
            while let line = readLine(strippingNewline: true) {
                let text: String
                do {
                    guard let s = try JSONParser.parse(line).stringValue else { throw ValidationError("each line must be a JSON string") }
                    text = s
                } catch let e as ValidationError { throw e } catch { throw RuntimeError(error) }
                let a = try answer(text)
                if canonical { var out = ""; JSONValue.writeString(a, into: &out); print(out) } else { print(a) }
            }
        } else {
            for t in texts { print(try answer(t)) }
        }
    }
}
