// The HTTP routes: OpenAI's chat and text completions (whole or streamed), models, health,
// metrics and the OpenAPI document. Request and response bodies are mapped by the engine
// library's OpenAIRequest / OpenAIResponder, the mapping the bindings share.

import Hummingbird
import Phi4
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The engine once the model has loaded (nil while loading), or why loading failed.
final class ServerState: Sendable {
    let options: ServerOptions
    private let loaded = Mutex<Engine?>(nil)
    private let failure = Mutex<String?>(nil)
    private let counter = Atomic<Int>(0)
    private let loadProgress = Mutex<Double?>(nil)

    init(options: ServerOptions) { self.options = options }

    var engine: Engine? { loaded.withLock { $0 } }
    func ready(_ e: Engine) { loaded.withLock { $0 = e } }
    func failed(_ m: String) { failure.withLock { $0 = m } }
    var loadError: String? { failure.withLock { $0 } }
    func nextID() -> Int { counter.add(1, ordering: .relaxed).newValue }
    /// The fraction of the weights converted so far, while a model is quantized at load.
    var progress: Double? {
        get { loadProgress.withLock { $0 } }
        set { loadProgress.withLock { $0 = newValue } }
    }
}

func json(_ body: String, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) -> Response {
    var headers: HTTPFields = [.contentType: "application/json"]
    headers.append(contentsOf: extra)
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
}

func errorResponse(_ e: OpenAIError, headers: HTTPFields = [:]) -> Response {
    json(e.json, status: HTTPResponse.Status(code: e.status), headers: headers)
}

