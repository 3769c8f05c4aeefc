import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

@main
struct Phi4Command: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "phi4",
        abstract: "Run Microsoft's Phi-4 on the CPU: tokenize, generate, benchmark.",
        version: Phi4Version.string,
        subcommands: [Demo.self, Generate.self, Chat.self, Perplexity.self, Bench.self, Quantize.self, Info.self, Dev.self, Logits.self, Tokenize.self, Detokenize.self, ChatPrompt.self, BenchTokenizer.self])
}

/// Loads a tokenizer or exits with the error message.
func loadTokenizer(_ path: String) throws -> Tokenizer {
    do {
        return try Tokenizer.load(path: path)
    } catch {
        throw ValidationError(error.description)
    }
}

/// Formats ids as a compact JSON array.
func formatIDs(_ ids: [TokenID]) -> String {
    "[" + ids.map(String.init).joined(separator: ",") + "]"
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the token ids of a text (or of JSON lines from stdin with --jsonl).")

    @Option(help: "A model directory, a tokenizer.json or a .tiktoken file.")
    var tokenizer: String

    @Flag(help: "Recognise special-token text such as <|im_end|>.")
    var special = false

    @Flag(help: "Read JSON lines {\"text\": ..., \"special\": bool} from stdin; print one id array per line.")
    var jsonl = false

    @Argument(help: "The text to tokenize.")
    var text: String?

    func run() throws {
        let tok = try loadTokenizer(tokenizer)
        if jsonl {
            var lineNumber = 0
            while let line = readLine(strippingNewline: true) {
                lineNumber += 1
                if line.isEmpty { continue }
                let value: JSONValue
                do { value = try JSONParser.parse(line) } catch {
                    throw ValidationError("stdin line \(lineNumber): \(error)")
                }
                guard let text = value["text"]?.stringValue else {
                    throw ValidationError("stdin line \(lineNumber): no \"text\" string")
                }
                let allow = value["special"]?.boolValue ?? special
                print(formatIDs(tok.encode(text, allowSpecial: allow)))
            }
            return
        }
        guard let text else { throw ValidationError("give a TEXT argument or --jsonl") }
        print(formatIDs(tok.encode(text, allowSpecial: special)))
    }
}

struct Detokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the text of comma-separated token ids.")

    @Option(help: "A model directory, a tokenizer.json or a .tiktoken file.")
    var tokenizer: String

    @Argument(help: "Token ids, e.g. 9906,11,1917 (or a JSON array).")
    var ids: String

    func run() throws {
        let tok = try loadTokenizer(tokenizer)
        var list: [TokenID] = []
        let trimmed = ids.filter { $0 != "[" && $0 != "]" && $0 != " " }
        for part in trimmed.split(separator: ",") {
            guard let id = TokenID(part) else { throw ValidationError("not a token id: \(part)") }
            list.append(id)
        }
        do {
            print(try tok.decodeText(list))
        } catch {
            throw ValidationError(error.description)
        }
    }
}

struct ChatPrompt: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat-prompt",
        abstract: "Print the ids (and the text) of a Phi-4 chat prompt.")

    @Option(help: "A model directory, a tokenizer.json or a .tiktoken file.")
    var tokenizer: String

    @Option(help: "System message.")
    var system: String?

    @Argument(help: "The user's message.")
    var user: String

    func run() throws {
        let tok = try loadTokenizer(tokenizer)
        var messages: [ChatMessage] = []
        if let system { messages.append(.system(system)) }
        messages.append(.user(user))
        print(tok.renderChat(messages))
        do { print(formatIDs(try tok.applyChatTemplate(messages))) } catch {
            throw ValidationError(error.description)
        }
    }
}

struct BenchTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-tokenizer",
        abstract: "Measure encode throughput (one thread) on a text file.")

    @Option(help: "A model directory, a tokenizer.json or a .tiktoken file.")
    var tokenizer: String

    @Option(help: "How many times to encode the file; the best run is reported.")
    var repeats = 3

    @Argument(help: "A UTF-8 text file.")
    var file: String

    func run() throws {
        let tok = try loadTokenizer(tokenizer)
        let bytes = try FileIO_readAll(file)
        let text = String(decoding: bytes, as: UTF8.self)
        var best = Double.infinity
        var count = 0
        for _ in 0..<max(1, repeats) {
            let clock = ContinuousClock()
            let start = clock.now
            count = tok.encode(text).count
            let d = clock.now - start
            let s = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
            best = min(best, s)
        }
        let mb = Double(bytes.count) / 1e6
        print("bytes=\(bytes.count) tokens=\(count) seconds=\(best) MB/s=\(mb / best)")
    }
}

/// Parses "1,2,3" (or "[1, 2, 3]") into token ids.
func parseIDs(_ text: String) throws -> [TokenID] {
    var list: [TokenID] = []
    for part in text.filter({ $0 != "[" && $0 != "]" && $0 != " " }).split(separator: ",") {
        guard let id = TokenID(part) else { throw ValidationError("not a token id: \(part)") }
        list.append(id)
    }
    return list
}

