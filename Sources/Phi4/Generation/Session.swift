import CPhi4Kernels

/// Why generation stopped.
public enum StopReason: String, Sendable {
    /// The model produced an end-of-generation token (`<|im_end|>`, `<|endoftext|>`, …).
    case endOfSequence
    /// The text reached one of the stop strings (which is not part of the output).
    case stopString
    /// `maxTokens` tokens were generated.
    case maxTokens
    /// The context is full.
    case contextFull
    /// ``Session/cancel()`` was called, or the streaming callback asked to stop.
    case cancelled
}

/// What to generate and when to stop.
public struct GenerationOptions: Sendable {
    /// The most tokens to generate.
    public var maxTokens = 256
    /// How tokens are chosen.
    public var sampling = SamplingParameters()
    /// Generation stops when the text contains one of these; the stop string is not emitted.
    public var stopStrings: [String] = []
    /// Extra token ids that end generation (the model's end-of-generation ids always do).
    public var stopTokenIDs: Set<TokenID> = []

    /// Default options: up to 256 tokens, default sampling.
    public init() {}
}

/// The outcome of one generation.
public struct GenerationResult: Sendable {
    /// The generated tokens (an end-of-generation token is not included).
    public var tokens: [TokenID]
    /// The generated text, as streamed (stop string excluded).
    public var text: String
    /// Why it stopped.
    public var stopReason: StopReason
    /// Tokens of the prompt that were evaluated.
    public var promptTokenCount: Int
    /// Seconds spent evaluating the prompt.
    public var promptSeconds: Double
    /// Seconds spent generating.
    public var generationSeconds: Double
}

/// One conversation: a KV cache over a shared ``Model``, the tokens in it, and the decoder's
/// scratch. A session is used by one thread at a time; ``cancel()`` may be called from any thread.
public final class Session: @unchecked Sendable {
    /// The model.
    public let model: Model
    /// The KV cache.
    public let cache: KVCache
    /// The decoder (holds scratch buffers for one chunk).
    public let decoder: Decoder
    /// The tokens currently in the cache, in order.
    public private(set) var tokens: [TokenID] = []
    private var cancelFlag = p4k_flag(value: 0)

    /// Creates a session.
    /// - Parameters:
    ///   - contextLength: positions the KV cache holds (default: the model's maximum, at most 4096).
    ///   - batchSize: the most tokens evaluated in one forward call (prefill chunk size).
    ///   - threads: threads per parallel step (default: all the pool has).
    public init(model: Model, contextLength: Int? = nil, batchSize: Int = 512, threads: Int? = nil) throws(ModelError) {
        let n = contextLength ?? min(model.config.maxPositions, 4096)
        guard n > 0 && n <= model.config.maxPositions else {
            throw .invalidRequest("context length \(n) must be in 1…\(model.config.maxPositions)")
        }
        guard batchSize > 0 && batchSize <= 1 << 16 else { throw .invalidRequest("batch size must be in 1…65536") }
        if let threads, threads <= 0 { throw .invalidRequest("threads must be positive") }
        self.model = model
        self.cache = KVCache(config: model.config, capacity: n)
        self.decoder = Decoder(model: model, batchSize: min(batchSize, n), threads: threads)
    }

    /// Positions the context holds.
    public var contextLength: Int { cache.capacity }

    /// Forgets the whole conversation.
    public func reset() {
        cache.reset()
        tokens.removeAll()
    }

    /// Keeps the first `n` tokens and forgets the rest (n is clamped to 0…count).
    public func truncate(to n: Int) {
        let k = max(0, min(n, tokens.count))
        cache.truncate(to: k)
        tokens.removeSubrange(k...)
    }

    /// Asks a running ``generate(_:options:onText:)`` or ``evaluate(_:allLogits:)`` to stop soon.
    /// Safe to call from any thread.
    public func cancel() { p4k_flag_store(&cancelFlag, 1) }

    private var isCancelled: Bool { p4k_flag_load(&cancelFlag) != 0 }

    /// Appends `ids` to the context and returns logits: of the last position (`[vocab]`), or of
    /// every new position with `allLogits` (`[ids.count, vocab]`, row-major).
    ///
    /// The prompt is evaluated in chunks of the decoder's batch size.
    /// - Throws: ``ModelError/invalidRequest(_:)`` when an id is out of range or the context
    ///   has no room; the context is unchanged then. If cancelled between chunks, the tokens
    ///   evaluated so far stay in the context and `.invalidRequest("cancelled")` is thrown.
    public func evaluate(_ ids: [TokenID], allLogits: Bool = false) throws(ModelError) -> [Float] {
        guard let logits = try evaluateChunks(ids, allLogits: allLogits) else { throw .invalidRequest("cancelled") }
        return logits
    }

    /// ``evaluate(_:allLogits:)``, returning nil when cancelled between chunks.
    private func evaluateChunks(_ ids: [TokenID], allLogits: Bool) throws(ModelError) -> [Float]? {
        guard !ids.isEmpty else { throw .invalidRequest("no tokens to evaluate") }
        let vocab = model.config.vocabSize
        for id in ids where id < 0 || Int(id) >= vocab {
            throw .invalidRequest("token id \(id) is outside the vocabulary (0..<\(vocab))")
        }
        guard tokens.count + ids.count <= cache.capacity else {
            throw .invalidRequest("\(ids.count) tokens do not fit: the context holds \(cache.capacity) and \(tokens.count) are used")
        }
        var out: [Float] = []
        var i = 0
        while i < ids.count {
            if i > 0 && isCancelled { return nil }
            let chunk = Array(ids[i..<min(ids.count, i + decoder.batchSize)])
            let last = i + chunk.count == ids.count
            let logits = try decoder.forward(chunk, cache: cache, logits: allLogits ? .all : (last ? .last : .none))
            tokens.append(contentsOf: chunk)
            out.append(contentsOf: logits)
            i += chunk.count
        }
        return out
    }