/// Adds every route to `router`.
func addRoutes(_ router: Router<BasicRequestContext>, _ state: ServerState) {
    let o = state.options

    router.get("/health") { _, _ -> Response in
        if let e = state.loadError { return json(#"{"status":"error","message":\#(quote(e))}"#, status: .internalServerError) }
        guard let engine = state.engine else {
            let fraction = state.progress.map { #","progress":\#((($0 * 1000).rounded() / 1000))"# } ?? ""
            return json(#"{"status":"loading"\#(fraction)}"#, status: .serviceUnavailable)
        }
        let busy = engine.scheduler.activeCount >= engine.scheduler.options.slots
        return json(busy ? #"{"status":"busy"}"# : #"{"status":"ok"}"#)
    }

    router.get("/metrics") { _, _ -> Response in
        let text = metricsText(state)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                        body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    router.get("/openapi.json") { _, _ -> Response in
        // Token ids in prompts go up to this model's vocabulary (the document says Phi-4's).
        let vocabMax = (state.engine?.model.config.vocabSize ?? 100_352) - 1
        return json(openAPIDocument.replacing("\"maximum\":100351", with: "\"maximum\":\(vocabMax)"))
    }

    router.get("/v1/models") { request, _ -> Response in
        if let denied = authorize(request, o) { return denied }
        return json(#"{"object":"list","data":[{"id":\#(quote(o.alias ?? "")),"object":"model","created":0,"owned_by":"libphi4"}]}"#)
    }
    router.get("/v1/models/:id") { request, context -> Response in
        if let denied = authorize(request, o) { return denied }
        guard !o.strictModelName || context.parameters.get("id") == o.alias else {
            return errorResponse(OpenAIError(status: 404, type: "invalid_request_error", param: "model", code: "model_not_found",
                                             message: "the model \(context.parameters.get("id") ?? "") does not exist"))
        }
        return json(#"{"id":\#(quote(o.alias ?? "")),"object":"model","created":0,"owned_by":"libphi4"}"#)
    }

    router.post("/v1/chat/completions") { request, _ -> Response in
        await complete(request, kind: .chat, state)
    }
    router.post("/v1/completions") { request, _ -> Response in
        await complete(request, kind: .completion, state)
    }
    router.post("/v1/embeddings") { request, _ -> Response in
        await embeddings(request, state)
    }
    // llama-server's own endpoints.
    router.post("/tokenize") { request, _ -> Response in
        await withBody(request, state) { (engine, bytes) throws(OpenAIError) in
            try ServerEndpoints.tokenize(bytes, tokenizer: engine.model.tokenizer)
        }
    }
    router.post("/detokenize") { request, _ -> Response in
        await withBody(request, state) { (engine, bytes) throws(OpenAIError) in
            try ServerEndpoints.detokenize(bytes, tokenizer: engine.model.tokenizer)
        }
    }
    router.get("/props") { request, _ -> Response in
        if let denied = authorize(request, o) { return denied }
        guard let engine = state.engine else { return loading() }
        return json(props(engine, o))
    }
}

/// The 503 of a request that arrives while the model loads.
func loading() -> Response {
    errorResponse(OpenAIError(status: 503, type: "server_error", code: "loading", message: "the model is loading"),
                  headers: [.retryAfter: "5"])
}

/// The request body within --max-body, or the 413 response.
func readBody(_ request: Request, _ o: ServerOptions) async -> Result<[UInt8], OpenAIError> {
    if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > o.maxBody {
        return .failure(OpenAIError(status: 413, type: "invalid_request_error", code: "request_too_large",
                                    message: "the body has \(length) bytes; the limit is \(o.maxBody)"))
    }
    do {
        let buffer = try await request.body.collect(upTo: o.maxBody)
        return .success(Array(buffer.readableBytesView))
    } catch {
        return .failure(OpenAIError(status: 413, type: "invalid_request_error", code: "request_too_large",
                                    message: "the body is larger than the limit of \(o.maxBody) bytes"))
    }
}

/// A JSON-in, JSON-out endpoint: authorization, the loaded engine, the body, then `body`.
func withBody(_ request: Request, _ state: ServerState,
              _ body: (Engine, [UInt8]) throws(OpenAIError) -> String) async -> Response {
    if let denied = authorize(request, state.options) { return denied }
    guard let engine = state.engine else { return loading() }
    switch await readBody(request, state.options) {
    case .failure(let e): return errorResponse(e)
    case .success(let bytes):
        do { return json(try body(engine, bytes)) } catch { return errorResponse(error) }
    }
}

/// `GET /props` in llama-server's shape (the fields that apply to this server).
func props(_ engine: Engine, _ o: ServerOptions) -> String {
    let d = SamplingParameters()
    let t = engine.model.tokenizer
    func token(_ id: TokenID?) -> String {
        guard let id, let bytes = try? t.decode([id]) else { return "\"\"" }
        return quote(String(decoding: bytes, as: UTF8.self))
    }
    let params = #"{"temperature":\#(d.temperature),"top_k":\#(d.topK),"top_p":\#(d.topP),"min_p":\#(d.minP),"typical_p":\#(d.typicalP),"repeat_last_n":\#(d.penaltyWindow),"repeat_penalty":\#(d.repetitionPenalty),"presence_penalty":\#(d.presencePenalty),"frequency_penalty":\#(d.frequencyPenalty),"mirostat":\#(d.mirostat),"mirostat_tau":\#(d.mirostatTau),"mirostat_eta":\#(d.mirostatEta),"n_predict":\#(o.maxTokens),"seed":-1}"#
    let slotContext = engine.scheduler.options.contextLength ?? 0
    return #"{"default_generation_settings":{"params":\#(params),"n_ctx":\#(slotContext)},"total_slots":\#(o.parallel),"model_alias":\#(quote(o.alias ?? "")),"model_path":\#(quote(o.model)),"modalities":{"vision":false,"video":false,"audio":false},"endpoint_slots":false,"endpoint_props":false,"endpoint_metrics":true,"chat_template":\#(quote(t.chatFormat.jinjaTemplate)),"bos_token":\#(token(t.bosTokenID)),"eos_token":\#(token(t.eosTokenID)),"build_info":\#(quote("phi4-server " + Phi4Version.string)),"is_sleeping":false}"#
}

/// `POST /v1/embeddings`: the inputs pooled as --pooling says, L2-normalised as llama-server's
/// OpenAI endpoint gives them, computed on the engine's thread between generation steps.
func embeddings(_ request: Request, _ state: ServerState) async -> Response {
    let o = state.options
    if let denied = authorize(request, o) { return denied }
    guard let engine = state.engine else { return loading() }
    let bytes: [UInt8]
    switch await readBody(request, o) {
    case .failure(let e): return errorResponse(e)
    case .success(let b): bytes = b
    }
    do throws(OpenAIError) {
        let r = try ServerEndpoints.embeddingRequest(bytes, tokenizer: engine.model.tokenizer, maxInputs: 2048,
                                                     maxTokens: engine.model.config.maxPositions)
        if o.strictModelName, let m = r.model, m != o.alias {
            throw OpenAIError(status: 404, type: "invalid_request_error", param: "model", code: "model_not_found",
                              message: "the model \(m) does not exist; this server serves \(o.alias ?? "")")
        }
        let vectors: [[Float]]
        do {
            vectors = try await engine.embed(r.inputs, pooling: o.pooling)
        } catch {
            throw OpenAIError.invalid("input", "\(error)")
        }
        return json(ServerEndpoints.embeddingResponse(vectors, model: r.model ?? o.alias ?? "",
                                                      promptTokens: r.inputs.reduce(0) { $0 + $1.count }, base64: r.base64))
    } catch {
        engine.countError()
        return errorResponse(error)
    }
}

/// A JSON string literal (the library's JSON writer is not public API).
func quote(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where u.value < 0x20: out += "\\u" + String(repeating: "0", count: 4 - String(u.value, radix: 16).count) + String(u.value, radix: 16)
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}

/// nil when the request may pass; else the 401 response.
func authorize(_ request: Request, _ o: ServerOptions) -> Response? {
    guard let key = o.apiKey else { return nil }
    if request.headers[.authorization] == "Bearer " + key { return nil }
    return errorResponse(OpenAIError(status: 401, type: "authentication_error", code: "invalid_api_key",
                                     message: "a valid API key is required: Authorization: Bearer KEY"))
}

/// A chat or text completion, from the request body to the answer (JSON or server-sent events).
func complete(_ request: Request, kind: OpenAIRequest.Kind, _ state: ServerState) async -> Response {
    let o = state.options
    if let denied = authorize(request, o) { return denied }
    guard let engine = state.engine else {
        return errorResponse(OpenAIError(status: 503, type: "server_error", code: "loading", message: "the model is loading"),
                             headers: [.retryAfter: "5"])
    }
    let fail = { (e: OpenAIError) -> Response in
        engine.countError()
        return errorResponse(e)
    }
    // The body, within --max-body.
    if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > o.maxBody {
        return fail(OpenAIError(status: 413, type: "invalid_request_error", code: "request_too_large",
                                message: "the body has \(length) bytes; the limit is \(o.maxBody)"))
    }
    var bytes: [UInt8]
    do {
        let buffer = try await request.body.collect(upTo: o.maxBody)
        bytes = Array(buffer.readableBytesView)
    } catch {
        return fail(OpenAIError(status: 413, type: "invalid_request_error", code: "request_too_large",
                                message: "the body is larger than the limit of \(o.maxBody) bytes"))
    }
    let req: OpenAIRequest
    let prompt: [TokenID]
    do {
        req = try OpenAIRequest.parse(bytes, kind: kind, maxTokensCap: o.maxTokens)
        bytes = []
        if o.strictModelName, let m = req.model, m != o.alias {
            throw OpenAIError(status: 404, type: "invalid_request_error", param: "model", code: "model_not_found",
                              message: "the model \(m) does not exist; this server serves \(o.alias ?? "")")
        }
        prompt = try req.promptTokens(engine.model.tokenizer)
        let capacity = engine.scheduler.options.contextLength ?? 0
        if prompt.count >= capacity {
            throw OpenAIError.invalid(kind == .chat ? "messages" : "prompt",
                                      "the prompt has \(prompt.count) tokens; a request's context holds \(capacity) (prompt and completion)",
                                      code: "context_length_exceeded")
        }
    } catch let e as OpenAIError {
        return fail(e)
    } catch {
        return fail(OpenAIError.invalid(nil, "\(error)"))
    }

    let id: Int
    let updates: AsyncStream<SchedulerUpdate>
    do {
        (id, updates) = try engine.submit(prompt, options: req.generationOptions(engine.model.tokenizer))
    } catch {
        if case .busy = error {
            engine.countError()
            return errorResponse(OpenAIError(status: 429, type: "rate_limit_error", code: "queue_full",
                                             message: "the server is busy: \(o.maxQueue) requests are waiting; retry later"),
                                 headers: [.retryAfter: "1"])
        }
        return fail(OpenAIError.invalid(nil, error.description))
    }
    let responder = OpenAIResponder(kind: kind, id: (kind == .chat ? "chatcmpl-" : "cmpl-") + String(state.nextID()),
                                    created: Int(unixTime()), model: req.model ?? o.alias ?? "", tokenizer: engine.model.tokenizer)
    @Sendable func usage(_ r: GenerationResult) -> OpenAIUsage {
        OpenAIUsage(promptTokens: prompt.count, completionTokens: r.tokens.count, cachedTokens: prompt.count - r.promptTokenCount,
                    timings: OpenAITimings(r, cached: prompt.count - r.promptTokenCount))
    }

    // A reasoning model's `<think>` part goes to `reasoning_content` in chat responses; with
    // tools, a reply that is function calls goes to `tool_calls`.
    let answer = OpenAIAnswer(request: req, responder: responder, tokenizer: engine.model.tokenizer,
                              splitsReasoning: engine.model.thinksBeforeAnswering)
    if !req.stream {
        // Cancelled with the handler (the connection closed): the request stops at the next step.
        return await withTaskCancellationHandler {
            var text = ""
            var logprobs: [TokenLogprob] = []
            var result: GenerationResult?
            for await u in updates {
                text += u.text
                logprobs += u.logprobs
                if let r = u.result { result = r }
            }
            guard let result else {
                return errorResponse(OpenAIError(status: 500, type: "server_error", message: "the generation ended without a result"))
            }
            return json(answer.completion(text: text, logprobs: logprobs, result: result, usage: usage(result)))
        } onCancel: {
            engine.cancel(id)
        }
    }

    let body = ResponseBody { writer in
        var answer = answer
        do {
            for await u in updates {
                for line in answer.chunks(text: u.text, logprobs: u.logprobs, result: u.result, usage: u.result.map(usage)) {
                    try await writer.write(ByteBuffer(string: "data: " + line + "\n\n"))
                }
            }
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
        } catch {
            engine.cancel(id)  // the client went away: free its slot
            throw error
        }
    }
    return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
}

func unixTime() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec)
}
