// The OpenAI response mapping: a generation's text, stop reason, usage and log-probabilities →
// the JSON of a chat or text completion, whole or as streamed chunks.

/// Token counts of one request, as OpenAI's `usage` reports them.
public struct OpenAIUsage: Sendable {
    /// Tokens of the prompt (cached ones included).
    public var promptTokens: Int
    /// Tokens generated.
    public var completionTokens: Int
    /// Prompt tokens that were found in the KV cache and not evaluated again.
    public var cachedTokens: Int

    /// How long the prompt and the generation took (llama-server's `timings`), when known.
    public var timings: OpenAITimings?

    /// Usage counts.
    public init(promptTokens: Int, completionTokens: Int, cachedTokens: Int = 0, timings: OpenAITimings? = nil) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cachedTokens = cachedTokens
        self.timings = timings
    }

    var json: JSONValue {
        .object(["prompt_tokens": .number(Double(promptTokens)), "completion_tokens": .number(Double(completionTokens)),
                 "total_tokens": .number(Double(promptTokens + completionTokens)),
                 "prompt_tokens_details": .object(["cached_tokens": .number(Double(cachedTokens))])])
    }
}

/// llama-server's `timings` of a request: the prompt tokens evaluated and generated, and their times.
public struct OpenAITimings: Sendable {
    /// Prompt tokens found in the KV cache (not evaluated).
    public var cached: Int
    /// Prompt tokens evaluated.
    public var promptEvaluated: Int
    /// Seconds the prompt took.
    public var promptSeconds: Double
    /// Tokens generated.
    public var predicted: Int
    /// Seconds the generation took.
    public var predictedSeconds: Double

    /// The timings of a finished generation (`cached` prompt tokens were reused).
    public init(_ r: GenerationResult, cached: Int) {
        self.cached = cached
        promptEvaluated = r.promptTokenCount
        promptSeconds = r.promptSeconds
        predicted = r.tokens.count
        predictedSeconds = r.generationSeconds
    }

    var json: JSONValue {
        func rates(_ n: Int, _ seconds: Double) -> (ms: Double, perToken: Double, perSecond: Double) {
            let ms = (seconds * 1e6).rounded() / 1e3
            return (ms, n > 0 ? ms / Double(n) : 0, seconds > 0 ? Double(n) / seconds : 0)
        }
        let p = rates(promptEvaluated, promptSeconds), g = rates(predicted, predictedSeconds)
        return .object(["cache_n": .number(Double(cached)), "prompt_n": .number(Double(promptEvaluated)),
                        "prompt_ms": .number(p.ms), "prompt_per_token_ms": .number(p.perToken),
                        "prompt_per_second": .number(p.perSecond), "predicted_n": .number(Double(predicted)),
                        "predicted_ms": .number(g.ms), "predicted_per_token_ms": .number(g.perToken),
                        "predicted_per_second": .number(g.perSecond)])
    }
}

/// Writes the response bodies of one request: `chat.completion` / `text_completion` objects and
/// their streamed chunks, with OpenAI's field names and shapes.
public struct OpenAIResponder: Sendable {
    /// The endpoint.
    public let kind: OpenAIRequest.Kind
    /// The response id (`chatcmpl-…`, `cmpl-…`).
    public let id: String
    /// Creation time, Unix seconds.
    public let created: Int
    /// The model name reported back.
    public let model: String
    private let tokenizer: Tokenizer

    /// A responder for one request.
    public init(kind: OpenAIRequest.Kind, id: String, created: Int, model: String, tokenizer: Tokenizer) {
        self.kind = kind
        self.id = id
        self.created = created
        self.model = model
        self.tokenizer = tokenizer
    }

    /// OpenAI's `finish_reason` for a stop reason: `stop` (an end-of-generation token or a stop
    /// string) or `length` (max_tokens, or the context is full; also a cancelled request).
    public static func finishReason(_ r: StopReason) -> String {
        switch r {
        case .endOfSequence, .stopString: return "stop"
        case .maxTokens, .contextFull, .cancelled: return "length"
        }
    }

    /// The whole answer; `reasoning` (a reasoning model's thinking, see ``ReasoningSplitter``)
    /// becomes the chat message's `reasoning_content`; with `toolCalls` the message has
    /// `tool_calls` and `content` null (finish reason `tool_calls`).
    public func completion(text: String, reasoning: String? = nil, toolCalls: [ToolCall]? = nil, finishReason: String,
                           usage: OpenAIUsage, logprobs: [TokenLogprob]?) -> String {
        var choice: [String: JSONValue] = ["index": .number(0), "finish_reason": .string(toolCalls == nil ? finishReason : "tool_calls")]
        choice["logprobs"] = logprobs.map { logprobsJSON($0, textOffset: 0) } ?? .null
        switch kind {
        case .chat:
            var message: [String: JSONValue] = ["role": .string("assistant"), "content": .string(text)]
            if let reasoning { message["reasoning_content"] = .string(reasoning) }
            if let toolCalls {
                message["content"] = .null
                message["tool_calls"] = .array(toolCalls.enumerated().map { Self.toolCallJSON($1, index: nil) })
            }
            choice["message"] = .object(message)
        case .completion: choice["text"] = .string(text)
        }
        return envelope(choices: [.object(choice)], usage: usage.json, chunk: false, timings: usage.timings)
    }