    /// Generates a continuation of `prompt` (appended to whatever the context already holds),
    /// streaming text as it becomes final.
    ///
    /// - Parameters:
    ///   - prompt: token ids to evaluate first (at least one).
    ///   - options: length, sampling and stop rules.
    ///   - onText: called with each piece of text (whole UTF-8 characters; text that might be
    ///     the start of a stop string is held back until it is resolved) and the token that
    ///     completed it; return false to stop (reason ``StopReason/cancelled``).
    /// - Returns: the tokens, the text and why it stopped. Reaching the context's end is a stop
    ///   reason, not an error.
    /// - Throws: ``ModelError/invalidRequest(_:)`` for a bad prompt or options.
    @discardableResult
    public func generate(_ prompt: [TokenID], options: GenerationOptions = GenerationOptions(),
                         onText: (String, TokenID) -> Bool = { _, _ in true }) throws(ModelError) -> GenerationResult {
        try options.sampling.validate()
        guard options.maxTokens >= 0 else { throw .invalidRequest("max tokens must be ≥ 0") }
        for s in options.stopStrings where s.isEmpty { throw .invalidRequest("stop strings must not be empty") }
        p4k_flag_store(&cancelFlag, 0)
        let clock = ContinuousClock()
        let t0 = clock.now
        let prefill = try evaluateChunks(prompt, allLogits: false)
        let t1 = clock.now
        var result = GenerationResult(tokens: [], text: "", stopReason: .cancelled, promptTokenCount: prompt.count,
                                      promptSeconds: seconds(t1 - t0), generationSeconds: 0)
        guard var logits = prefill else { return result }
        var sampler = Sampler(options.sampling)
        var stream = StreamingDecoder(tokenizer: model.tokenizer)
        var stops = StopStringMatcher(options.stopStrings)
        let endIDs = model.endOfGenerationIDs.union(options.stopTokenIDs)
        var stopReason: StopReason?

        func emit(_ text: String, _ id: TokenID) {
            guard !text.isEmpty else { return }
            result.text += text
            if !onText(text, id) { stopReason = .cancelled }
        }

        while stopReason == nil {
            if isCancelled { stopReason = .cancelled; break }
            if result.tokens.count >= options.maxTokens { stopReason = .maxTokens; break }
            let id = sampler.sample(&logits, history: tokens[...])
            if endIDs.contains(id) { stopReason = .endOfSequence; break }
            result.tokens.append(id)
            let piece: String
            do { piece = try stream.append(id) } catch { throw .tokenizer(error) }
            let (ready, matched) = stops.push(piece)
            emit(ready, id)
            if matched { stopReason = .stopString; break }
            if stopReason != nil { break }
            if tokens.count >= cache.capacity {
                // The sampled token has no room in the context: it is the last one.
                stopReason = .contextFull
                break
            }
            if result.tokens.count >= options.maxTokens { stopReason = .maxTokens; break }
            if isCancelled { stopReason = .cancelled; break }
            logits = try evaluateChunks([id], allLogits: false) ?? []
        }
        if stopReason != .stopString {
            let (ready, _) = stops.push(stream.flush())
            emit(ready, result.tokens.last ?? -1)
            emit(stops.flush(), result.tokens.last ?? -1)
        }
        result.stopReason = stopReason ?? .maxTokens
        result.generationSeconds = seconds(clock.now - t1)
        return result
    }

    private func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}

/// Finds stop strings in streamed text, holding back any tail that could still begin one.
struct StopStringMatcher {
    private let stops: [String]
    private var held = ""

    init(_ stops: [String]) { self.stops = stops }

    /// Adds text; returns what is safe to emit, and whether a stop string was completed
    /// (the text before it is emitted; the stop string and anything after is dropped).
    mutating func push(_ text: String) -> (String, Bool) {
        if stops.isEmpty { return (text, false) }
        held += text
        // The earliest complete stop string wins.
        var earliest: String.Index?
        for s in stops {
            if let r = held.firstRange(of: s), earliest == nil || r.lowerBound < earliest! { earliest = r.lowerBound }
        }
        if let e = earliest {
            let out = String(held[..<e])
            held = ""
            return (out, true)
        }
        // Hold back the longest suffix that is a proper prefix of some stop string.
        var keep = 0
        let chars = Array(held)
        for s in stops {
            let sc = Array(s)
            var n = min(sc.count - 1, chars.count)
            while n > keep {
                if Array(chars[(chars.count - n)...]) == Array(sc[..<n]) { keep = n; break }
                n -= 1
            }
        }
        let out = String(chars[..<(chars.count - keep)])
        held = String(chars[(chars.count - keep)...])
        return (out, false)
    }

    /// Everything still held (the stream ended without a match).
    mutating func flush() -> String {
        defer { held = "" }
        return held
    }
}
