#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CPhi4Kernels

/// One conversation: a KV cache over a shared ``Model``, the tokens in it, and the decoder's
/// scratch. A session is used by one thread at a time; ``cancel()`` may be called from any thread.
// @unchecked Sendable: used by one thread at a time (documented); only the cancel flag, an
// atomic, is touched from other threads.
public final class Session: @unchecked Sendable {
    /// The model.
    public let model: Model
    /// The KV cache.
    public let cache: KVCache
    /// The decoder (holds scratch buffers for one chunk; made on first use, so a session whose
    /// tokens a ``Scheduler`` evaluates never allocates them).
    public private(set) lazy var decoder = Decoder(model: model, batchSize: batchSize, threads: threads)
    private let batchSize: Int
    private let threads: Int?
    /// The tokens currently in the cache, in order.
    public internal(set) var tokens: [TokenID] = []
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
        let type = cacheType ?? KVCacheType.standard(for: model)
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
        self.batchSize = min(batchSize, n)
        self.threads = threads
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

    /// Asks a running ``generate(_:options:onText:)`` or ``evaluate(_:allLogits:)`` to stop soon.
    /// Safe to call from any thread.
    public func cancel() { p4k_flag_store(&cancelFlag, 1) }

    private var isCancelled: Bool { p4k_flag_load(&cancelFlag) != 0 }

    /// Embeddings of `inputs` (see ``Embedder``) with this session's batch size and threads;
    /// ``cancel()`` stops it (``ModelError/cancelled``). The session's own tokens and KV cache are
    /// not touched: each input gets a cache of its own.
    public func embed(_ inputs: [[TokenID]], pooling: Pooling = .mean, normalize: Bool = false) throws(ModelError) -> [[Float]] {
        clearCancel()
        return try Embedder(decoder: decoder).embed(inputs, pooling: pooling, normalize: normalize, shouldStop: { self.isCancelled })
    }

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
        let end = tokens.count + ids.count  // one call for LongRoPE's choice of factors, however chunked
        if needsRotation(end: end) {
            guard try rotate(end: end) else { return nil }
        }
        while i < ids.count {
            if isCancelled { return nil }
            let chunk = Array(ids[i..<min(ids.count, i + decoder.batchSize)])
            let last = i + chunk.count == ids.count
            let logits: [Float]
            do {
                logits = try decoder.forward(chunk, cache: cache, logits: allLogits ? .all : (last ? .last : .none),
                                             ropeLength: end, shouldStop: { self.isCancelled })
            } catch .cancelled {
                return nil
            }
            tokens.append(contentsOf: chunk)
            out.append(contentsOf: logits)
            i += chunk.count
        }
        return out
    }

    /// With LongRoPE: whether a call ending at `end` positions uses other factors than the
    /// cached entries were rotated with — it passes the threshold while the cache holds
    /// short-factor entries, or (after a truncation or a new prompt sharing a prefix) it ends
    /// below the threshold while the cache holds long-factor entries.
    func needsRotation(end: Int) -> Bool {
        guard let r = model.config.longRoPE, !tokens.isEmpty else { return false }
        return r.usesLongFactors(length: end) != cache.rotatedLong
    }

    /// LongRoPE's switch, as transformers' `generate` makes it: when a sequence first passes
    /// `original_max_position_embeddings`, the tokens already in the cache are evaluated again
    /// with the long factors (one prefill of the context, once), so that every key is rotated
    /// alike. The same brings a long-rotated cache that was cut back below the threshold to the
    /// short factors, so a context reused for a new prompt gives what a fresh one gives. Returns
    /// false when cancelled (the chunks evaluated again so far stay in the context).
    func rotate(end: Int) throws(ModelError) -> Bool {
        let old = tokens
        reset()
        var i = 0
        while i < old.count {
            if isCancelled { return false }
            let chunk = Array(old[i..<min(old.count, i + decoder.batchSize)])
            do {
                _ = try decoder.forward(chunk, cache: cache, logits: .none, ropeLength: end, shouldStop: { self.isCancelled })
            } catch .cancelled {
                return false
            }
            tokens.append(contentsOf: chunk)
            i += chunk.count
        }
        return true
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

    var cancelRequested: Bool { isCancelled }
    func clearCancel() { p4k_flag_store(&cancelFlag, 0) }
    func evaluateForGeneration(_ ids: [TokenID], allLogits: Bool = false) throws(ModelError) -> [Float]? {
        try evaluateChunks(ids, allLogits: allLogits)
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
