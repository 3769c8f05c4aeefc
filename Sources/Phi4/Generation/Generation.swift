// A generation in progress: sampling, streaming text, stop rules; prompt lookup is in
// PromptLookup.swift.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CPhi4Kernels

/// A generation in progress: each ``next()`` samples and evaluates tokens until a piece of text
/// is final, and returns it; nil once generation has stopped (see ``stopReason``).
public final class Generation {
    /// The session it runs on.
    public let session: Session
    /// Why it stopped, once it has.
    public internal(set) var stopReason: StopReason?
    /// Everything so far: tokens, text, timings.
    public internal(set) var result: GenerationResult

    let options: GenerationOptions
    var logits: [Float]
    var sampler: Sampler
    var stream: StreamingDecoder
    var stops: StopStringMatcher
    let endIDs: Set<TokenID>
    var queue: [(String, TokenID)] = []
    var flushed = false
    var pending: (TokenID, [Float])?
    /// The constraint's state, when the output is constrained.
    var tracker: ConstraintTracker?
    /// Where the generated tokens begin in the context.
    let promptEnd: Int

    /// The tokens before context position `end` the penalties see (the prompt too, unless
    /// ``SamplingParameters/penalizePrompt`` is off).
    func penaltyHistory(end: Int) -> ArraySlice<TokenID> {
        options.sampling.penalizePrompt ? session.tokens[..<end] : session.tokens[min(promptEnd, end)..<end]
    }
    /// Prompt lookup's record per match length n (index n − 1): draft tokens accepted, and draft
    /// tokens tried (proposed up to and including the first rejected one), both decayed while
    /// matches of that length go unused (see ``proposeDraft(after:)``).
    var draftsAccepted = [Double](repeating: 0, count: Generation.longestMatch)
    var draftsTried = [Double](repeating: 0, count: Generation.longestMatch)
    let clock = ContinuousClock()
    var started: ContinuousClock.Instant

    convenience init(session: Session, prompt: [TokenID], options: GenerationOptions) throws(ModelError) {
        try Generation.validate(options, model: session.model)
        session.clearCancel()
        let t0 = ContinuousClock.now
        let prefill = try session.evaluateForGeneration(prompt)
        self.init(session: session, options: options, promptTokenCount: prompt.count, logits: prefill ?? [],
                  promptSeconds: Session.seconds(ContinuousClock.now - t0))
        if prefill == nil { end(.cancelled, flush: false) }
    }

    /// A generation whose prompt is already in `session`'s context and whose next-token logits
    /// are `logits` (the batch scheduler evaluates prompts itself).
    init(session: Session, options: GenerationOptions, promptTokenCount: Int, logits: [Float], promptSeconds: Double) {
        self.session = session
        self.options = options
        started = clock.now
        result = GenerationResult(tokens: [], text: "", stopReason: .maxTokens, promptTokenCount: promptTokenCount,
                                  promptSeconds: promptSeconds, generationSeconds: 0)
        self.logits = logits
        promptEnd = session.tokens.count
        sampler = Sampler(options.sampling)
        sampler.excluded = session.model.unassignedIDs
        stream = StreamingDecoder(tokenizer: session.model.tokenizer)
        stops = StopStringMatcher(options.stopStrings)
        endIDs = session.model.endOfGenerationIDs.union(options.stopTokenIDs)
        // Compiled (and cached) by validate(_:model:) already.
        if let c = options.constraint,
           let t = try? TokenConstraint.compiled(c, tokenizer: session.model.tokenizer, vocabSize: session.model.config.vocabSize) {
            tracker = ConstraintTracker(t)
        }
    }

