#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
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
    /// Prompt-lookup decoding: after each token, propose up to this many next tokens (at most 7)
    /// by continuing the most recent earlier occurrence of the last 2–5 tokens in the prompt and
    /// output, and verify them in one batched pass. How many are proposed adapts to how often
    /// drafts from matches of that length were accepted so far in this generation (see
    /// ``Generation``), so text that does not repeat its context costs next to nothing extra while
    /// text that does (edits, code, quotes) gets several tokens per pass over the weights. Greedy
    /// output is the same as without lookup (a verification pass computes each token exactly as
    /// decoding it alone would, for the quantized weight types); sampled output has the same
    /// distribution. 0: off (default).
    public var lookup = 0
    /// Log-probabilities: nil (default) records none; N (0…20) records, for every generated
    /// token, its log-probability under the model (log-softmax of the raw logits, before
    /// temperature, penalties and truncation) and the N most likely alternatives.
    public var topLogprobs: Int? = nil

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
    /// One entry per generated token when ``GenerationOptions/topLogprobs`` is set, else empty.
    public var logprobs: [TokenLogprob] = []
    /// Prompt lookup: tokens proposed as drafts.
    public var draftTokens = 0
    /// Prompt lookup: draft tokens the model confirmed (each one a token generated without a
    /// pass of its own over the weights).
    public var acceptedDraftTokens = 0
}

/// A generated token's log-probability and the most likely tokens at its position.
public struct TokenLogprob: Sendable, Equatable {
    /// The generated token.
    public var token: TokenID
    /// Its natural-log probability under the model.
    public var logprob: Float
    /// The most likely tokens at this position, most likely first, with their log-probabilities.
    public var top: [Alternative]

    /// A token and its log-probability.
    public struct Alternative: Sendable, Equatable {
        /// The token.
        public var token: TokenID
        /// Its natural-log probability.
        public var logprob: Float
    }