/// Loads a model or exits with the error message.
func loadModel(_ path: String, weights: String = "f32") throws -> Model {
    guard let type = WeightType(rawValue: weights) else {
        throw ValidationError("--weights must be one of \(WeightType.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    var options = ModelLoadOptions()
    options.weightType = type
    do { return try Model.load(path: path, options: options) } catch { throw ValidationError(error.description) }
}

/// A `--kv-type` value.
func parseKVType(_ s: String) throws -> KVCacheType {
    guard let t = KVCacheType(rawValue: s) else { throw ValidationError("--kv-type must be f32, f16 or q8_0") }
    return t
}

/// Writes a line to standard error.
func printError(_ text: String) {
    fputs(text + "\n", stderr)
}

/// The bundled demo model's file name, under `models/`.
let demoModelName = "phi4-demo-q8_0.gguf"

/// Finds the bundled demo model: $PHI4_DEMO_MODEL, else `models/` in the working directory or
/// in a parent of the executable's directory (the repository, for `.build/release/phi4`).
func findDemoModel() -> String? {
    if let env = getenv("PHI4_DEMO_MODEL") { return String(cString: env) }
    var candidates = ["models/" + demoModelName]
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    if n > 0 {
        var dir = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        for _ in 0..<5 {
            guard let slash = dir.lastIndex(of: "/") else { break }
            dir = String(dir[..<slash])
            candidates.append(dir + "/models/" + demoModelName)
        }
    }
    return candidates.first { access($0, R_OK) == 0 }
}

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the bundled demo model: Phi-4's architecture and tokenizer, trained small on Python's standard library, completing Python code.")

    @Option(help: "The model (default: models/\(demoModelName)).")
    var model: String?

    @Option(help: "A prompt to complete instead of the built-in ones.")
    var prompt: String?

    @Option(name: .customLong("max-tokens"), help: "Tokens to generate per prompt.")
    var maxTokens = 48

    @Option(help: "Threads (default: the CPUs this process may use).")
    var threads: Int?

    func run() throws {
        guard let path = model ?? findDemoModel() else {
            throw ValidationError("the demo model models/\(demoModelName) was not found (run from the repository, or set PHI4_DEMO_MODEL)")
        }
        let clock = ContinuousClock()
        let t0 = clock.now
        let m = try loadModel(path)
        let load = clock.now - t0
        print("model: \(path) — Phi-4 architecture, \(m.config.layerCount) layers, hidden \(m.config.hiddenSize), vocabulary \(m.config.vocabSize), \(m.config.parameterCount / 1_000_000)M parameters, loaded in \(fmt(Double(load.components.attoseconds) * 1e-15 + Double(load.components.seconds) * 1e3)) ms")
        print("(a small model trained on the Python standard library; the same code runs the 14B model)\n")
        // Held-out style prompts: code the model never saw, in the style of its training text.
        var prompts: [(String, Float)] = [
            ("import os\nimport sys\n\n\ndef main():\n", 0),
            ("class Stack:\n    \"\"\"A last-in, first-out stack.\"\"\"\n\n    def __init__(self):\n", 0.7),
            ("def read_lines(path):\n    with open(path) as f:\n", 0.7),
        ]
        if let prompt { prompts = [(prompt, 0)] }
        for (text, temperature) in prompts {
            let ids = m.tokenizer.encode(text, addBOS: true)
            var options = GenerationOptions()
            options.maxTokens = maxTokens
            options.sampling.temperature = temperature
            options.sampling.seed = 1
            print(temperature == 0 ? "--- greedy ---" : "--- sampled (temperature \(temperature), seed 1) ---")
            fputs(text, stdout)
            do {
                let session = try Session(model: m, contextLength: 512, threads: threads)
                let result = try session.generate(ids, options: options) { piece, _ in
                    fputs(piece, stdout)
                    fflush(stdout)
                    return true
                }
                let tg = Double(result.tokens.count) / max(result.generationSeconds, 1e-9)
                let pp = Double(result.promptTokenCount) / max(result.promptSeconds, 1e-9)
                print("\n[\(result.tokens.count) tokens, \(fmt(tg)) tok/s; prompt \(result.promptTokenCount) tokens at \(fmt(pp)) tok/s]\n")
            } catch {
                throw ValidationError(error.description)
            }
        }
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text (streamed to stdout) or token ids from a prompt.")

    @Option(help: "A Phi-4 model: an HF directory or a GGUF file.")
    var model: String

    @Option(help: "Weight type to run in: f32, q8_0, q4_0 or q4_0-mixed (quantized at load).")
    var weights = "f32"

    @Option(help: "The prompt text.")
    var prompt: String?

    @Option(help: "The prompt as comma-separated token ids instead of text.")
    var ids: String?

    @Flag(help: "Wrap the prompt in Phi-4's chat template (as the user's message).")
    var chat = false

    @Option(help: "A system message (with --chat).")
    var system: String?

    @Option(name: .customLong("max-tokens"), help: "The most tokens to generate.")
    var maxTokens = 256

    @Option(help: "Sampling temperature (0: greedy).")
    var temperature: Float = 0.8

    @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens (0: off).")
    var topK = 40

    @Option(name: .customLong("top-p"), help: "Nucleus sampling threshold (1: off).")
    var topP: Float = 0.95

    @Option(name: .customLong("min-p"), help: "Drop tokens below min-p × the top probability (0: off).")
    var minP: Float = 0.05

    @Option(name: .customLong("repeat-penalty"), help: "Repetition penalty (1: off).")
    var repeatPenalty: Float = 1

    @Option(name: .customLong("presence-penalty"), help: "Presence penalty (0: off).")
    var presencePenalty: Float = 0

    @Option(name: .customLong("frequency-penalty"), help: "Frequency penalty (0: off).")
    var frequencyPenalty: Float = 0

    @Option(help: "Random seed (same seed, same text).")
    var seed: UInt64?

    @Option(name: .customLong("stop"), help: "A stop string (repeatable).")
    var stop: [String] = []

    @Flag(help: "Greedy decoding (same as --temperature 0).")
    var greedy = false

    @Flag(name: .customLong("print-ids"), help: "Print the generated ids, comma-separated, instead of text.")
    var printIDs = false

    @Option(help: "Context length (tokens).")
    var context: Int?

    @Option(name: .customLong("kv-type"), help: "KV cache type: f32, f16 or q8_0 (default: f16 for quantized weights, f32 otherwise).")
    var kvType: String?

    @Option(help: "Prompt-lookup decoding: propose up to N tokens (≤ 7) from earlier text, verified in one pass (0: off).")
    var lookup = 0

    @Option(help: "Threads (default: the CPUs this process may use).")
    var threads: Int?

    func run() throws {
        let m = try loadModel(model, weights: weights)
        var promptIDs: [TokenID]
        if let ids {
            promptIDs = try parseIDs(ids)
        } else if let prompt {
            if chat {
                var messages: [ChatMessage] = []
                if let system { messages.append(.system(system)) }
                messages.append(.user(prompt))
                do { promptIDs = try m.tokenizer.applyChatTemplate(messages) } catch { throw ValidationError(error.description) }
            } else {
                promptIDs = m.tokenizer.encode(prompt, addBOS: true)
            }
        } else {
            throw ValidationError("give --prompt TEXT or --ids 1,2,3")
        }
        if promptIDs.isEmpty { throw ValidationError("the prompt is empty") }
        var options = GenerationOptions()
        options.lookup = lookup
        options.maxTokens = maxTokens
        options.stopStrings = stop
        var s = SamplingParameters()
        s.temperature = greedy ? 0 : temperature
        s.topK = topK
        s.topP = topP
        s.minP = minP
        s.repetitionPenalty = repeatPenalty
        s.presencePenalty = presencePenalty
        s.frequencyPenalty = frequencyPenalty
        s.seed = seed
        options.sampling = s
        let contextLength = context ?? min(m.config.maxPositions, max(4096, promptIDs.count + maxTokens))
        let cacheType = try kvType.map(parseKVType)
        do {
            let session = try Session(model: m, contextLength: contextLength, threads: threads, cacheType: cacheType)
            let result = try session.generate(promptIDs, options: options) { text, _ in
                if !printIDs {
                    fputs(text, stdout)
                    fflush(stdout)
                }
                return true
            }
            if printIDs {
                print(result.tokens.map(String.init).joined(separator: ","))
            } else {
                print("")
            }
            fflush(stdout)
            let pp = Double(result.promptTokenCount) / max(result.promptSeconds, 1e-9)
            let tg = Double(result.tokens.count) / max(result.generationSeconds, 1e-9)
            let drafts = lookup > 0 ? "; lookup: \(result.acceptedDraftTokens) of \(result.draftTokens) proposed tokens accepted" : ""
            printError("prompt: \(result.promptTokenCount) tokens, \(fmt(pp)) tok/s; generated: \(result.tokens.count) tokens, \(fmt(tg)) tok/s; stop: \(result.stopReason.rawValue)\(drafts)")
        } catch {
            throw ValidationError(error.description)
        }
    }
}

/// Formats a rate with two decimals.
func fmt(_ v: Double) -> String {
    let r = (v * 100).rounded() / 100
    return String(r)
}

struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the logits of a token sequence as a float32 .npy array [n, vocab].")

    @Option(help: "A Phi-4 model: an HF directory or a GGUF file.")
    var model: String

    @Option(help: "Weight type to run in: f32, q8_0, q4_0 or q4_0-mixed (quantized at load).")
    var weights = "f32"

    @Option(help: "Comma-separated token ids.")
    var ids: String

    @Flag(help: "Every position (shape [n, vocab]); otherwise only the last ([1, vocab]).")
    var all = false

    @Option(help: "The .npy file to write.")
    var out: String

    @Option(help: "Threads (default: the CPUs this process may use).")
    var threads: Int?

    @Option(name: .customLong("batch-size"), help: "Most tokens per forward chunk.")
    var batchSize = 512

    func run() throws {
        let m = try loadModel(model, weights: weights)
        let list = try parseIDs(ids)
        if list.isEmpty { throw ValidationError("no ids") }
        do {
            let session = try Session(model: m, contextLength: min(m.config.maxPositions, max(list.count, 16)),
                                      batchSize: batchSize, threads: threads)
            let logits = try session.evaluate(list, allLogits: all)
            let rows = all ? list.count : 1
            try NPY.write(path: out, shape: [rows, m.config.vocabSize], values: logits)
        } catch let e as ModelError {
            throw ValidationError(e.description)
        } catch let e as FileError {
            throw ValidationError(e.description)
        }
    }
}

/// Peak and current resident memory of this process, from /proc/self/status (kB → bytes).
func residentMemory() -> (current: Int, peak: Int) {
    guard let f = fopen("/proc/self/status", "r") else { return (0, 0) }
    defer { fclose(f) }
    var current = 0, peak = 0
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), f) != nil {
        let text = String(cString: line)
        let kb = (Int(text.filter { $0.isNumber }) ?? 0) * 1024
        if text.hasPrefix("VmRSS:") { current = kb }
        if text.hasPrefix("VmHWM:") { peak = kb }
    }
    return (current, peak)
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure prefill and decode speed (tokens/s, median and spread), peak memory and load time.")

    @Option(help: "A Phi-4 model: GGUF file or HF directory.")
    var model: String

    @Option(help: "Weight type for HF directories: f32, q8_0, q4_0 or q4_0-mixed (quantized at load).")
    var weights = "f32"

    @Option(name: [.customShort("p"), .customLong("prompt-tokens")], help: "Prompt length for the prefill measurement.")
    var promptTokens = 512

    @Option(name: [.customShort("n"), .customLong("gen-tokens")], help: "Tokens decoded one at a time.")
    var genTokens = 32

    @Option(name: [.customShort("t"), .customLong("threads")], help: "Threads (default: the CPUs this process may use).")
    var threads: Int?

    @Option(name: .customLong("batch-size"), help: "Most tokens per forward chunk.")
    var batchSize = 512

    @Option(name: [.customShort("r"), .customLong("repeats")], help: "Repetitions (median and spread are reported).")
    var repeats = 3

    @Option(name: .customLong("context"), help: "Context length to allocate (default: prompt + generated tokens).")
    var context: Int?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Option(name: .customLong("kv-type"), help: "KV cache type: f32, f16 or q8_0 (default: f16 for quantized weights, f32 otherwise).")
    var kvType: String?

    @Option(name: .customLong("verify"), help: "Also time one pass over 1…N+1 tokens with all logits (the cost of verifying N prompt-lookup drafts).")
    var verify = 0

    func run() throws {
        let clock = ContinuousClock()
        let t0 = clock.now
        let m = try loadModel(model, weights: weights)
        var x: UInt64 = 0x1234_5678
        let vocab = UInt64(m.tokenizer.bpeTokenCount)
        let prompt: [TokenID] = (0..<promptTokens).map { _ in
            x = x &* 6364136223846793005 &+ 1442695040888963407
            return TokenID((x >> 33) % vocab)
        }
        let cacheType = try kvType.map(parseKVType)
        var prefill: [Double] = [], decode: [Double] = []
        var loadSeconds = 0.0
        do {
            let n = context ?? min(m.config.maxPositions, promptTokens + genTokens + 1)
            let session = try Session(model: m, contextLength: n, batchSize: batchSize, threads: threads, cacheType: cacheType)
            var logits = try session.evaluate([prompt.first ?? 1])  // first token: load finished
            loadSeconds = seconds(clock.now - t0)
            for _ in 0..<max(1, repeats) {
                session.reset()
                if promptTokens > 0 {
                    let a = clock.now
                    logits = try session.evaluate(prompt)
                    prefill.append(Double(promptTokens) / seconds(clock.now - a))
                }
                if genTokens > 0 {
                    if promptTokens == 0 { session.reset(); logits = try session.evaluate([1]) }
                    let b = clock.now
                    for _ in 0..<genTokens { logits = try session.evaluate([Sampler.argmax(logits)]) }
                    decode.append(Double(genTokens) / seconds(clock.now - b))
                }
            }
            // The cost of a verification pass: t tokens evaluated at once, all logits, relative to
            // one. The sizes alternate within each repeat, so that a slow spell of the machine
            // affects them alike.
            var passes: [(Int, Double)] = []
            if verify > 0 {
                var times = [[Double]](repeating: [], count: verify + 1)
                for _ in 0..<max(1, repeats) {
                    for t in 1...(verify + 1) {
                        session.truncate(to: min(session.tokens.count, 8))
                        let c = clock.now
                        _ = try session.evaluate(Array(prompt.prefix(t)) + Array(repeating: 1, count: max(0, t - prompt.count)),
                                                 allLogits: true)
                        times[t - 1].append(seconds(clock.now - c))
                    }
                }
                passes = times.enumerated().map { ($0.offset + 1, median($0.element)) }
            }
            let mem = residentMemory()
            let format = m.weights.layers.first?.gateUp.format.rawValue ?? weights
            var kernels: [String: JSONValue] = [:]
            for f in m.matrixFormats where f != .f32 {
                var byClass: [String: JSONValue] = [:]
                for c in Kernels.BatchClass.allCases { byClass[c.label] = .string(Kernels.choice(f, c) ?? "-") }
                kernels[f.rawValue] = .object(byClass)
            }
            if json {
                var o: [String: JSONValue] = [
                    "model": .string(model), "weights": .string(format), "threads": .number(Double(session.decoder.threads)),
                    "n_prompt": .number(Double(promptTokens)), "n_gen": .number(Double(genTokens)),
                    "repeats": .number(Double(max(1, repeats))), "kernels": .object(kernels),
                    "cpu": .string(Kernels.cpuModel), "cpu_flags": .string(Kernels.cpuFlags),
                    "kernel_calibration_ms": .number(Kernels.calibrationMilliseconds),
                    "peak_rss_bytes": .number(Double(mem.peak)), "load_s": .number(loadSeconds),
                    "weight_bytes": .number(Double(m.weights.byteCount)),
                    "kv_type": .string(session.cache.type.rawValue), "kv_positions": .number(Double(session.cache.capacity)),
                    "kv_bytes": .number(Double(session.cache.byteCount)),
                    // Decoding reads every weight once per token except the embedding table (one row).
                    "bytes_per_token": .number(Double(m.weights.byteCount - (m.weights.lmHead === m.weights.embedding ? 0 : m.weights.embedding.byteCount))),
                ]
                if !prefill.isEmpty {
                    o["pp_tps"] = .number(median(prefill))
                    o["pp_tps_all"] = .array(prefill.map { .number($0) })
                }
                if !decode.isEmpty {
                    o["tg_tps"] = .number(median(decode))
                    o["tg_tps_all"] = .array(decode.map { .number($0) })
                }
                if !passes.isEmpty {
                    // Median seconds of a pass over 1, 2, … tokens.
                    o["verify_s"] = .array(passes.map { .number($0.1) })
                }
                print(JSONValue.object(o).serialized)
            } else {
                print("model: \(model) (\(m.config.layerCount) layers, \(format) weights, \(fmt(Double(m.weights.byteCount) / 1e9)) GB)")
                print("cpu: \(Kernels.cpuModel) [\(Kernels.cpuFlags)]")
                for line in Kernels.summary(m.matrixFormats) { print("kernels \(line)") }
                print("threads: \(session.decoder.threads), batch: \(session.decoder.batchSize), load to first token: \(fmt(loadSeconds)) s")
                if !prefill.isEmpty { print("prefill pp\(promptTokens): \(spread(prefill)) tok/s") }
                if !decode.isEmpty { print("decode  tg\(genTokens): \(spread(decode)) tok/s") }
                for (t, sec) in passes {
                    print("pass of \(t) token\(t == 1 ? "" : "s"): \(fmt(sec * 1e3)) ms (\(fmt(sec / passes[0].1))× one token)")
                }
                print("memory: rss \(fmt(Double(mem.current) / 1e9)) GB, peak \(fmt(Double(mem.peak) / 1e9)) GB; KV cache \(session.cache.type.rawValue), \(session.cache.capacity) positions, \(fmt(Double(session.cache.byteCount) / 1e9)) GB")
            }
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    func spread(_ v: [Double]) -> String {
        "\(fmt(median(v))) (\(fmt(v.min()!))–\(fmt(v.max()!)), \(v.count) runs)"
    }

    func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write an HF Phi-4 checkpoint as a GGUF file (f32, f16, q8_0, q4_0, q4_0-mixed, q4_k_m, q5_k_m or q6_k).")

    @Option(help: "An HF Phi-4 directory.")
    var model: String

    @Option(help: "f32, f16, q8_0, q4_0, q4_0-mixed (q4_0 with down_proj and lm_head in q8_0), or llama.cpp's K-quant mixes q4_k_m, q5_k_m, q6_k.")
    var type: String

    @Option(help: "The GGUF file to write.")
    var out: String

    func run() throws {
        guard let t = GGUFExport.FileType(rawValue: type) else {
            throw ValidationError("--type must be one of \(GGUFExport.FileType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let clock = ContinuousClock()
        let start = clock.now
        do {
            try GGUFExport.write(hfDirectory: model, type: t, output: out) { done, total, name, kind in
                let width = 30
                let filled = total > 0 ? width * done / total : width
                let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                fputs("\r[\(bar)] \(done)/\(total) \(name) \(kind)                    ", stderr)
                if done == total { fputs("\n", stderr) }
            }
        } catch {
            throw ValidationError("\(error)")
        }
        let d = clock.now - start
        let mem = residentMemory()
        printError("wrote \(out) in \(d.components.seconds) s; peak memory \(fmt(Double(mem.peak) / 1e9)) GB")
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a model: architecture, shape, tensor types and sizes, tokenizer.")

    @Argument(help: "A GGUF file or an HF Phi-4 directory.")
    var path: String

    @Option(name: .customLong("ctx"), help: "Context length to account the KV cache for (default: min(model context, 4096)).")
    var contextLength: Int?

    func run() throws {
        defer { printMemory() }
        if path.hasSuffix(".gguf") {
            let g: GGUFFile
            do { g = try GGUFFile(path: path) } catch { throw ValidationError(error.description) }
            print("format: GGUF v\(g.version), \(g.tensors.count) tensors, \(g.metadata.count) metadata entries")
            print("architecture: \(g.metadata["general.architecture"]?.stringValue ?? "?")")
            for key in ["context_length", "embedding_length", "feed_forward_length", "block_count", "attention.head_count",
                        "attention.head_count_kv", "rope.freq_base", "rope.dimension_count"] {
                if let v = g.metadata["phi3." + key] { print("  \(key): \(v.doubleValue.map { String($0) } ?? "?")") }
            }
            var byType: [String: (Int, Int)] = [:]
            var bytes = 0, elements = 0
            for t in g.tensors.values {
                let k = t.type.displayName.lowercased()
                byType[k, default: (0, 0)].0 += 1
                byType[k, default: (0, 0)].1 += t.data.count
                bytes += t.data.count
                elements += t.count
            }
            for (k, v) in byType.sorted(by: { $0.key < $1.key }) {
                print("tensors \(k): \(v.0), \(fmt(Double(v.1) / 1e6)) MB")
            }
            print("effective bits per weight: \(fmt(Double(bytes * 8) / Double(max(1, elements)))) (\(fmt(Double(bytes) / 1e9)) GB of tensors, \(elements) values)")
            let converted = g.tensors.values.filter { [.q4_1, .q5_0, .q5_1].contains($0.type) }.count
            if converted > 0 { print("run as: \(converted) tensors converted to q8_0 at load; q8_0/q4_0/q4_k/q5_k/q6_k used in place from the mapping") }
            let fileType = g.metadata["general.file_type"]?.intValue ?? 0
            let keptF16 = g.tensorOrder.filter { g.tensors[$0]?.type == .f16 && ($0.hasSuffix(".weight")) && g.tensors[$0]!.dims.count == 2 }
            if fileType > 1 && !keptF16.isEmpty {
                print("kept in f16 (rows not whole 32-value blocks): \(keptF16.count) tensors, e.g. \(keptF16.prefix(3).joined(separator: ", "))")
            }
            for name in g.tensorOrder.prefix(9) + (g.tensorOrder.count > 9 ? ["…"] : []) {
                if let t = g.tensors[name] { print("  \(name) \(t.dims) \(t.type)") } else { print("  …") }
            }
            let tokens = g.metadata["tokenizer.ggml.tokens"]?.arrayValue?.count ?? 0
            print("tokenizer: \(g.metadata["tokenizer.ggml.model"]?.stringValue ?? "?") (pre \(g.metadata["tokenizer.ggml.pre"]?.stringValue ?? "?")), \(tokens) tokens, \(g.metadata["tokenizer.ggml.merges"]?.arrayValue?.count ?? 0) merges, bos \(g.metadata["tokenizer.ggml.bos_token_id"]?.intValue ?? -1), eos \(g.metadata["tokenizer.ggml.eos_token_id"]?.intValue ?? -1), chat template: \(g.metadata["tokenizer.chat_template"] != nil ? "yes" : "no")")
            // Q4_1 / Q5_0 / Q5_1 run as Q8_0 (converted at load).
            let runFormats = g.tensors.values.filter { $0.dims.count == 2 }.compactMap { t -> WeightFormat? in
                [.q4_1, .q5_0, .q5_1].contains(t.type) ? .q8_0 : WeightFormat(rawValue: t.type.displayName.lowercased())
            }
            Kernels.calibrate(runFormats)
            print("cpu: \(Kernels.cpuModel) [\(Kernels.cpuFlags)]")
            for line in Kernels.summary(runFormats.sorted { $0.rawValue < $1.rawValue }) { print("kernels \(line)") }
        } else {
            var options = ModelLoadOptions()
            options.checkMemory = false
            do {
                let c = try Model.config(path: path)
                print("format: HF safetensors directory")
                print("architecture: Phi3ForCausalLM, \(c.layerCount) layers, hidden \(c.hiddenSize), FFN \(c.intermediateSize), heads \(c.headCount)/\(c.kvHeadCount) of \(c.headDim), vocabulary \(c.vocabSize), context \(c.maxPositions), rope θ \(c.ropeTheta), stored \(c.storedDType ?? "?")")
                print("parameters: \(c.parameterCount)")
                let ckpt = try SafeTensorsCheckpoint(directory: path)
                var byType: [String: Int] = [:]
                for t in ckpt.tensors.values { byType[t.dtype.rawValue, default: 0] += 1 }
                print("tensors: \(ckpt.tensors.count) (\(byType.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", ")))")
                for w in WeightType.allCases {
                    let e = MemoryEstimate(config: c, weights: w, contextLength: min(4096, c.maxPositions))
                    print("  as \(w.rawValue): \(fmt(Double(e.weightBytes) / 1e9)) GB of weights")
                }
                let tok = try Tokenizer.load(path: path)
                print("tokenizer: \(tok.bpeTokenCount) BPE tokens, \(tok.specialTokens.count) special, eos \(tok.eosTokenID.map(String.init) ?? "-"), end of generation \(tok.endOfGenerationIDs.sorted())")
            } catch {
                throw ValidationError("\(error)")
            }
        }
    }

    /// KV cache and scratch memory for the chosen context, next to what this machine has free.
    func printMemory() {
        guard let c = try? Model.config(path: path) else { return }
        let n = contextLength ?? min(4096, c.maxPositions)
        let perToken = MemoryEstimate.cacheBytes(config: c, contextLength: 1, type: .f16)
        let f16 = MemoryEstimate.cacheBytes(config: c, contextLength: n, type: .f16)
        let f32 = MemoryEstimate.cacheBytes(config: c, contextLength: n, type: .f32)
        let q8 = MemoryEstimate.cacheBytes(config: c, contextLength: n, type: .q8_0)
        let scratch = MemoryEstimate(config: c, weights: .q4_0, contextLength: 0).scratchBytes
        let limit = n > c.maxPositions ? " (more than the model's \(c.maxPositions): a context cannot be created)" : ""
        print("KV cache at \(n) positions\(limit): f16 \(fmt(Double(f16) / 1e9)) GB, f32 \(fmt(Double(f32) / 1e9)) GB, q8_0 \(fmt(Double(q8) / 1e9)) GB (\(perToken / 1024) KiB per token in f16); scratch \(fmt(Double(scratch) / 1e6)) MB")
        if let free = MemoryEstimate.availableBytes() { print("memory available now: \(fmt(Double(free) / 1e9)) GB") }
    }
}

/// Reads a whole file (CLI helper).
func FileIO_readAll(_ path: String) throws -> [UInt8] {
    guard let f = fopen(path, "rb") else { throw ValidationError("cannot open \(path)") }
    defer { fclose(f) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n <= 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    return out
}

struct Dev: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Developer tools (random models for measurements).", subcommands: [RandomModelCommand.self])
}

struct RandomModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "random-model",
        abstract: "Write a Phi-4-shaped GGUF with random weights, streaming (for speed and memory measurements).")

    @Option(help: "Shape: phi4 (14B).")
    var shape = "phi4"

    @Option(help: "Number of layers (default: the shape's, 40).")
    var layers: Int?

    @Option(help: "f32, f16, q8_0, q4_0, q4_0-mixed, q4_k_m, q5_k_m or q6_k (K-quants: random bits).")
    var type: String

    @Option(help: "A tokenizer (model directory, tokenizer.json or .tiktoken) whose vocabulary to embed.")
    var tokenizer: String

    @Option(help: "The GGUF file to write.")
    var out: String

    @Option(help: "Random seed.")
    var seed: UInt64 = 1

    @Flag(help: "Zero matrices written as a sparse file (any size, no disk space; for load and memory-limit tests).")
    var zeros = false

    func run() throws {
        guard shape == "phi4" else { throw ValidationError("only --shape phi4 is known") }
        guard let t = GGUFExport.FileType(rawValue: type) else { throw ValidationError("unknown --type \(type)") }
        let tok = try loadTokenizer(tokenizer)
        let clock = ContinuousClock()
        let start = clock.now
        do {
            try RandomModel.write(config: .phi4, layers: layers, type: t, tokenizer: tok,
                                  tokenizerDirectory: tokenizer, output: out, seed: seed, zeros: zeros) { done, total, name in
                fputs("\r\(done)/\(total) \(name)                    ", stderr)
                if done == total { fputs("\n", stderr) }
            }
        } catch {
            throw ValidationError("\(error)")
        }
        printError("wrote \(out) in \((clock.now - start).components.seconds) s; peak memory \(fmt(Double(residentMemory().peak) / 1e9)) GB")
    }
}

/// The session a Ctrl-C should interrupt (the chat REPL's current answer).
nonisolated(unsafe) var interruptibleSession: Unmanaged<Session>?

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Chat with a model in the terminal (streaming; /reset, /system TEXT, /exit; Ctrl-C stops an answer).")

    @Option(help: "A Phi-4 model: GGUF file or HF directory.")
    var model: String

    @Option(help: "Weight type for HF directories: f32, q8_0, q4_0 or q4_0-mixed.")
    var weights = "f32"

    @Option(help: "A system message.")
    var system: String?

    @Option(help: "Sampling temperature (0: greedy).")
    var temperature: Float = 0.7

    @Option(name: .customLong("max-tokens"), help: "The most tokens per answer.")
    var maxTokens = 512

    @Option(help: "Context length (tokens).")
    var context = 4096

    @Option(help: "Random seed.")
    var seed: UInt64?

    func run() throws {
        let m = try loadModel(model, weights: weights)
        let session: Session
        do { session = try Session(model: m, contextLength: min(context, m.config.maxPositions)) } catch {
            throw ValidationError(error.description)
        }
        interruptibleSession = Unmanaged.passUnretained(session)
        signal(SIGINT) { _ in interruptibleSession?.takeUnretainedValue().cancel() }
        var options = GenerationOptions()
        options.maxTokens = maxTokens
        options.sampling.temperature = temperature
        options.sampling.seed = seed
        // The conversation so far. Each turn re-encodes it; the context keeps what is shared with
        // the previous turn (prefix reuse), so only the new messages are evaluated. When it
        // outgrows the context the oldest exchanges are dropped; the system message stays.
        var history: [ChatMessage] = system.map { $0.isEmpty ? [] : [.system($0)] } ?? []
        let budget = session.contextLength - min(maxTokens, session.contextLength / 2)
        print("phi4 chat — /reset, /system TEXT, /exit")
        while true {
            fputs("> ", stdout)
            fflush(stdout)
            guard let line = readLine() else { break }
            let text = line.trimmingSpaces()
            if text.isEmpty { continue }
            if text == "/exit" || text == "/quit" { break }
            if text == "/reset" {
                history = history.first?.role == "system" ? [history[0]] : []
                session.reset()
                print("[conversation reset]")
                continue
            }
            if text.hasPrefix("/system") {
                let message = String(text.dropFirst(7)).trimmingSpaces()
                history = message.isEmpty ? [] : [.system(message)]
                session.reset()
                print("[system message set; conversation reset]")
                continue
            }
            history.append(.user(text))
            do {
                let (prompt, dropped) = try m.tokenizer.applyChatTemplate(history, fitting: budget)
                if dropped > 0 {
                    let head = history.first?.role == "system" ? 1 : 0
                    history.removeSubrange(head..<(head + dropped))
                    print("[dropped the \(dropped) oldest messages to fit the context]")
                }
                let rest = session.reusePrefix(of: prompt)
                let result = try session.generate(rest, options: options) { piece, _ in
                    fputs(piece, stdout)
                    fflush(stdout)
                    return true
                }
                history.append(.assistant(result.text))
                let tps = Double(result.tokens.count) / max(result.generationSeconds, 1e-9)
                print(result.stopReason == .cancelled ? " [stopped]" : "")
                printError("[\(result.tokens.count) tokens, \(fmt(tps)) tok/s; \(rest.count) of \(prompt.count) prompt tokens evaluated]")
            } catch {
                print("")
                printError("error: \(error)")
                history.removeLast()
                session.reset()
            }
        }
    }
}

extension String {
    /// The string without leading and trailing spaces, tabs and line breaks.
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s = s.dropFirst() }
        while let c = s.last, c.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}

