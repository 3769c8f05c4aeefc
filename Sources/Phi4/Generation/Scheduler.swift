// Continuous batching: many generations advanced together, one pass over the weights per step.

import Synchronization

/// How a ``Scheduler`` divides its work.
public struct SchedulerOptions: Sendable {
    /// Sequences decoded together; each slot has its own KV cache of ``contextLength`` positions.
    public var slots = 4
    /// Positions each slot's KV cache holds (default: the model's maximum, at most 4096). The
    /// caches are allocated per slot, not shared: memory is `slots ×` one context's cache.
    public var contextLength: Int? = nil
    /// The KV cache's element type (default: f32 for f32 weights, f16 for quantized).
    public var cacheType: KVCacheType? = nil
    /// Threads per parallel step (default: all the pool has).
    public var threads: Int? = nil
    /// Prompt tokens evaluated per step, in all, beside the decode rows of the running sequences
    /// (prompts waiting are read in arrival order). Smaller keeps running streams smoother while a
    /// long prompt is read; larger reads prompts faster. Results do not depend on it: a token is
    /// computed alike in whatever chunk it comes.
    public var prefillChunk = 32
    /// Requests that may wait for a slot; ``Scheduler/submit(_:options:)`` refuses more.
    public var maxQueue = 64
    /// While sequences are decoding, a step that also reads prompt tokens may take at most this
    /// many times as long as a step of decoding alone: the prompt tokens per step are cut (from
    /// ``prefillChunk`` down to 1) by the measured cost of a prompt row, so running streams stay
    /// smooth while a long prompt arrives. 0: no limit (always ``prefillChunk``).
    public var maxStepSlowdown = 2.0

    /// Default options: 4 slots, 32-token prefill chunks, a queue of 64.
    public init() {}
}

/// What one step did for one request: the text that became final, the tokens generated, their
/// log-probabilities (when asked for), and in the request's last update its result.
public struct SchedulerUpdate: Sendable {
    /// The request, as ``Scheduler/submit(_:options:)`` numbered it.
    public let request: Int
    /// Text that became final in this step (whole characters; may be empty).
    public let text: String
    /// Tokens generated in this step (at most one; none in a prompt-reading step).
    public let tokens: [TokenID]
    /// The log-probabilities of `tokens`, when ``GenerationOptions/topLogprobs`` is set.
    public let logprobs: [TokenLogprob]
    /// Tokens the request has generated so far.
    public let tokenCount: Int
    /// Prompt tokens evaluated for it (those its slot did not hold already).
    public let promptTokenCount: Int
    /// Set in the request's last update: everything it generated and why it stopped.
    public let result: GenerationResult?
}

/// Serves many generations from one model at once (continuous batching).
///
/// Each request gets a slot: a KV cache of its own. Every ``step()`` evaluates, in one forward
/// pass over the weights, the next token of every sequence that is decoding plus parts of the
/// prompts being read (at most ``SchedulerOptions/prefillChunk`` prompt tokens); attention runs
/// per sequence on its own cache. Decoding is memory-bound on a CPU, so several sequences cost
/// little more than one. Requests join between steps, as slots free up, and leave when they
/// stop. A finished request's tokens stay in its slot, and a new prompt that starts with them
/// goes to that slot and evaluates only what is new (a conversation's next turn).
///
/// Every row of a pass is computed exactly as when its sequence runs alone, whatever chunk it
/// comes in (see ``Decoder/forward(_:shouldStop:)``), so with quantized weights a request's
/// output — greedy, or sampled with a seed — equals that of a ``Session``, whatever else runs
/// beside it and whatever its slot had cached. f32 matrices (f32 models, and any matrix whose
/// width a quantized format cannot take) go through OpenBLAS's sgemm in passes of more than 8
/// rows, which may round differently: their results then agree within f32 rounding, not bit for bit. Prompt lookup (``GenerationOptions/lookup``)
/// is not used here.
///
/// ``submit(_:options:)`` and ``cancel(_:)`` may be called from any thread; ``step()`` from one
/// thread at a time.
// @unchecked Sendable: the inbox (new requests, cancellations, counters) is behind a Mutex; the
// slots and running requests are touched only by step(), which runs on one thread at a time.
public final class Scheduler: @unchecked Sendable {
    /// The model.
    public let model: Model
    /// The options it was made with (with the defaults filled in).
    public let options: SchedulerOptions

    private let decoder: Decoder
    private let slots: [Slot]
    /// Seconds of a decoding-only step and the extra seconds per prompt row (moving averages).
    private var decodeStepSeconds: Double?
    private var promptRowSeconds: Double?
    private var waiting: [Request] = []
    private var nextStep = 0