    /// Log-probabilities from `logits`: the entry of `token`, and the `topCount` most likely.
    public init(logits: [Float], token: TokenID, topCount: Int) {
        var maxv = -Float.infinity
        for v in logits where v > maxv { maxv = v }
        var sum = 0.0
        for v in logits { sum += Double(expf(v - maxv)) }
        let lse = maxv + Float(log(sum))
        self.token = token
        logprob = logits[Int(token)] - lse
        // The top entries by one pass with a small sorted list (ties: lower id first).
        var best: [(TokenID, Float)] = []
        if topCount > 0 {
            for (i, v) in logits.enumerated() where best.count < topCount || v > best[best.count - 1].1 {
                var k = best.count
                while k > 0 && best[k - 1].1 < v { k -= 1 }
                best.insert((TokenID(i), v), at: k)
                if best.count > topCount { best.removeLast() }
            }
        }
        top = best.map { Alternative(token: $0.0, logprob: $0.1 - lse) }
    }
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
    ///   - cacheType: the KV cache's element type (default: f32 for f32 weights, f16 for quantized).
    public init(model: Model, contextLength: Int? = nil, batchSize: Int = 512, threads: Int? = nil,
                cacheType: KVCacheType? = nil) throws(ModelError) {
        let n = contextLength ?? min(model.config.maxPositions, 4096)
        guard n > 0 && n <= model.config.maxPositions else {
            throw .invalidRequest("context length \(n) must be in 1…\(model.config.maxPositions)")
        }
        guard batchSize > 0 && batchSize <= 1 << 16 else { throw .invalidRequest("batch size must be in 1…65536") }
        if let threads, threads <= 0 { throw .invalidRequest("threads must be positive") }
        self.model = model
        let quantized = model.weights.layers.first.map { $0.gateUp.format != .f32 } ?? false
        let type = cacheType ?? (quantized ? .f16 : .f32)
        if type == .q8_0 && model.config.headDim % 32 != 0 {
            throw .invalidRequest("a q8_0 KV cache needs a head dimension that is a multiple of 32 (this model's is \(model.config.headDim))")
        }
        // The cache and scratch must fit in the memory left (an allocation that cannot be met would
        // end the process, not return an error).
        let plan = MemoryEstimate(config: model.config, weights: .q4_0, contextLength: 0)
        try MemoryEstimate(weightBytes: 0, cacheBytes: MemoryEstimate.cacheBytes(config: model.config, contextLength: n, type: type),
                           scratchBytes: plan.scratchBytes * min(batchSize, n) / 512 + model.config.vocabSize * 8,
                           weightType: .q4_0).check()
        self.cache = KVCache(config: model.config, capacity: n, type: type)
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

    /// Keeps the longest prefix of the context that `prompt` starts with (but at least one token
    /// of `prompt` is left to evaluate) and forgets the rest; returns the tokens of `prompt` still
    /// to evaluate. Re-sending a conversation with one more turn then only evaluates the new turn.
    public func reusePrefix(of prompt: [TokenID]) -> [TokenID] {
        var k = 0
        let limit = min(tokens.count, prompt.count - 1)
        while k < limit && tokens[k] == prompt[k] { k += 1 }
        truncate(to: k)
        return Array(prompt[k...])
    }

    // MARK: Saved state

    private static func stateCode(_ t: KVCacheType) -> UInt32 {
        switch t {
        case .f32: return 0
        case .f16: return 1
        case .q8_0: return 2
        }
    }

    private static let stateMagic: UInt32 = 0x5453_3450  // "P4ST"
    private static let stateVersion: UInt32 = 2  // 2: KV data head by head (1: position by position)

    /// The context's state — its tokens and their KV cache — as bytes: a versioned header with the
    /// model's ``Model/fingerprint``, then the data, then an FNV-1a checksum of everything before.
    /// ``restoreState(_:)`` puts it back into a session on the same model; generation then goes on
    /// exactly as it would have in this one.
    public func saveState() -> [UInt8] {
        var out: [UInt8] = []
        let n = tokens.count
        out.reserveCapacity(40 + 4 * n + 2 * cache.layerCount * cache.headCount * cache.headBytes(n))
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        put(Session.stateMagic)
        put(Session.stateVersion)
        put(model.fingerprint)
        put(Session.stateCode(cache.type))
        put(UInt32(cache.layerCount))
        put(UInt32(cache.kvDim))
        put(UInt32(n))
        for t in tokens { put(t) }
        for l in 0..<cache.layerCount {
            for v in [false, true] {
                for h in 0..<cache.headCount {
                    out.append(contentsOf: UnsafeRawBufferPointer(start: cache.head(layer: l, head: h, values: v), count: cache.headBytes(n)))
                }
            }
        }
        var h = FNV1a()
        out.withUnsafeBytes { h.add($0) }
        put(h.value)
        return out
    }

    /// Writes ``saveState()`` to a file (through a temporary file renamed into place).
    public func saveState(path: String) throws(ModelError) {
        do { try FileIO.writeAll(path, saveState()) } catch { throw .io(error.description) }
    }

    /// Restores a state written by ``saveState(path:)``.
    public func restoreState(path: String) throws(ModelError) {
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(path) } catch { throw .io(error.description) }
        try restoreState(bytes)
    }

