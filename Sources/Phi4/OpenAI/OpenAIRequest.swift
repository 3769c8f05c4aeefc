// The OpenAI request mapping: a chat or text completion request's JSON → a prompt and
// GenerationOptions. The one place this mapping lives: the HTTP server and the bindings (through
// the C ABI) use it.

/// An error in the shape of OpenAI's API: an HTTP status, a type, the parameter at fault, a code
/// and a message. ``json`` is the response body (`{"error": {...}}`).
public struct OpenAIError: Error, Sendable, CustomStringConvertible {
    /// The HTTP status (400, 401, 404, 413, 429, 500, 503).
    public let status: Int
    /// `invalid_request_error`, `authentication_error`, `not_found_error`, `rate_limit_error`, `server_error`.
    public let type: String
    /// The request field at fault, if one is.
    public let param: String?
    /// A machine-readable code (`context_length_exceeded`, `model_not_found`, …), if any.
    public let code: String?
    /// What is wrong, for a person.
    public let message: String

    /// An error.
    public init(status: Int, type: String, param: String? = nil, code: String? = nil, message: String) {
        self.status = status
        self.type = type
        self.param = param
        self.code = code
        self.message = message
    }

    /// A 400 `invalid_request_error` about `param`.
    public static func invalid(_ param: String?, _ message: String, code: String? = nil) -> OpenAIError {
        OpenAIError(status: 400, type: "invalid_request_error", param: param, code: code, message: message)
    }

    /// The error as OpenAI's response body.
    public var json: String {
        var e: [String: JSONValue] = ["message": .string(message), "type": .string(type)]
        e["param"] = param.map { .string($0) } ?? .null
        e["code"] = code.map { .string($0) } ?? .null
        return JSONValue.object(["error": .object(e)]).serialized
    }

    /// The message.
    public var description: String { message }
}

/// A parsed and checked `POST /v1/chat/completions` or `POST /v1/completions` body.
///
/// Known fields: `model`, `messages` (chat: roles system, developer (as system), user and
/// assistant; content a string or text parts) or `prompt` (completions: a string, one string in
/// an array, or token ids), `max_tokens` / `max_completion_tokens`, `temperature`, `top_p`,
/// `seed`, `stop` (a string or any number of strings), `presence_penalty`, `frequency_penalty`, `logit_bias`,
/// `logprobs` (chat: a bool, with `top_logprobs` 0…20, ignored without it; completions: 0…5), `stream`,
/// `stream_options.include_usage`, `n` (1 only), and the extensions `top_k`, `min_p`,
/// `repeat_penalty`, `typical_p`, `mirostat` (or `mirostat_mode`) with `mirostat_tau` and
/// `mirostat_eta`, `grammar` (GBNF), `response_format` (text, `json_object` — with
/// llama-cpp-python's optional `schema` —, or `json_schema` with its
/// `schema`: the output is constrained to it, see ``JSONSchema``), and for chat `tools`
/// (functions), `tool_choice` (`auto`, `none`, `required` or a named function),
/// `parallel_tool_calls`, `tool` messages and assistant messages with `tool_calls` (see
/// ``ToolCalling``). Unknown fields are ignored; a known one that cannot be honoured (`n` > 1,
/// the legacy `functions` / `function_call`, several prompts, `echo`, `suffix`, `best_of` > 1,
/// `response_format` together with tools) is an error naming it.
public struct OpenAIRequest: Sendable {
    /// Which endpoint the body is for.
    public enum Kind: Sendable { case chat, completion }

    /// The endpoint.
    public let kind: Kind
    /// The `model` field (nil when absent).
    public var model: String?
    /// Chat: the conversation.
    public var messages: [ChatMessage] = []
    /// Completions: the prompt as text, or as token ids.
    public var promptText: String?
    /// Completions: the prompt as token ids.
    public var promptIDs: [TokenID]?
    /// Length, sampling, stop strings and log-probabilities.
    public var options = GenerationOptions()
    /// Whether `max_tokens` (or `max_completion_tokens`) was given.
    public var maxTokensGiven = false
    /// Stream the answer as server-sent events.
    public var stream = false
    /// With `stream`: a last chunk carries the usage.
    public var includeUsage = false
    /// Log-probabilities were asked for (then `options.topLogprobs` is the number of alternatives).
    public var logprobs = false
    /// Chat: the functions the model may call.
    public var tools: [ToolFunction] = []
    /// Chat: `tool_choice` (default `auto` with tools).
    public var toolChoice: ToolChoice = .auto
    /// Chat: `parallel_tool_calls` (default true).
    public var parallelToolCalls = true