    private struct Inbox {
        var submitted: [Request] = []
        var cancelled: Set<Int> = []
        var nextID = 1
        var queued = 0  // submitted or waiting, not yet in a slot
        var active = 0  // in a slot
    }
    private let inbox = Mutex(Inbox())

    /// Makes the slots' caches and the decoder's scratch.
    /// - Throws: ``ModelError/invalidRequest(_:)`` for bad options,
    ///   ``ModelError/insufficientMemory(_:)`` when the slots' caches do not fit in the memory
    ///   available (with the numbers).
    public init(model: Model, options: SchedulerOptions = SchedulerOptions()) throws(ModelError) {
        var o = options
        let c = model.config
        guard o.slots >= 1 && o.slots <= 256 else { throw .invalidRequest("slots must be in 1…256") }
        guard o.prefillChunk >= 1 && o.prefillChunk <= 4096 else { throw .invalidRequest("the prefill chunk must be in 1…4096") }
        guard o.maxQueue >= 0 else { throw .invalidRequest("the queue size must be ≥ 0") }
        guard o.maxStepSlowdown == 0 || (o.maxStepSlowdown >= 1 && o.maxStepSlowdown.isFinite) else {
            throw .invalidRequest("the step slowdown must be 0 (off) or ≥ 1")
        }
        let n = o.contextLength ?? min(c.maxPositions, 4096)
        guard n > 0 && n <= c.maxPositions else { throw .invalidRequest("context length \(n) must be in 1…\(c.maxPositions)") }
        if let t = o.threads, t <= 0 { throw .invalidRequest("threads must be positive") }
        o.contextLength = n
        let quantized = model.weights.layers.first.map { $0.gateUp.format != .f32 } ?? false
        let type = o.cacheType ?? (quantized ? .f16 : .f32)
        o.cacheType = type
        let rows = o.slots + o.prefillChunk
        let perSlot = MemoryEstimate.cacheBytes(config: c, contextLength: n, type: type)
        let scratch = MemoryEstimate(config: c, weights: .q4_0, contextLength: 0).scratchBytes * rows / 512
            + o.slots * c.vocabSize * 8
        if let available = MemoryEstimate.availableBytes(), o.slots * perSlot + scratch > available {
            func gb(_ b: Int) -> String { String(Double(Int(Double(b) / 1e8)) / 10) + " GB" }
            throw .insufficientMemory("\(o.slots) slots of \(n) positions need \(gb(o.slots * perSlot)) of \(type.rawValue) KV cache (\(gb(perSlot)) each) and \(gb(scratch)) of scratch, but only \(gb(available)) is available; use fewer slots, a shorter context or a smaller KV type")
        }
        self.model = model
        self.options = o
        var made: [Slot] = []
        for _ in 0..<o.slots {
            made.append(Slot(session: try Session(model: model, contextLength: n, batchSize: o.prefillChunk, threads: o.threads,
                                                  cacheType: type)))
        }
        slots = made
        decoder = Decoder(model: model, batchSize: rows, threads: o.threads)
    }

    /// Queues a generation of a continuation of `prompt` and returns its request number (the
    /// `request` of its updates). Safe from any thread.
    /// - Throws: ``ModelError/invalidRequest(_:)`` for an empty prompt, an id outside the
    ///   vocabulary or bad options; ``ModelError/contextFull(_:)`` when the prompt does not fit
    ///   in a slot; ``ModelError/busy(_:)`` when ``SchedulerOptions/maxQueue`` requests already wait.
    public func submit(_ prompt: [TokenID], options: GenerationOptions = GenerationOptions()) throws(ModelError) -> Int {
        try Generation.validate(options, model: model)
        guard !prompt.isEmpty else { throw .invalidRequest("the prompt is empty") }
        let vocab = model.config.vocabSize
        for id in prompt where id < 0 || Int(id) >= vocab {
            throw .invalidRequest("token id \(id) is outside the vocabulary (0..<\(vocab))")
        }
        let capacity = self.options.contextLength!
        guard prompt.count <= capacity else {
            throw .contextFull("the prompt has \(prompt.count) tokens; a slot's context holds \(capacity)")
        }
        let limit = self.options.maxQueue
        let id: Int? = inbox.withLock { box in
            guard box.queued < limit + (slots.count - box.active) else { return nil }
            let id = box.nextID
            box.nextID += 1
            box.queued += 1
            box.submitted.append(Request(id: id, prompt: prompt, options: options))
            return id
        }
        guard let id else { throw .busy("\(limit) requests are already waiting for a slot") }
        return id
    }

    /// Stops a request: its last update (reason ``StopReason/cancelled``) comes from the next
    /// ``step()``. Unknown or finished requests are ignored. Safe from any thread.
    public func cancel(_ request: Int) {
        inbox.withLock { _ = $0.cancelled.insert(request) }
    }