    /// Replaces the context's tokens and KV cache with a state from ``saveState()``.
    /// - Throws: ``ModelError/invalidRequest(_:)`` when the bytes are not a state, are corrupted
    ///   (checksum), come from another model (fingerprint) or another cache type, or hold more
    ///   tokens than this context; the session is unchanged then.
    public func restoreState(_ bytes: [UInt8]) throws(ModelError) {
        let outcome = bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> ModelError? in
            do throws(ModelError) {
                try restoreState(raw)
                return nil
            } catch {
                return error
            }
        }
        if let outcome { throw outcome }
    }

    private func restoreState(_ raw: UnsafeRawBufferPointer) throws(ModelError) {
        var at = 0
        func get<T: FixedWidthInteger>(_: T.Type) throws(ModelError) -> T {
            guard at + MemoryLayout<T>.size <= raw.count else { throw .invalidRequest("the saved state is truncated") }
            var v = T.zero
            withUnsafeMutableBytes(of: &v) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[at..<(at + MemoryLayout<T>.size)])) }
            at += MemoryLayout<T>.size
            return T(littleEndian: v)
        }
        guard try get(UInt32.self) == Session.stateMagic else { throw .invalidRequest("not a saved context state") }
        let version = try get(UInt32.self)
        guard version == Session.stateVersion else { throw .invalidRequest("saved state version \(version) (this library reads \(Session.stateVersion))") }
        guard try get(UInt64.self) == model.fingerprint else { throw .invalidRequest("the saved state belongs to another model") }
        let type = try get(UInt32.self)
        guard type == Session.stateCode(cache.type) else { throw .invalidRequest("the saved state has another KV cache type") }
        guard try get(UInt32.self) == UInt32(cache.layerCount), try get(UInt32.self) == UInt32(cache.kvDim) else {
            throw .invalidRequest("the saved state has another model shape")
        }
        let n = Int(try get(UInt32.self))
        guard n <= cache.capacity else {
            throw .invalidRequest("the saved state holds \(n) tokens; this context holds \(cache.capacity)")
        }
        let dataStart = at + 4 * n
        let dataBytes = 2 * cache.layerCount * cache.headCount * cache.headBytes(n)
        guard raw.count == dataStart + dataBytes + 8 else { throw .invalidRequest("the saved state has the wrong size") }
        var h = FNV1a()
        h.add(UnsafeRawBufferPointer(rebasing: raw[0..<(dataStart + dataBytes)]))
        at = dataStart + dataBytes
        guard try get(UInt64.self) == h.value else { throw .invalidRequest("the saved state is corrupted (checksum)") }
        at = dataStart - 4 * n
        var ids: [TokenID] = []
        ids.reserveCapacity(n)
        for _ in 0..<n {
            let id = try get(Int32.self)
            guard id >= 0 && Int(id) < model.config.vocabSize else { throw .invalidRequest("the saved state has token \(id)") }
            ids.append(id)
        }
        // Everything checked: copy.
        var src = dataStart
        let hb = cache.headBytes(n)
        for l in 0..<cache.layerCount {
            for v in [false, true] {
                for h in 0..<cache.headCount {
                    cache.head(layer: l, head: h, values: v).copyMemory(from: raw.baseAddress! + src, byteCount: hb)
                    src += hb
                }
            }
        }
        cache.count = n
        tokens = ids
    }

    /// Asks a running ``generate(_:options:onText:)`` or ``evaluate(_:allLogits:)`` to stop soon.
    /// Safe to call from any thread.
    public func cancel() { p4k_flag_store(&cancelFlag, 1) }

    private var isCancelled: Bool { p4k_flag_load(&cancelFlag) != 0 }

    /// Appends `ids` to the context and returns logits: of the last position (`[vocab]`), or of
    /// every new position with `allLogits` (`[ids.count, vocab]`, row-major).
    ///
    /// The prompt is evaluated in chunks of the decoder's batch size.
    /// - Throws: ``ModelError/invalidRequest(_:)`` when an id is out of range,
    ///   ``ModelError/contextFull(_:)`` when the context has no room; the context is unchanged
    ///   then. If cancelled (``cancel()`` during the call; checked after every layer), the chunks
    ///   finished so far stay in the context and ``ModelError/cancelled`` is thrown.
    public func evaluate(_ ids: [TokenID], allLogits: Bool = false) throws(ModelError) -> [Float] {
        clearCancel()
        guard let logits = try evaluateChunks(ids, allLogits: allLogits) else { throw .cancelled }
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
            throw .contextFull("\(ids.count) tokens do not fit: the context holds \(cache.capacity) and \(tokens.count) are used")
        }
        var out: [Float] = []
        var i = 0
        while i < ids.count {
            if isCancelled { return nil }
            let chunk = Array(ids[i..<min(ids.count, i + decoder.batchSize)])
            let last = i + chunk.count == ids.count
            let logits: [Float]
            do {
                logits = try decoder.forward(chunk, cache: cache, logits: allLogits ? .all : (last ? .last : .none),
                                             shouldStop: { self.isCancelled })
            } catch .cancelled {
                return nil
            }
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
        let generation = try Generation(session: self, prompt: prompt, options: options)
        while let piece = try generation.next() {
            if !onText(piece.text, piece.token) { generation.stop() }
        }
        return generation.result
    }

    /// Starts a generation that the caller pulls piece by piece with ``Generation/next()``
    /// (the form bindings use to iterate). The prompt is evaluated here.
    public func startGeneration(_ prompt: [TokenID], options: GenerationOptions = GenerationOptions()) throws(ModelError) -> Generation {
        try Generation(session: self, prompt: prompt, options: options)
    }

    fileprivate var cancelRequested: Bool { isCancelled }
    fileprivate func clearCancel() { p4k_flag_store(&cancelFlag, 0) }
    fileprivate func evaluateForGeneration(_ ids: [TokenID], allLogits: Bool = false) throws(ModelError) -> [Float]? {
        try evaluateChunks(ids, allLogits: allLogits)
    }

    fileprivate static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}