    /// A streamed chunk with new text (chat: the first chunk also carries the role), the
    /// log-probabilities of the tokens it covers, and on the last one the finish reason.
    /// `usageNull`: with `stream_options.include_usage`, every content chunk has `"usage": null`.
    /// `reasoning`: new thinking text of a reasoning model, sent as the delta's `reasoning_content`.
    /// `toolCalls`: the reply's function calls, each whole in this one chunk (delta `tool_calls`
    /// with their `index`).
    public func chunk(text: String, reasoning: String = "", toolCalls: [ToolCall]? = nil, first: Bool, finishReason: String?,
                      logprobs: [TokenLogprob]?, textOffset: Int = 0, usageNull: Bool, timings: OpenAITimings? = nil) -> String {
        var choice: [String: JSONValue] = ["index": .number(0), "finish_reason": finishReason.map { .string($0) } ?? .null]
        choice["logprobs"] = logprobs.map { logprobsJSON($0, textOffset: textOffset) } ?? .null
        switch kind {
        case .chat:
            var delta: [String: JSONValue] = [:]
            if first { delta["role"] = .string("assistant") }
            if !reasoning.isEmpty { delta["reasoning_content"] = .string(reasoning) }
            if let toolCalls {
                delta["tool_calls"] = .array(toolCalls.enumerated().map { Self.toolCallJSON($1, index: $0) })
            } else if !text.isEmpty || (finishReason == nil && reasoning.isEmpty) {
                delta["content"] = .string(text)
            }
            choice["delta"] = .object(delta)
        case .completion: choice["text"] = .string(text)
        }
        return envelope(choices: [.object(choice)], usage: usageNull ? .null : nil, chunk: true, timings: timings)
    }

    /// A call as OpenAI writes it: `{"id", "type": "function", "function": {"name", "arguments"}}`
    /// (with `index` in a streamed delta).
    static func toolCallJSON(_ c: ToolCall, index: Int?) -> JSONValue {
        var o: [String: JSONValue] = ["id": .string(c.id), "type": .string("function"),
                                      "function": .object(["name": .string(c.name), "arguments": .string(c.arguments)])]
        if let index { o["index"] = .number(Double(index)) }
        return .object(o)
    }

    /// The last chunk of a stream with `include_usage`: no choices, the usage.
    public func usageChunk(_ usage: OpenAIUsage) -> String {
        envelope(choices: [], usage: usage.json, chunk: true)
    }

    private func envelope(choices: [JSONValue], usage: JSONValue?, chunk: Bool, timings: OpenAITimings? = nil) -> String {
        let object: String
        switch kind {
        case .chat: object = chunk ? "chat.completion.chunk" : "chat.completion"
        case .completion: object = "text_completion"
        }
        var o: [String: JSONValue] = ["id": .string(id), "object": .string(object), "created": .number(Double(created)),
                                      "model": .string(model), "choices": .array(choices),
                                      "system_fingerprint": .string("libphi4-" + Phi4Version.string)]
        if let usage { o["usage"] = usage }
        if let timings { o["timings"] = timings.json }
        return JSONValue.object(o).serialized
    }

    /// A finite log-probability (OpenAI reports -9999 for a token with no chance).
    private static func finite(_ x: Float) -> JSONValue { .number(x.isFinite ? Double(x) : -9999) }

    private func bytes(_ id: TokenID) -> [UInt8] { (try? tokenizer.tokenBytes(id)) ?? [] }