    /// Requests waiting for a slot.
    public var queuedCount: Int { inbox.withLock { $0.queued } }
    /// Requests in a slot (reading their prompt or generating).
    public var activeCount: Int { inbox.withLock { $0.active } }
    /// Whether a ``step()`` has anything to do.
    public var hasWork: Bool { inbox.withLock { $0.queued + $0.active > 0 || !$0.cancelled.isEmpty } }
    /// Tokens held in the slots' KV caches (running and cached sequences) and their capacity.
    public var cacheUse: (used: Int, capacity: Int) {
        (slots.reduce(0) { $0 + $1.session.tokens.count }, slots.count * options.contextLength!)
    }

    /// Runs one step: admits waiting requests to free slots, evaluates one forward pass (a token
    /// for every decoding sequence, prompt chunks for those reading), samples, and returns an
    /// update for every request that changed. Call from one thread at a time.
    public func step() throws(ModelError) -> [SchedulerUpdate] {
        var updates: [SchedulerUpdate] = []
        let (arrived, cancels) = inbox.withLock { box in
            defer { box.submitted.removeAll(); box.cancelled.removeAll() }
            return (box.submitted, box.cancelled)
        }
        waiting += arrived
        if !cancels.isEmpty {
            for r in waiting where cancels.contains(r.id) {
                updates.append(finish(r, result: GenerationResult(tokens: [], text: "", stopReason: .cancelled,
                                                                  promptTokenCount: 0, promptSeconds: 0, generationSeconds: 0)))
            }
            waiting.removeAll { cancels.contains($0.id) }
            for slot in slots {
                guard let r = slot.request, cancels.contains(r.id) else { continue }
                if let g = r.generation { g.stop() }
                updates.append(finish(r, result: r.generation?.result ?? GenerationResult(
                    tokens: [], text: "", stopReason: .cancelled, promptTokenCount: r.evaluated - r.remaining.count,
                    promptSeconds: Session.seconds(ContinuousClock.now - r.admitted), generationSeconds: 0)))
            }
        }
        admit()

        // LongRoPE: a sequence that passes the threshold in this pass has its cached entries
        // evaluated again with the long factors first, and a reused long-rotated prefix of a
        // short prompt with the short ones (as a lone Session does).
        if model.config.longRoPE != nil {
            for slot in slots {
                guard let r = slot.request else { continue }
                let end = slot.session.cache.count + (r.next != nil ? 1 : r.remaining.count)
                if slot.session.needsRotation(end: end) { _ = try slot.session.rotate(end: end) }
            }
        }

        // One pass: decode rows first, then whole prompt chunks while the prefill budget lasts.
        var segments: [Decoder.Segment] = []
        var decoding: [Slot] = [], reading: [(Slot, Int)] = []
        for slot in slots {
            if let r = slot.request, let t = r.next {
                segments.append(Decoder.Segment(tokens: [t], cache: slot.session.cache, logits: .last))
                decoding.append(slot)
            }
        }
        var budget = options.prefillChunk
        if !decoding.isEmpty && options.maxStepSlowdown > 0, let d = decodeStepSeconds {
            // Learn a prompt row's cost with a few rows first, then fill the allowed extra time.
            let allowed = promptRowSeconds.map { Int((options.maxStepSlowdown - 1) * d / max($0, 1e-9)) } ?? 4
            budget = max(1, min(budget, allowed))
        }
        for slot in slots.sorted(by: { ($0.request?.order ?? .max) < ($1.request?.order ?? .max) }) where budget > 0 {
            guard let r = slot.request, r.generation == nil, !r.remaining.isEmpty else { continue }
            let n = min(r.remaining.count, budget)
            budget -= n
            let last = n == r.remaining.count
            segments.append(Decoder.Segment(tokens: Array(r.remaining.prefix(n)), cache: slot.session.cache,
                                            logits: last ? .last : .none,
                                            ropeLength: slot.session.cache.count + r.remaining.count))
            reading.append((slot, n))
        }
        guard !segments.isEmpty else { return updates }
        let clock = ContinuousClock()
        let t0 = clock.now
        let logits = try decoder.forward(segments)
        let seconds = Session.seconds(clock.now - t0)
        let promptRows = reading.reduce(0) { $0 + $1.1 }
        if !decoding.isEmpty && promptRows == 0 {
            decodeStepSeconds = decodeStepSeconds.map { 0.7 * $0 + 0.3 * seconds } ?? seconds
        } else if !decoding.isEmpty, let d = decodeStepSeconds {
            let perRow = max(0, seconds - d) / Double(promptRows)
            promptRowSeconds = promptRowSeconds.map { 0.7 * $0 + 0.3 * perRow } ?? perRow
        }
        let vocab = model.config.vocabSize

        var row = 0
        for slot in decoding {
            let r = slot.request!
            slot.session.tokens.append(r.next!)
            r.generation!.logits = Array(logits[(row * vocab)..<((row + 1) * vocab)])
            row += 1
            updates.append(advance(r))
        }
        for (slot, n) in reading {
            let r = slot.request!
            slot.session.tokens += r.remaining.prefix(n)
            r.remaining = r.remaining.dropFirst(n)
            guard r.remaining.isEmpty else { continue }
            r.generation = Generation(session: slot.session, options: r.options, promptTokenCount: r.evaluated,
                                      logits: Array(logits[(row * vocab)..<((row + 1) * vocab)]),
                                      promptSeconds: Session.seconds(ContinuousClock.now - r.admitted))
            row += 1
            updates.append(advance(r))
        }
        return updates
    }