/// A generation in progress: each ``next()`` samples and evaluates tokens until a piece of text
/// is final, and returns it; nil once generation has stopped (see ``stopReason``).
public final class Generation {
    /// The session it runs on.
    public let session: Session
    /// Why it stopped, once it has.
    public private(set) var stopReason: StopReason?
    /// Everything so far: tokens, text, timings.
    public private(set) var result: GenerationResult

    private let options: GenerationOptions
    private var logits: [Float]
    private var sampler: Sampler
    private var stream: StreamingDecoder
    private var stops: StopStringMatcher
    private let endIDs: Set<TokenID>
    private var queue: [(String, TokenID)] = []
    private var flushed = false
    private var pending: (TokenID, [Float])?
    /// Prompt lookup's record per match length n (index n − 1): draft tokens accepted, and draft
    /// tokens tried (proposed up to and including the first rejected one), both decayed while
    /// matches of that length go unused (see ``proposeDraft(after:)``).
    private var draftsAccepted = [Double](repeating: 0, count: Generation.longestMatch)
    private var draftsTried = [Double](repeating: 0, count: Generation.longestMatch)
    private let clock = ContinuousClock()
    private var started: ContinuousClock.Instant

    init(session: Session, prompt: [TokenID], options: GenerationOptions) throws(ModelError) {
        try options.sampling.validate()
        guard options.maxTokens >= 0 else { throw .invalidRequest("max tokens must be ≥ 0") }
        if let n = options.topLogprobs, n < 0 || n > 20 { throw .invalidRequest("top logprobs must be in 0…20") }
        guard options.lookup >= 0 else { throw .invalidRequest("lookup must be ≥ 0") }
        for s in options.stopStrings where s.isEmpty { throw .invalidRequest("stop strings must not be empty") }
        self.session = session
        self.options = options
        session.clearCancel()
        let t0 = clock.now
        let prefill = try session.evaluateForGeneration(prompt)
        started = clock.now
        result = GenerationResult(tokens: [], text: "", stopReason: .maxTokens, promptTokenCount: prompt.count,
                                  promptSeconds: Session.seconds(started - t0), generationSeconds: 0)
        logits = prefill ?? []
        sampler = Sampler(options.sampling)
        stream = StreamingDecoder(tokenizer: session.model.tokenizer)
        stops = StopStringMatcher(options.stopStrings)
        endIDs = session.model.endOfGenerationIDs.union(options.stopTokenIDs)
        if prefill == nil { end(.cancelled, flush: false) }
    }