    /// Parses a request body. `maxTokensCap` bounds `max_tokens`; `defaultMaxTokens` (default: the
    /// cap) applies when the request sets none.
    public static func parse(_ body: [UInt8], kind: Kind, maxTokensCap: Int,
                             defaultMaxTokens: Int? = nil) throws(OpenAIError) -> OpenAIRequest {
        let root: JSONValue
        do { root = try JSONParser.parse(body) } catch { throw .invalid(nil, "the body is not valid JSON: \(error)") }
        guard let o = root.objectValue else { throw .invalid(nil, "the body must be a JSON object") }
        var r = OpenAIRequest(kind: kind)
        let f = Fields(o)
        r.model = try f.string("model")
        _ = try f.string("user")  // ignored, but a string when given (OpenAI's type)

        switch kind {
        case .chat:
            guard let list = o["messages"] else { throw .invalid("messages", "messages is required") }
            guard let items = list.arrayValue, !items.isEmpty else { throw .invalid("messages", "messages must be a non-empty array") }
            for (i, item) in items.enumerated() { r.messages.append(try message(item, at: i)) }
        case .completion:
            switch o["prompt"] {
            case nil, .null?: throw .invalid("prompt", "prompt is required")
            case .string(let s)?: r.promptText = s
            case .array(let a)? where a.count == 1 && a[0].stringValue != nil: r.promptText = a[0].stringValue
            case .array(let a)? where !a.isEmpty && a.allSatisfy({ $0.intValue != nil }):
                r.promptIDs = a.map { TokenID(clamping: $0.intValue!) }
            case .array(let a)? where a.count > 1:
                throw .invalid("prompt", "several prompts in one request are not supported; send one request per prompt")
            default: throw .invalid("prompt", "prompt must be a string or an array of token ids")
            }
            for unsupported in ["echo", "suffix"] {
                if let v = o[unsupported], !(v.isNull || v.boolValue == false || v.stringValue == "") {
                    throw .invalid(unsupported, "\(unsupported) is not supported")
                }
            }
            if let b = try f.int("best_of"), b != 1 { throw .invalid("best_of", "best_of must be 1") }
        }

        // Length.
        // llama-server's n_predict (-1: no limit of its own) stands for max_tokens when that is absent.
        let a = try f.int("max_tokens"), b = try f.int("max_completion_tokens")
        for (name, v) in [("max_tokens", a), ("max_completion_tokens", b)] where (v ?? 0) < 0 {
            throw .invalid(name, "\(name) must be ≥ 0")
        }
        var predict = try f.int("n_predict")
        if let p = predict, p < 0 { predict = maxTokensCap }
        if let n = b ?? a ?? predict {
            guard n >= 0 else { throw .invalid(b != nil ? "max_completion_tokens" : "max_tokens", "must be ≥ 0") }
            r.options.maxTokens = min(n, maxTokensCap)
            r.maxTokensGiven = true
        } else {
            r.options.maxTokens = min(defaultMaxTokens ?? maxTokensCap, maxTokensCap)
        }
        if let n = try f.int("n"), n != 1 { throw .invalid("n", "n must be 1 (one choice per request)") }

        // Sampling.
        var s = r.options.sampling
        if let t = try f.number("temperature") {
            guard t >= 0 && t <= 2 else { throw .invalid("temperature", "temperature must be in 0…2") }
            s.temperature = Float(t)
        }
        if let p = try f.number("top_p") {
            guard p > 0 && p <= 1 else { throw .invalid("top_p", "top_p must be in (0, 1]") }
            s.topP = max(Float(p), .leastNormalMagnitude)  // a positive double may round to 0 as a float
        }
        if let k = try f.int("top_k") {
            guard k >= 0 else { throw .invalid("top_k", "top_k must be ≥ 0") }
            s.topK = k
        }
        if let m = try f.number("min_p") {
            guard m >= 0 && m <= 1 else { throw .invalid("min_p", "min_p must be in 0…1") }
            s.minP = Float(m)
        }
        if let rp = try f.number("repeat_penalty") {
            guard rp > 0 && rp <= 10 else { throw .invalid("repeat_penalty", "repeat_penalty must be in (0, 10]") }
            s.repetitionPenalty = max(Float(rp), .leastNormalMagnitude)
        }
        for (name, apply) in [("presence_penalty", { (v: Float, s: inout SamplingParameters) in s.presencePenalty = v }),
                              ("frequency_penalty", { (v: Float, s: inout SamplingParameters) in s.frequencyPenalty = v })] {
            if let v = try f.number(name) {
                guard v >= -2 && v <= 2 else { throw .invalid(name, "\(name) must be in -2…2") }
                apply(Float(v), &s)
            }
        }
        for name in ["penalty_last_n", "repeat_last_n"] {
            if let n = try f.int(name) {
                // llama.cpp: -1 the whole context, 0 no penalty.
                guard n >= -1 else { throw .invalid(name, "\(name) must be ≥ -1") }
                s.penaltyWindow = n
            }
        }
        if let t = try f.number("typical_p") {
            guard t > 0 && t <= 1 else { throw .invalid("typical_p", "typical_p must be in (0, 1]") }
            s.typicalP = max(Float(t), .leastNormalMagnitude)  // a positive double may round to 0 as a float
        }
        // Mirostat: llama-server spells the mode `mirostat`, llama-cpp-python `mirostat_mode`.
        for name in ["mirostat", "mirostat_mode"] {
            if let m = try f.int(name) {
                guard (0...2).contains(m) else { throw .invalid(name, "\(name) must be 0, 1 or 2") }
                s.mirostat = m
            }
        }
        if let t = try f.number("mirostat_tau") {
            guard t >= 0 && t <= 100 else { throw .invalid("mirostat_tau", "mirostat_tau must be in 0…100") }
            s.mirostatTau = Float(t)
        }
        if let e = try f.number("mirostat_eta") {
            guard e >= 0 && e <= 10 else { throw .invalid("mirostat_eta", "mirostat_eta must be in 0…10") }
            s.mirostatEta = Float(e)
        }
        if let v = f.value("seed") {
            guard let d = v.doubleValue, d.rounded() == d else { throw .invalid("seed", "seed must be an integer") }
            s.seed = UInt64(bitPattern: Int64(max(min(d, 9.2e18), -9.2e18)))
        }
        if let bias = o["logit_bias"], !bias.isNull {
            guard let entries = bias.objectValue else { throw .invalid("logit_bias", "logit_bias must be an object of token id → number") }
            for (key, value) in entries {
                guard let id = Int32(key), id >= 0 else { throw .invalid("logit_bias", "logit_bias key \(key) is not a token id") }
                guard let v = value.doubleValue, v >= -100 && v <= 100 else {
                    throw .invalid("logit_bias", "logit_bias values must be numbers in -100…100")
                }
                s.logitBias[id] = v == -100 ? -.infinity : Float(v)
            }
        }
        r.options.sampling = s

        // Stop strings.
        switch o["stop"] {
        case nil, .null?: break
        case .string(let t)?: r.options.stopStrings = t.isEmpty ? [] : [t]
        case .array(let list)?:
            guard list.allSatisfy({ $0.stringValue != nil }) else {
                throw .invalid("stop", "stop must be a string or an array of strings")
            }
            r.options.stopStrings = list.compactMap(\.stringValue).filter { !$0.isEmpty }
        default: throw .invalid("stop", "stop must be a string or an array of strings")
        }

        // Log-probabilities.
        switch kind {
        case .chat:
            r.logprobs = try f.bool("logprobs") ?? false
            let top = try f.int("top_logprobs")
            if let top, top < 0 || top > 20 { throw .invalid("top_logprobs", "top_logprobs must be in 0…20") }
            if r.logprobs { r.options.topLogprobs = top ?? 0 }
        case .completion:
            if let n = try f.int("logprobs") {
                guard n >= 0 && n <= 5 else { throw .invalid("logprobs", "logprobs must be in 0…5") }
                r.logprobs = true
                r.options.topLogprobs = n
            }
        }

        // Streaming.
        r.stream = try f.bool("stream") ?? false
        if let so = o["stream_options"], !so.isNull {
            guard let opts = so.objectValue else { throw .invalid("stream_options", "stream_options must be an object") }
            r.includeUsage = try Fields(opts).bool("include_usage") ?? false
        }

        // Known fields this server cannot honour.
        if let rf = o["response_format"], !rf.isNull {
            switch rf["type"]?.stringValue {
            case "text"?: break
            case "json_object"?:
                // llama-cpp-python's spelling carries a schema: {"type": "json_object", "schema": {…}}.
                if let schema = rf["schema"], !schema.isNull {
                    guard schema.objectValue != nil || schema.boolValue != nil else {
                        throw .invalid("response_format", "response_format schema must be a JSON Schema object")
                    }
                    r.options.constraint = .jsonSchema(schema.serialized)
                } else {
                    r.options.constraint = .jsonObject
                }
            case "json_schema"?:
                guard let spec = rf["json_schema"], let schema = spec["schema"], schema.objectValue != nil || schema.boolValue != nil else {
                    throw .invalid("response_format", "json_schema needs {\"name\": …, \"schema\": {…}}")
                }
                // strict: true or false, the output follows the whole schema (every supported keyword).
                r.options.constraint = .jsonSchema(schema.serialized)
            default:
                throw .invalid("response_format", "response_format type must be text, json_object or json_schema")
            }
            if let c = r.options.constraint {
                do { _ = try c.compile() } catch { throw .invalid("response_format", error.description) }
            }
        }
        // llama-server's `json_schema`: a schema the output follows.
        if let js = f.value("json_schema"), !js.isNull {
            guard js.objectValue != nil || js.boolValue != nil else { throw .invalid("json_schema", "json_schema must be a JSON Schema object") }
            guard r.options.constraint == nil else { throw .invalid("json_schema", "give json_schema or response_format, not both") }
            r.options.constraint = .jsonSchema(js.serialized)
            do { _ = try r.options.constraint!.compile() } catch { throw .invalid("json_schema", error.description) }
        }
        try rejectUnsupportedExtensions(f)
        // A GBNF grammar (llama-server's and llama-cpp-python's `grammar`).
        if let g = f.value("grammar"), !g.isNull {
            guard let text = g.stringValue else { throw .invalid("grammar", "grammar must be GBNF text") }
            if !text.isEmpty {
                guard r.options.constraint == nil else { throw .invalid("grammar", "give grammar or response_format, not both") }
                r.options.constraint = .grammar(text)
                do { _ = try r.options.constraint!.compile() } catch { throw .invalid("grammar", error.description) }
            }
        }
        if let v = o["functions"], !v.isNull, v.arrayValue?.isEmpty != true { throw .invalid("functions", "functions is not supported; use tools") }
        if let v = o["function_call"], !v.isNull, v.stringValue != "none" { throw .invalid("function_call", "function_call is not supported; use tool_choice") }
        try r.parseTools(o, f)
        return r
    }

