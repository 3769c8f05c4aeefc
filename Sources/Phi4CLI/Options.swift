// What the subcommands share: the model options group, sampling options with the library's
// defaults, the error a runtime failure throws, and small helpers.

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
@preconcurrency import Glibc  // stdout and stderr: C globals (FILE streams lock themselves)
#endif

/// A failure while running a command (a file that cannot be read, an invalid model): the tool
/// prints "Error: " and the library's message and exits with status 1. Usage errors are
/// `ValidationError`s: they print the usage text and exit with status 64.
struct RuntimeError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
    init(_ error: Error) { description = "\(error)" }
}

/// Runs `body`, turning any error it throws into a ``RuntimeError`` with the library's message.
func runtime<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as RuntimeError { throw e } catch { throw RuntimeError(error) }
}

/// The options of every command that runs a model.
struct ModelOptions: ParsableArguments {
    @Option(name: [.customShort("m"), .customLong("model")], help: "A Phi-4 model: a GGUF file, an HF directory, or a model on the Hugging Face Hub, OWNER/NAME[:QUANT][@REVISION] (`-hf REF` too), run from the Hugging Face cache and downloaded there first when missing (see `phi4 pull`).")
    var model: String

    @Option(name: .customLong("hf-file"), help: "For a Hub model: the GGUF file to run, by its path in the repository, when the quant tag picks none.")
    var hfFile: String?

    @Option(help: "Weight type to run an HF checkpoint or a float (F16, BF16, F32) GGUF in: f32, q8_0, q4_0, q4_0-mixed or q4_k_m (llama.cpp's Q4_K_M mix; quantized at load, streaming; quantized GGUF tensors run as stored).")
    var weights: String?

    @Option(name: [.customShort("t"), .customLong("threads")], help: "Threads (default: the CPUs this process may use).")
    var threads: Int?

    @Option(name: [.customShort("c"), .customLong("ctx"), .customLong("ctx-size")], help: "Context capacity: the positions the KV cache holds (default: per command).")
    var ctx: Int?

    @Option(name: [.customShort("b"), .customLong("batch-size")], help: "Prompt tokens evaluated in one pass (default 512).")
    var batchSize: Int?

    @Option(name: .customLong("kv-type"), help: "KV cache type: f32, f16 or q8_0 (default: f16 for quantized weights, f32 otherwise).")
    var kvType: String?

    /// Loads the model (runtime failures as RuntimeError).
    func loadModel() throws -> Model {
        let path = try resolveModel(model, hfFile: hfFile)
        var type = weights ?? "f32"
        if weights == nil, path != model, FileIO.isDirectory(path), let best = bestFittingWeights(path) {
            type = best.type.rawValue
            printError("\(model): a transformers checkpoint, quantized at load to \(type) (about \(fmt(Double(best.bytes) / 1e9)) GB of \(fmt(Double(best.available) / 1e9)) GB available; --weights chooses)")
        }
        return try Phi4CLI.loadModel(path, weights: type)
    }

    /// The weight type name in force (`--weights`, default f32).
    var weightsName: String { weights ?? "f32" }

    /// The `--kv-type`, if given.
    func cacheType() throws -> KVCacheType? { try kvType.map(parseKVType) }

    /// A session of `capacity` positions (the default when `--ctx` is not given) with these options.
    func session(_ m: Model, defaultCapacity: Int, batchSize defaultBatch: Int = 512) throws -> Session {
        let cache = try cacheType()
        return try runtime {
            try Session(model: m, contextLength: ctx ?? min(defaultCapacity, m.config.maxPositions), batchSize: batchSize ?? defaultBatch,
                        threads: threads, cacheType: cache)
        }
    }
}

/// Sampling options; every one left out takes the library's default (``SamplingParameters``).
struct SamplingOptions: ParsableArguments {
    @Option(name: [.customLong("temperature"), .customLong("temp")], help: "Sampling temperature (0: greedy; default \(SamplingParameters().temperature)).")
    var temperature: Float?

    @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens (0: off; default \(SamplingParameters().topK)).")
    var topK: Int?

    @Option(name: .customLong("top-p"), help: "Nucleus sampling threshold (1: off; default \(SamplingParameters().topP)).")
    var topP: Float?

    @Option(name: .customLong("min-p"), help: "Drop tokens below min-p × the top probability (0: off; default \(SamplingParameters().minP)).")
    var minP: Float?

    @Option(name: .customLong("repeat-penalty"), help: "Repetition penalty (1: off).")
    var repeatPenalty: Float?

    @Option(name: .customLong("presence-penalty"), help: "Presence penalty (0: off).")
    var presencePenalty: Float?

    @Option(name: .customLong("frequency-penalty"), help: "Frequency penalty (0: off).")
    var frequencyPenalty: Float?

    @Option(name: [.customShort("s"), .customLong("seed")], help: "Random seed (same seed, same text).")
    var seed: UInt64?

    @Option(name: .customLong("typical"), help: "Locally typical sampling with this p (1: off).")
    var typicalP: Float?

    @Option(help: "Mirostat: 0 off, 1 Mirostat, 2 Mirostat 2.0 (replaces top-k, top-p, min-p and typical).")
    var mirostat: Int?