    /// Stops the generation (reason ``StopReason/cancelled``) without emitting held-back text.
    public func stop() {
        if stopReason == nil { end(.cancelled, flush: false) }
    }

    private func end(_ reason: StopReason, flush: Bool) {
        stopReason = reason
        result.stopReason = reason
        result.generationSeconds = Session.seconds(clock.now - started)
        if !flush { flushed = true }
    }

    private func emit(_ text: String, _ id: TokenID) {
        guard !text.isEmpty else { return }
        result.text += text
        queue.append((text, id))
    }

    /// The next piece of text and the token that completed it, or nil when generation has stopped.
    public func next() throws(ModelError) -> (text: String, token: TokenID)? {
        while true {
            if !queue.isEmpty { return queue.removeFirst() }
            if stopReason != nil {
                if flushed { return nil }
                flushed = true
                let last = result.tokens.last ?? -1
                emit(stops.push(stream.flush()).0, last)
                emit(stops.flush(), last)
                continue
            }
            try step()
        }
    }

    /// Samples one token, streams its text, and evaluates it for the next step.
    private func step() throws(ModelError) {
        if session.cancelRequested { return end(.cancelled, flush: false) }
        if result.tokens.count >= options.maxTokens { return end(.maxTokens, flush: true) }
        let id: TokenID
        if let (t, raw) = pending {  // drawn while verifying a rejected draft token
            pending = nil
            id = t
            if endIDs.contains(id) { return end(.endOfSequence, flush: true) }
            record(id, raw)
        } else {
            let raw = options.topLogprobs == nil ? [] : logits  // the sampler changes logits in place
            id = sampler.sample(&logits, history: session.tokens[...])
            if endIDs.contains(id) { return end(.endOfSequence, flush: true) }
            record(id, raw)
        }
        guard try emitToken(id) else { return }
        if session.tokens.count >= session.contextLength { return end(.contextFull, flush: true) }
        if result.tokens.count >= options.maxTokens { return end(.maxTokens, flush: true) }
        if session.cancelRequested { return end(.cancelled, flush: false) }
        let (match, draft) = options.lookup > 0 ? proposeDraft(after: id) : (0, [])
        guard let rows = try session.evaluateForGeneration([id] + draft, allLogits: !draft.isEmpty) else {
            return end(.cancelled, flush: false)
        }
        if draft.isEmpty {
            logits = rows
            return
        }
        let before = result.acceptedDraftTokens
        try verify(draft, rows: rows)
        let accepted = result.acceptedDraftTokens - before
        draftsAccepted[match - 1] += Double(accepted)
        draftsTried[match - 1] += Double(min(draft.count, accepted + 1))
    }

    /// Appends a sampled token (and its log-probabilities) to the result.
    private func record(_ id: TokenID, _ raw: [Float]) {
        result.tokens.append(id)
        if let n = options.topLogprobs { result.logprobs.append(TokenLogprob(logits: raw, token: id, topCount: n)) }
    }

    /// Streams a token's text; false when it completed a stop string (generation ended).
    private func emitToken(_ id: TokenID) throws(ModelError) -> Bool {
        let piece: String
        do { piece = try stream.append(id) } catch { throw .tokenizer(error) }
        let (ready, matched) = stops.push(piece)
        emit(ready, id)
        if matched {
            end(.stopString, flush: false)
            return false
        }
        return true
    }

    /// Prompt lookup's longest n-gram.
    static let longestMatch = 5
    /// Prompt lookup's shortest n-gram: one token (a newline, " the") recurs too often to say
    /// what follows it.
    static let shortestMatch = 2
    /// A draft token is proposed while the estimated chance that it is reached and accepted is at
    /// least this: on a CPU one more token in a verification pass costs roughly 0.2–0.5 of a
    /// one-token pass (it is compute, not another read of the weights; `phi4 bench --verify`
    /// measures it), so a draft token must be accepted about that often to pay for itself.
    static let draftThreshold = 0.4
    /// How much of a match length's record remains each time a match of that length gets no draft.
    static let unusedMatchDecay = 0.9