    private func logprobsJSON(_ list: [TokenLogprob], textOffset: Int) -> JSONValue {
        switch kind {
        case .chat:
            func entry(_ id: TokenID, _ lp: Float) -> [String: JSONValue] {
                let b = bytes(id)
                return ["token": .string(String(decoding: b, as: UTF8.self)), "logprob": Self.finite(lp),
                        "bytes": .array(b.map { .number(Double($0)) })]
            }
            return .object(["content": .array(list.map { t in
                var e = entry(t.token, t.logprob)
                e["top_logprobs"] = .array(t.top.map { .object(entry($0.token, $0.logprob)) })
                return .object(e)
            })])
        case .completion:
            var offsets: [JSONValue] = []
            var offset = textOffset
            var tokens: [JSONValue] = [], top: [JSONValue] = []
            for t in list {
                let text = String(decoding: bytes(t.token), as: UTF8.self)
                tokens.append(.string(text))
                offsets.append(.number(Double(offset)))
                offset += text.count
                var alternatives: [String: JSONValue] = [:]
                for a in t.top { alternatives[String(decoding: bytes(a.token), as: UTF8.self)] = Self.finite(a.logprob) }
                top.append(.object(alternatives))
            }
            return .object(["tokens": .array(tokens), "token_logprobs": .array(list.map { Self.finite($0.logprob) }),
                            "top_logprobs": .array(top), "text_offset": .array(offsets)])
        }
    }
}

/// One request's answer as it is generated: generated text in, response bodies out. It splits a
/// reasoning model's thinking into `reasoning_content` and, with tools, holds the reply's text
/// back until its start shows whether it is function calls, which then go out as `tool_calls`
/// once complete (text goes out as it comes). The server and the C ABI's OpenAI functions both
/// answer through it.
public struct OpenAIAnswer: Sendable {
    /// The response writer.
    public let responder: OpenAIResponder
    private let request: OpenAIRequest
    private let tools: ToolCalling?
    private var splitter: ReasoningSplitter?
    private var first = true
    private var offset = 0
    private var held = ""
    private var isCall: Bool?
    private var heldLogprobs: [TokenLogprob] = []

    /// The answer to `request` on a model with `tokenizer`; `splitsReasoning`: the model thinks
    /// before answering (``Tokenizer/thinksBeforeAnswering``).
    public init(request: OpenAIRequest, responder: OpenAIResponder, tokenizer: Tokenizer, splitsReasoning: Bool) {
        self.request = request
        self.responder = responder
        tools = request.toolCalling(tokenizer).flatMap { $0.choice == .none ? nil : $0 }
        splitter = splitsReasoning && request.kind == .chat ? ReasoningSplitter() : nil
    }

    /// The whole answer (a non-streamed request) for the generated `text`.
    public func completion(text: String, logprobs: [TokenLogprob], result: GenerationResult, usage: OpenAIUsage) -> String {
        let (reasoning, content) = splitter != nil ? ReasoningSplitter.split(text) : (nil, text)
        let calls = tools?.calls(in: content)
        return responder.completion(text: content, reasoning: reasoning, toolCalls: calls,
                                    finishReason: OpenAIResponder.finishReason(result.stopReason), usage: usage,
                                    logprobs: request.logprobs ? logprobs : nil)
    }

    /// Streaming: the chunks (JSON bodies) for newly generated `text` and the log-probabilities of
    /// its tokens; once generation has ended (`result` given) also the last chunk with the finish
    /// reason, and the usage chunk when the request asked for it. May return none while text is
    /// held back.
    public mutating func chunks(text: String, logprobs: [TokenLogprob], result: GenerationResult? = nil,
                                usage: OpenAIUsage? = nil) -> [String] {
        var (reasoning, content) = splitter?.push(text) ?? ("", text)
        if result != nil, let rest = splitter?.finish() {
            reasoning += rest.reasoning
            content += rest.content
        }
        var lp = heldLogprobs + logprobs
        heldLogprobs = []
        var calls: [ToolCall]?
        if let tools {
            if isCall == nil {
                held += content
                content = ""
                isCall = tools.isCall(held)
                if isCall == false || (isCall == nil && result != nil) {
                    content = held
                    held = ""
                }
            } else if isCall == true {
                held += content
                content = ""
            }
            if isCall == true && result != nil {
                calls = tools.calls(in: held)
                if calls == nil { content = held }  // cut off: given as text
                held = ""
            }
        }
        var out: [String] = []
        let finish = result.map { calls != nil ? "tool_calls" : OpenAIResponder.finishReason($0.stopReason) }
        let holding = result == nil && !held.isEmpty
        if holding && reasoning.isEmpty {
            heldLogprobs = lp
            lp = []
        }
        if !content.isEmpty || !reasoning.isEmpty || calls != nil || (!lp.isEmpty && !holding) || first || finish != nil {
            out.append(responder.chunk(text: content, reasoning: reasoning, toolCalls: calls, first: first, finishReason: finish,
                                       logprobs: request.logprobs ? lp : nil, textOffset: offset, usageNull: request.includeUsage,
                                       timings: finish != nil ? usage?.timings : nil))
            first = false
            offset += content.count + reasoning.count
        }
        if result != nil, request.includeUsage, let usage { out.append(responder.usageChunk(usage)) }
        return out
    }
}