    /// llama-server's request fields that would change the output and that libphi4 does not
    /// implement, each with the value that leaves the output as it is: any other value is an error
    /// naming the field, never ignored. (`cache_prompt`, `id_slot`, `n_keep`, `tfs_z` and
    /// `penalize_nl` change nothing here — prefixes are always reused, there is no context
    /// shifting, llama.cpp itself dropped the last two — and are accepted.)
    static let unsupportedExtensions: [(name: String, neutral: @Sendable (JSONValue) -> Bool)] = [
        ("ignore_eos", { $0.boolValue == false }),
        ("n_probs", { $0.intValue == 0 }),
        ("min_keep", { ($0.intValue ?? 1) <= 1 }),
        ("dynatemp_range", { $0.doubleValue == 0 }),
        ("xtc_probability", { $0.doubleValue == 0 }),
        ("dry_multiplier", { $0.doubleValue == 0 }),
        ("top_n_sigma", { ($0.doubleValue ?? 0) <= 0 }),
        ("samplers", { _ in false }),
        ("lora", { $0.arrayValue?.isEmpty == true }),
        ("image_data", { $0.arrayValue?.isEmpty == true }),
        ("return_tokens", { $0.boolValue == false }),
        ("post_sampling_probs", { $0.boolValue == false }),
        ("t_max_predict_ms", { $0.intValue == 0 }),
        ("t_max_prompt_ms", { ($0.intValue ?? 0) <= 0 }),
    ]