    /// Prompt lookup: the match length n and the tokens that followed the most recent earlier
    /// occurrence of the longest n-gram (n = 5 … 2) ending the history (context + `id`). With r the
    /// acceptance rate so far of drafts from matches of length n (accepted + 1) / (tried + 2),
    /// draft token j is proposed while r^j ≥ ``draftThreshold`` (r = ½ before any evidence: one
    /// token), and no more than ``GenerationOptions/lookup``, the context and `maxTokens` allow.
    /// A match that gets no draft decays its length's record by ``unusedMatchDecay``, back towards
    /// r = ½, so drafts are tried again after a while (the sooner, the more often the text repeats
    /// itself and the less evidence of failure there is). Depends only on the tokens, so a seeded
    /// generation stays reproducible.
    private func proposeDraft(after id: TokenID) -> (Int, [TokenID]) {
        let tokens = session.tokens
        let h = tokens.count + 1  // the history is the context followed by `id`
        func history(_ i: Int) -> TokenID { i < tokens.count ? tokens[i] : id }
        let room = min(options.lookup, session.contextLength - h, options.maxTokens - result.tokens.count,
                       Ops.smallBatch - 1)
        guard room > 0 else { return (0, []) }
        for n in stride(from: min(Generation.longestMatch, h - 1), through: Generation.shortestMatch, by: -1) {
            var start = h - n - 1
            while start >= 0 {
                var same = true
                for j in 0..<n where history(start + j) != history(h - n + j) {
                    same = false
                    break
                }
                if same {
                    let from = start + n
                    let available = min(room, h - from)
                    if available > 0 {
                        let rate = (draftsAccepted[n - 1] + 1) / (draftsTried[n - 1] + 2)
                        var count = 0, reach = rate
                        while count < available && reach >= Generation.draftThreshold {
                            count += 1
                            reach *= rate
                        }
                        if count == 0 {
                            draftsAccepted[n - 1] *= Generation.unusedMatchDecay
                            draftsTried[n - 1] *= Generation.unusedMatchDecay
                        }
                        return (n, (from..<(from + count)).map(history))
                    }
                }
                start -= 1
            }
        }
        return (0, [])
    }

    /// Checks draft tokens against the model, in order, with the sampler: a draft token is kept
    /// when the token drawn at its position equals it. This is speculative sampling's rule for a
    /// draft that proposes one token with certainty (accept with probability p(token); on
    /// rejection the drawn token, a sample of p without the draft token, is the next token), so
    /// the output distribution is unchanged, and greedy output is the same. The KV cache drops the
    /// positions after the last kept token.
    private func verify(_ draft: [TokenID], rows: [Float]) throws(ModelError) {
        let vocab = session.model.config.vocabSize
        let base = session.tokens.count - draft.count  // context index of draft[0]
        result.draftTokens += draft.count
        for (i, d) in draft.enumerated() {
            var row = Array(rows[(i * vocab)..<((i + 1) * vocab)])
            let raw = options.topLogprobs == nil ? [] : row
            let t = sampler.sample(&row, history: session.tokens[..<(base + i)])
            guard t == d else {
                session.truncate(to: base + i)
                pending = (t, raw)
                return
            }
            result.acceptedDraftTokens += 1
            if endIDs.contains(t) {
                session.truncate(to: base + i)
                return end(.endOfSequence, flush: true)
            }
            record(t, raw)
            guard try emitToken(t) else { return session.truncate(to: base + i) }
            if result.tokens.count >= options.maxTokens {
                session.truncate(to: base + i)
                return end(.maxTokens, flush: true)
            }
            if session.cancelRequested {
                session.truncate(to: base + i)
                return end(.cancelled, flush: false)
            }
        }
        logits = Array(rows[(draft.count * vocab)...])
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
