#if canImport(Glibc)
import Glibc
#endif

/// How the per-token vectors of an input become its embedding. The raw values are llama.cpp's
/// `llama_pooling_type` numbers.
public enum Pooling: Int, Sendable, CaseIterable {
    /// No pooling: one vector per token.
    case none = 0
    /// The mean over the input's tokens.
    case mean = 1
    /// The first token's vector (llama.cpp's "cls").
    case first = 2
    /// The last token's vector: for a causal model the only one that has seen the whole input.
    case last = 3

    /// Parses "none", "mean", "cls" / "first" and "last".
    public init?(name: String) {
        switch name.lowercased() {
        case "none": self = .none
        case "mean": self = .mean
        case "cls", "first": self = .first
        case "last": self = .last
        default: return nil
        }
    }
}

/// Embeddings: each input's final-norm hidden states (the vectors `lm_head` turns into logits),
/// pooled.
///
/// Inputs go through the batched forward pass together — up to `batchSize` tokens of several
/// inputs in one pass over the weights, each input attending only to itself (a KV cache of its own,
/// made when its first token enters a pass and dropped after its last) — so many short inputs
/// cost little more than one. An input longer than `batchSize` continues over several passes.
/// Each token's vector is computed exactly as in generation (with quantized weights, bit for bit
/// whatever it is batched with).
public struct Embedder {
    /// The model.
    public let model: Model
    private let decoder: Decoder
    private let cacheType: KVCacheType

    /// An embedder with passes of at most `batchSize` tokens on `threads` threads (default: all
    /// the shared pool has). The KV caches are f16 for quantized weights, f32 otherwise.
    public init(model: Model, batchSize: Int = 512, threads: Int? = nil) throws(ModelError) {
        guard batchSize > 0 && batchSize <= 1 << 16 else { throw .invalidRequest("batch size must be in 1…65536") }
        if let threads, threads <= 0 { throw .invalidRequest("threads must be positive") }
        self.init(decoder: Decoder(model: model, batchSize: batchSize, threads: threads))
    }

    /// An embedder on an existing decoder (a session's: its batch size and threads).
    init(decoder: Decoder) {
        self.model = decoder.model
        self.decoder = decoder
        self.cacheType = KVCacheType.standard(for: decoder.model)
    }

    /// The width of each vector (the model's hidden size).
    public var dimension: Int { model.config.hiddenSize }

    /// The embeddings of `inputs` (token ids; none may be empty or longer than the trained context).
    ///
    /// - Returns: per input, `dimension` floats when pooled, or with ``Pooling/none`` one row of
    ///   `dimension` floats per token, row-major. `normalize` divides each vector (each row) by its
    ///   L2 norm (a zero vector stays zero).
    /// - Throws: ``ModelError/invalidRequest(_:)`` for an empty or too long input or an id outside
    ///   the vocabulary, ``ModelError/outOfMemory(_:)`` when an input's KV cache cannot fit,
    ///   ``ModelError/cancelled`` when `shouldStop` (asked after every layer) says so.
    public func embed(_ inputs: [[TokenID]], pooling: Pooling = .mean, normalize: Bool = false,
                      shouldStop: (() -> Bool)? = nil) throws(ModelError) -> [[Float]] {
        let c = model.config
        let d = c.hiddenSize
        var longest = 0
        for (i, ids) in inputs.enumerated() {
            guard !ids.isEmpty else { throw .invalidRequest("input \(i) has no tokens") }
            guard ids.count <= c.maxPositions else {
                throw .invalidRequest("input \(i) has \(ids.count) tokens; the model takes at most \(c.maxPositions)")
            }
            for id in ids where id < 0 || Int(id) >= c.vocabSize {
                throw .invalidRequest("token id \(id) is outside the vocabulary (0..<\(c.vocabSize))")
            }
            longest = max(longest, ids.count)
        }
        if inputs.isEmpty { return [] }
        // The caches alive at once: at most one per token of a pass, each at most the longest input.
        let alive = min(inputs.count, decoder.batchSize)
        try MemoryEstimate(weightBytes: 0, cacheBytes: alive * MemoryEstimate.cacheBytes(config: c, contextLength: longest, type: cacheType),
                           scratchBytes: 0, weightType: .q4_0).check()

        var results = [[Float]](repeating: [], count: inputs.count)
        var active: [(input: Int, cache: KVCache)] = []
        var next = 0
        while next < inputs.count || !active.isEmpty {
            // Fill a pass: the inputs under way first, then new ones while there is room.
            var room = decoder.batchSize
            var segments: [Decoder.Segment] = []
            var parts: [(input: Int, start: Int, count: Int)] = []
            var k = 0
            while room > 0 {
                if k == active.count {
                    guard next < inputs.count else { break }
                    active.append((next, KVCache(config: c, capacity: inputs[next].count, type: cacheType)))
                    next += 1
                }
                let (input, cache) = active[k]
                let start = cache.count
                let n = min(inputs[input].count - start, room)
                segments.append(Decoder.Segment(tokens: Array(inputs[input][start..<(start + n)]), cache: cache, logits: .all,
                                                ropeLength: inputs[input].count))
                parts.append((input, start, n))
                room -= n
                k += 1
            }
            let rows = try decoder.forward(segments, output: .hidden, shouldStop: shouldStop)
            var row = 0
            for part in parts {
                let total = inputs[part.input].count
                rows.withUnsafeBufferPointer { r in
                    let chunk = UnsafeBufferPointer(rebasing: r[(row * d)..<((row + part.count) * d)])
                    switch pooling {
                    case .none:
                        results[part.input] += chunk
                    case .mean:
                        if results[part.input].isEmpty { results[part.input] = [Float](repeating: 0, count: d) }
                        for t in 0..<part.count {
                            for j in 0..<d { results[part.input][j] += chunk[t * d + j] }
                        }
                    case .first:
                        if part.start == 0 { results[part.input] = Array(chunk[0..<d]) }
                    case .last:
                        if part.start + part.count == total { results[part.input] = Array(chunk[((part.count - 1) * d)...]) }
                    }
                }
                row += part.count
            }
            // Finished inputs leave; their vectors are completed.
            active.removeAll { entry in
                guard entry.cache.count == inputs[entry.input].count else { return false }
                let i = entry.input
                if pooling == .mean {
                    let scale = 1 / Float(inputs[i].count)
                    for j in 0..<d { results[i][j] *= scale }
                }
                if normalize {
                    for start in stride(from: 0, to: results[i].count, by: d) { Embedder.normalize(&results[i], start, d) }
                }
                return true
            }
        }
        return results
    }

    /// Divides `v[start ..< start + n]` by its L2 norm (left as it is when the norm is 0).
    private static func normalize(_ v: inout [Float], _ start: Int, _ n: Int) {
        var sum: Double = 0
        for j in start..<(start + n) { sum += Double(v[j]) * Double(v[j]) }
        guard sum > 0 else { return }
        let scale = Float(1 / sum.squareRoot())
        for j in start..<(start + n) { v[j] *= scale }
    }
}