    private static func rejectUnsupportedExtensions(_ f: Fields) throws(OpenAIError) {
        for (name, neutral) in unsupportedExtensions {
            if let v = f.value(name), !v.isNull, !neutral(v) {
                throw .invalid(name, "\(name) is not supported by this server (it would change the output); leave it out")
            }
        }
    }

    /// `tools`, `tool_choice` and `parallel_tool_calls`.
    private mutating func parseTools(_ o: [String: JSONValue], _ f: Fields) throws(OpenAIError) {
        if let list = f.value("tools") {
            guard kind == .chat else { throw .invalid("tools", "tools need the chat endpoint") }
            guard let items = list.arrayValue else { throw .invalid("tools", "tools must be an array") }
            for (i, item) in items.enumerated() {
                let param = "tools[\(i)]"
                guard item["type"]?.stringValue == "function", let fn = item["function"], let fo = fn.objectValue else {
                    throw .invalid(param, "\(param) must be {\"type\": \"function\", \"function\": {\"name\": …}}")
                }
                guard let name = fo["name"]?.stringValue else { throw .invalid("\(param).function.name", "the function needs a name") }
                var t = ToolFunction(name: name, description: fo["description"]?.stringValue)
                if let p = fo["parameters"], !p.isNull {
                    guard p.objectValue != nil else { throw .invalid("\(param).function.parameters", "parameters must be a JSON Schema object") }
                    t.parameters = p.serialized
                }
                t.strict = fo["strict"]?.boolValue ?? false
                tools.append(t)
            }
        }
        toolChoice = tools.isEmpty ? .none : .auto
        if let c = f.value("tool_choice") {
            switch c.stringValue {
            case "auto"?: toolChoice = .auto
            case "none"?: toolChoice = .none
            case "required"?: toolChoice = .required
            case nil:
                guard c["type"]?.stringValue == "function", let n = c["function"]?["name"]?.stringValue else {
                    throw .invalid("tool_choice", "tool_choice must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": …}}")
                }
                toolChoice = .function(n)
            default: throw .invalid("tool_choice", "tool_choice must be auto, none, required or a named function")
            }
        }
        parallelToolCalls = try f.bool("parallel_tool_calls") ?? true
        guard !tools.isEmpty || toolChoice == .none else { throw .invalid("tool_choice", "tool_choice needs tools") }
        do throws(ConstraintError) {
            // Checked here (names, the choice, strict schemas); the chat format comes with the model.
            let t = try ToolCalling(functions: tools, choice: toolChoice, parallel: parallelToolCalls, format: .phi4)
            if toolChoice != .none {
                if options.constraint != nil { throw ConstraintError("response_format cannot be combined with tools") }
                _ = try t.grammar()
            }
        } catch {
            throw .invalid("tools", error.description)
        }
    }

    /// Tool calling for this request in `tokenizer`'s chat format (nil without tools).
    public func toolCalling(_ tokenizer: Tokenizer) -> ToolCalling? {
        guard kind == .chat, !tools.isEmpty else { return nil }
        return try? ToolCalling(functions: tools, choice: toolChoice, parallel: parallelToolCalls, format: tokenizer.chatFormat)
    }

    /// The generation options for `tokenizer`'s model: ``options`` with the tool-call grammar
    /// as the constraint when the request has tools and does not say `tool_choice: none`.
    public func generationOptions(_ tokenizer: Tokenizer) -> GenerationOptions {
        var o = options
        if let t = toolCalling(tokenizer), let c = t.constraint { o.constraint = c }
        return o
    }

    /// The prompt's token ids: the chat template over the messages (chat), or the prompt encoded
    /// (completions: special-token text is recognised, as a raw prompt is the caller's own text).
    public func promptTokens(_ tokenizer: Tokenizer) throws(OpenAIError) -> [TokenID] {
        switch kind {
        case .chat:
            let list = toolCalling(tokenizer)?.prepare(messages) ?? messages
            do { return try tokenizer.applyChatTemplate(list) } catch { throw .invalid("messages", error.description) }
        case .completion:
            if let ids = promptIDs {
                for id in ids where !tokenizer.isValid(id) { throw .invalid("prompt", "token id \(id) is not in the vocabulary") }
                return ids
            }
            let ids = tokenizer.encode(promptText ?? "", allowSpecial: true, addBOS: true)
            if !ids.isEmpty { return ids }
            // An empty prompt starts a new document: after <|endoftext|>, as in pretraining.
            guard let start = tokenizer.specialTokenID("<|endoftext|>") else { throw .invalid("prompt", "the prompt is empty") }
            return [start]
        }
    }

    private init(kind: Kind) { self.kind = kind }

    private static func message(_ v: JSONValue, at i: Int) throws(OpenAIError) -> ChatMessage {
        let param = "messages[\(i)]"
        guard let m = v.objectValue else { throw .invalid(param, "\(param) must be an object") }
        guard let role = m["role"]?.stringValue else { throw .invalid("\(param).role", "\(param).role must be a string") }
        let mapped: String
        switch role {
        case "system", "developer": mapped = "system"
        case "user", "assistant", "tool": mapped = role
        case "function": throw .invalid("\(param).role", "function messages are not supported; use tool messages")
        default: throw .invalid("\(param).role", "unknown role \(role) (system, developer, user, assistant or tool)")
        }
        if let n = m["name"], n.stringValue == nil { throw .invalid("\(param).name", "\(param).name must be a string") }
        var calls: String?
        if let list = m["tool_calls"], !list.isNull {
            guard let items = list.arrayValue else { throw .invalid("\(param).tool_calls", "tool_calls must be an array") }
            var parsed: [(name: String, arguments: String)] = []
            for (j, c) in items.enumerated() {
                guard c["id"]?.stringValue != nil, c["type"]?.stringValue == "function",
                      let name = c["function"]?["name"]?.stringValue, let args = c["function"]?["arguments"]?.stringValue else {
                    throw .invalid("\(param).tool_calls[\(j)]",
                                   "a tool call is {\"id\": …, \"type\": \"function\", \"function\": {\"name\": …, \"arguments\": \"…\"}}")
                }
                parsed.append((name, args))
            }
            if !parsed.isEmpty && role == "assistant" { calls = ToolCalling.callsJSON(parsed) }
        }
        var text = ""
        switch m["content"] {
        case .string(let s)?: text = s
        case .null?, nil: break
        case .array(let parts)?:
            for (j, part) in parts.enumerated() {
                guard part["type"]?.stringValue == "text", let t = part["text"]?.stringValue else {
                    throw .invalid("\(param).content[\(j)]", "only text content parts are supported")
                }
                text += t
            }
        default: throw .invalid("\(param).content", "\(param).content must be a string or an array of text parts")
        }
        return ChatMessage(role: mapped, content: text, toolCalls: calls)
    }

    /// Typed access to optional fields: absent or null is nil, a value of the wrong type an error.
    private struct Fields {
        let o: [String: JSONValue]
        init(_ o: [String: JSONValue]) { self.o = o }

        func value(_ k: String) -> JSONValue? {
            guard let v = o[k], !v.isNull else { return nil }
            return v
        }
        func string(_ k: String) throws(OpenAIError) -> String? {
            guard let v = value(k) else { return nil }
            guard let s = v.stringValue else { throw .invalid(k, "\(k) must be a string") }
            return s
        }
        func number(_ k: String) throws(OpenAIError) -> Double? {
            guard let v = value(k) else { return nil }
            guard let d = v.doubleValue, d.isFinite else { throw .invalid(k, "\(k) must be a number") }
            return d
        }
        func int(_ k: String) throws(OpenAIError) -> Int? {
            guard let v = value(k) else { return nil }
            guard let d = v.doubleValue, d.rounded() == d else { throw .invalid(k, "\(k) must be an integer") }
            return Int(max(min(d, 1e15), -1e15))  // beyond any limit either way
        }
        func bool(_ k: String) throws(OpenAIError) -> Bool? {
            guard let v = value(k) else { return nil }
            guard let b = v.boolValue else { throw .invalid(k, "\(k) must be a boolean") }
            return b
        }
    }
}