    /// Submits every prompt, steps until all are done, and returns their results in order.
    public func generateAll(_ prompts: [[TokenID]], options: GenerationOptions = GenerationOptions()) throws(ModelError) -> [GenerationResult] {
        var ids: [Int] = []
        for p in prompts { ids.append(try submit(p, options: options)) }
        var results: [Int: GenerationResult] = [:]
        while results.count < ids.count {
            for u in try step() { if let res = u.result { results[u.request] = res } }
        }
        return ids.map { results[$0]! }
    }

    /// Puts waiting requests into free slots, in arrival order: each into the free slot whose
    /// cached tokens share the longest prefix with its prompt.
    private func admit() {
        while !waiting.isEmpty {
            let free = slots.filter { $0.request == nil }
            guard !free.isEmpty else { return }
            let r = waiting.removeFirst()
            func shared(_ s: Slot) -> Int {
                let t = s.session.tokens
                var k = 0
                while k < min(t.count, r.prompt.count - 1) && t[k] == r.prompt[k] { k += 1 }
                return k
            }
            let slot = free.max { shared($0) < shared($1) }!
            r.remaining = slot.session.reusePrefix(of: r.prompt)[...]
            r.evaluated = r.remaining.count
            r.admitted = .now
            r.order = nextStep
            nextStep += 1
            slot.request = r
            inbox.withLock { $0.queued -= 1; $0.active += 1 }
        }
    }

    /// Chooses the request's next token after its logits arrived, and reports what changed.
    private func advance(_ r: Request) -> SchedulerUpdate {
        let g = r.generation!
        do {
            r.next = try g.chooseToken()
        } catch {
            // A token the streaming decoder cannot take cannot come from a valid model: stop.
            g.stop()
            r.next = nil
        }
        if r.next == nil { return finish(r, result: g.result) }
        return update(r, result: nil)
    }

    private func update(_ r: Request, result: GenerationResult?) -> SchedulerUpdate {
        guard let g = r.generation else {
            return SchedulerUpdate(request: r.id, text: "", tokens: [], logprobs: [], tokenCount: 0,
                                   promptTokenCount: result?.promptTokenCount ?? 0, result: result)
        }
        let text = g.takePieces().map { $0.0 }.joined()
        let tokens = Array(g.result.tokens[r.reportedTokens...])
        let logprobs = g.result.logprobs.count > r.reportedTokens ? Array(g.result.logprobs[r.reportedTokens...]) : []
        r.reportedTokens = g.result.tokens.count
        return SchedulerUpdate(request: r.id, text: text, tokens: tokens, logprobs: logprobs,
                               tokenCount: g.result.tokens.count, promptTokenCount: r.evaluated, result: result)
    }

    /// The request's last update; frees its slot (its tokens stay cached there).
    private func finish(_ r: Request, result: GenerationResult) -> SchedulerUpdate {
        r.generation?.flushHeldText()
        let u = update(r, result: r.generation?.result ?? result)
        if let slot = slots.first(where: { $0.request === r }) {
            slot.request = nil
            inbox.withLock { $0.active -= 1 }
        } else {
            inbox.withLock { $0.queued -= 1 }
        }
        return u
    }

    private final class Slot {
        let session: Session
        var request: Request?
        init(session: Session) { self.session = session }
    }

    private final class Request {
        let id: Int
        let prompt: [TokenID]
        let options: GenerationOptions
        var remaining: ArraySlice<TokenID> = []
        var generation: Generation?
        var next: TokenID?  // chosen, to be evaluated in the next step
        var admitted = ContinuousClock.now
        var order = 0
        var reportedTokens = 0
        var evaluated = 0  // prompt tokens not found cached in the slot
        init(id: Int, prompt: [TokenID], options: GenerationOptions) {
            self.id = id
            self.prompt = prompt
            self.options = options
        }
    }
}