struct Perplexity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Perplexity of a model on a text file, in windows of --ctx tokens.")

    @Option(help: "A Phi-4 model: GGUF file or HF directory.")
    var model: String

    @Option(help: "Weight type for HF directories: f32, q8_0, q4_0 or q4_0-mixed.")
    var weights = "f32"

    @Option(help: "A UTF-8 text file.")
    var file: String

    @Option(help: "Window length in tokens; each window is evaluated from an empty context.")
    var ctx = 512

    @Option(name: .customLong("max-windows"), help: "Evaluate at most this many windows.")
    var maxWindows = 1_000_000

    func run() throws {
        let m = try loadModel(model, weights: weights)
        let ids = m.tokenizer.encode(String(decoding: try FileIO_readAll(file), as: UTF8.self))
        guard ids.count > ctx else { throw ValidationError("the file has \(ids.count) tokens; need more than --ctx \(ctx)") }
        let vocab = m.config.vocabSize
        var nll = 0.0
        var count = 0
        var windows = 0
        do {
            let session = try Session(model: m, contextLength: ctx)
            var start = 0
            while start + ctx <= ids.count && windows < maxWindows {
                session.reset()
                let window = Array(ids[start..<(start + ctx)])
                let logits = try session.evaluate(window, allLogits: true)
                // Score every position after the first half (each prediction sees at least ctx/2 tokens).
                for i in (ctx / 2)..<(ctx - 1) {
                    let row = logits[(i * vocab)..<((i + 1) * vocab)]
                    let maxv = Double(row.max()!)
                    var sum = 0.0
                    for v in row { sum += exp(Double(v) - maxv) }
                    nll += (log(sum) + maxv) - Double(row[row.startIndex + Int(window[i + 1])])
                    count += 1
                }
                windows += 1
                start += ctx
                fputs("\rwindow \(windows): perplexity \(fmt(exp(nll / Double(count))))   ", stderr)
            }
            fputs("\n", stderr)
        } catch {
            throw ValidationError("\(error)")
        }
        print("perplexity: \(fmt(exp(nll / Double(count)))) over \(count) predictions in \(windows) windows of \(ctx) tokens (\(model), \(m.weights.layers.first?.gateUp.format.rawValue ?? weights))")
    }
}