    /// Throws ``ModelError/invalidRequest(_:)`` for options no generation can run with.
    static func validate(_ options: GenerationOptions, model: Model) throws(ModelError) {
        try options.sampling.validate()
        guard options.maxTokens >= 0 else { throw .invalidRequest("max tokens must be ≥ 0") }
        if let n = options.topLogprobs, n < 0 || n > 20 { throw .invalidRequest("top logprobs must be in 0…20") }
        guard options.lookup >= 0 else { throw .invalidRequest("lookup must be ≥ 0") }
        for s in options.stopStrings where s.isEmpty { throw .invalidRequest("stop strings must not be empty") }
        if let c = options.constraint {
            let t: TokenConstraint
            do { t = try TokenConstraint.compiled(c, tokenizer: model.tokenizer, vocabSize: model.config.vocabSize) } catch {
                throw .invalidRequest("constraint: \(error)")
            }
            let need = t.grammar.minBytesToComplete(t.grammar.initialState)
            if need > options.maxTokens {
                throw .invalidRequest("constraint: the shortest matching output takes \(need) bytes; max tokens \(options.maxTokens) may not reach it")
            }
        }
    }

    /// Stops the generation (reason ``StopReason/cancelled``) without emitting held-back text.
    public func stop() {
        if stopReason == nil { end(.cancelled, flush: false) }
    }

    func end(_ reason: StopReason, flush: Bool) {
        stopReason = reason
        result.stopReason = reason
        result.generationSeconds = Session.seconds(clock.now - started)
        if !flush { flushed = true }
    }

    func emit(_ text: String, _ id: TokenID) {
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
                flushHeldText()
                continue
            }
            try step()
        }
    }

    /// Once stopped: emits the text held back (an incomplete character, a possible stop string's
    /// start), unless the stop discards it.
    func flushHeldText() {
        guard stopReason != nil && !flushed else { return }
        flushed = true
        let last = result.tokens.last ?? -1
        emit(stops.push(stream.flush()).0, last)
        emit(stops.flush(), last)
    }

    /// Samples one token, streams its text, and evaluates it for the next step.
    func step() throws(ModelError) {
        guard let id = try chooseToken() else { return }
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

    /// Chooses the next token (one drawn while verifying a rejected draft, or a sample of
    /// ``logits``), records it and streams its text. Returns the token, which the caller then
    /// evaluates to get the next logits, or nil when generation has ended (the token, if any,
    /// is not to be evaluated).
    func chooseToken() throws(ModelError) -> TokenID? {
        if session.cancelRequested { end(.cancelled, flush: false); return nil }
        if result.tokens.count >= options.maxTokens { end(.maxTokens, flush: true); return nil }
        let id: TokenID
        if let (t, raw) = pending {  // drawn while verifying a rejected draft token
            pending = nil
            id = t
            if endIDs.contains(id) { end(.endOfSequence, flush: true); return nil }
            record(id, raw)
            tracker?.accept(id)
        } else {
            // The budget: max tokens, or the context's room when that is less.
            let room = min(options.maxTokens - result.tokens.count, session.contextLength - session.tokens.count)
            tracker?.apply(&logits, remaining: room, endIDs: endIDs)
            let raw = options.topLogprobs == nil ? [] : logits  // the sampler changes logits in place
            id = sampler.sample(&logits, history: penaltyHistory(end: session.tokens.count))
            if endIDs.contains(id) { end(.endOfSequence, flush: true); return nil }
            record(id, raw)
            tracker?.accept(id)
        }
        guard try emitToken(id) else { return nil }
        // A complete match that nothing can extend: done without another pass.
        if let t = tracker, t.state.isComplete && !t.state.canContinue { end(.endOfSequence, flush: true); return nil }
        if session.tokens.count >= session.contextLength { end(.contextFull, flush: true); return nil }
        if result.tokens.count >= options.maxTokens { end(.maxTokens, flush: true); return nil }
        if session.cancelRequested { end(.cancelled, flush: false); return nil }
        return id
    }

    /// Takes the pieces of text produced so far (and, once stopped, the held-back rest).
    func takePieces() -> [(String, TokenID)] {
        flushHeldText()
        defer { queue.removeAll() }
        return queue
    }

    /// Appends a sampled token (and its log-probabilities) to the result.
    func record(_ id: TokenID, _ raw: [Float]) {
        result.tokens.append(id)
        if let n = options.topLogprobs { result.logprobs.append(TokenLogprob(logits: raw, token: id, topCount: n)) }
    }

    /// Streams a token's text; false when it completed a stop string (generation ended).
    func emitToken(_ id: TokenID) throws(ModelError) -> Bool {
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
}