    @Option(name: .customLong("mirostat-ent"), help: "Mirostat's target surprise τ in bits (default \(SamplingParameters().mirostatTau)).")
    var mirostatTau: Float?

    @Option(name: .customLong("mirostat-lr"), help: "Mirostat's learning rate η (default \(SamplingParameters().mirostatEta)).")
    var mirostatEta: Float?

    @Flag(help: "Greedy decoding (same as --temperature 0).")
    var greedy = false

    /// The library's defaults with the options given applied.
    var parameters: SamplingParameters {
        var s = SamplingParameters()
        if let temperature { s.temperature = temperature }
        if greedy { s.temperature = 0 }
        if let topK { s.topK = topK }
        if let topP { s.topP = topP }
        if let minP { s.minP = minP }
        if let repeatPenalty { s.repetitionPenalty = repeatPenalty }
        if let presencePenalty { s.presencePenalty = presencePenalty }
        if let frequencyPenalty { s.frequencyPenalty = frequencyPenalty }
        if let typicalP { s.typicalP = typicalP }
        if let mirostat { s.mirostat = mirostat }
        if let mirostatTau { s.mirostatTau = mirostatTau }
        if let mirostatEta { s.mirostatEta = mirostatEta }
        s.seed = seed
        return s
    }
}

/// Loads a tokenizer (runtime failures as RuntimeError).
func loadTokenizer(_ path: String) throws -> Tokenizer {
    try runtime { try Tokenizer.load(path: path) }
}

/// Formats ids as a compact JSON array.
func formatIDs(_ ids: [TokenID]) -> String {
    "[" + ids.map(String.init).joined(separator: ",") + "]"
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

/// Loads a model (runtime failures as RuntimeError).
func loadModel(_ path: String, weights: String = "f32") throws -> Model {
    guard let type = WeightType(rawValue: weights) else {
        throw ValidationError("--weights must be one of \(WeightType.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    var options = ModelLoadOptions()
    options.weightType = type
    options.progress = { done, total in  // converting a float GGUF (minutes at full size)
        if done == total || done % 8 == 1 { printError("converting weights to \(type.rawValue): \(done)/\(total) matrices") }
    }
    return try runtime { try Model.load(path: path, options: options) }
}

/// The most precise weight type whose model, KV cache (4096 positions) and scratch fit the memory
/// this process can still allocate (f32, then q8_0, q4_k_m, q4_0); nil when the config cannot be
/// read or the memory not measured.
func bestFittingWeights(_ path: String) -> (type: WeightType, bytes: Int, available: Int)? {
    guard let c = try? Model.config(path: path), let available = MemoryEstimate.availableBytes() else { return nil }
    for type in [WeightType.f32, .q8_0, .q4_K_M, .q4_0] {
        let e = MemoryEstimate(config: c, weights: type, contextLength: min(4096, c.maxPositions))
        if e.total <= available { return (type, e.total, available) }
    }
    return (.q4_0, MemoryEstimate(config: c, weights: .q4_0, contextLength: min(4096, c.maxPositions)).total, available)
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

/// Formats a rate with two decimals.
func fmt(_ v: Double) -> String {
    let r = (v * 100).rounded() / 100
    return String(r)
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

extension String {
    /// The string without leading and trailing spaces, tabs and line breaks.
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s = s.dropFirst() }
        while let c = s.last, c.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}

/// The constraint options `generate` and `dev match` share: at most one of a JSON Schema (text or
/// file), any JSON object, a GBNF grammar (text or file) or a regular expression.
struct ConstraintOptions: ParsableArguments {
    @Option(name: .customLong("json-schema"), help: "A JSON Schema (its JSON text): valid instances of it.")
    var jsonSchema: String?

    @Option(name: .customLong("json-schema-file"), help: "The same, with the schema read from this file.")
    var jsonSchemaFile: String?

    @Flag(name: [.customLong("json"), .customLong("json-object")], help: "Any JSON object.")
    var json = false

    @Option(help: "A GBNF grammar (its text; start rule root).")
    var grammar: String?

    @Option(name: .customLong("grammar-file"), help: "The same, with the grammar read from this file.")
    var grammarFile: String?

    @Option(help: "A regular expression the whole text must match.")
    var regex: String?

    /// The JSON Schema's text, read from its file when given as one.
    func schemaText() throws -> String? {
        if let f = jsonSchemaFile {
            do { return String(decoding: try FileIO.readAll(f, limit: 1 << 24), as: UTF8.self) } catch { throw RuntimeError(error) }
        }
        return jsonSchema
    }

    /// The constraint given (nil for none); more than one is a usage error.
    func constraint() throws -> Constraint? {
        let given = [jsonSchema != nil, jsonSchemaFile != nil, json, grammar != nil, grammarFile != nil, regex != nil]
        if given.filter({ $0 }).count > 1 {
            throw ValidationError("give at most one of --json-schema(-file), --json, --grammar(-file), --regex")
        }
        if let s = try schemaText() { return .jsonSchema(s) }
        if let f = grammarFile {
            do { return .grammar(String(decoding: try FileIO.readAll(f, limit: 1 << 24), as: UTF8.self)) } catch { throw RuntimeError(error) }
        }
        if let g = grammar { return .grammar(g) }
        if let r = regex { return .regex(r) }
        return json ? .jsonObject : nil
    }
}
