#if canImport(Glibc)
import Glibc
#endif

/// How the next token is chosen from the logits.
///
/// Applied in this order: logit bias; repetition, presence and frequency penalties over the
/// last ``penaltyWindow`` tokens; then either greedy arg-max (`temperature == 0`), or top-k,
/// temperature, locally typical sampling (``typicalP``), top-p, min-p and a draw from the
/// remaining distribution, or — with ``mirostat`` 1 or 2 — temperature and Mirostat, which
/// replaces top-k, typical, top-p and min-p (as in llama.cpp, whose formulas these follow).
public struct SamplingParameters: Sendable, Equatable {
    /// Divides the logits; 0 means greedy (always the most likely token).
    public var temperature: Float = 0.8
    /// Keep only the k most likely tokens (0: no limit).
    public var topK: Int = 40
    /// Keep the smallest set of most likely tokens whose probability reaches p (1: no limit).
    public var topP: Float = 0.95
    /// Drop tokens less likely than `minP ×` the most likely one (0: off).
    public var minP: Float = 0.05
    /// HF-style repetition penalty: seen tokens' positive logits are divided by it, negative
    /// ones multiplied (1: off).
    public var repetitionPenalty: Float = 1
    /// Subtracted once from the logit of every token seen in the window (OpenAI-style; 0: off).
    public var presencePenalty: Float = 0
    /// Subtracted from a token's logit once per occurrence in the window (0: off).
    public var frequencyPenalty: Float = 0
    /// How many of the most recent tokens the penalties look at (-1: the whole context).
    public var penaltyWindow: Int = 64
    /// Whether the penalties' window reaches into the prompt (true, as llama-server and HF do) or
    /// sees only the tokens this generation produced (false, as llama-cpp-python does).
    public var penalizePrompt = true
    /// Added to the logits of the given tokens (`-.infinity` bans a token).
    public var logitBias: [TokenID: Float] = [:]
    /// Seed of the random generator: the same seed, model and prompt give the same text.
    /// nil: seeded from the system's entropy.
    public var seed: UInt64?
    /// Locally typical sampling: keep the tokens whose surprise (−log p) is closest to the
    /// distribution's entropy until their probability exceeds p (1: off).
    public var typicalP: Float = 1
    /// Mirostat: 0 off, 1 (Mirostat, top-k estimated from the 100 most likely tokens) or 2
    /// (Mirostat 2.0, truncation at surprise μ), aiming at an average surprise of ``mirostatTau``
    /// bits per token.
    public var mirostat: Int = 0
    /// Mirostat's target surprise τ, in bits (default 5).
    public var mirostatTau: Float = 5
    /// Mirostat's learning rate η (default 0.1).
    public var mirostatEta: Float = 0.1

    /// Default sampling (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05).
    public init() {}

    /// Greedy decoding: temperature 0, no penalties.
    public static var greedy: SamplingParameters {
        var p = SamplingParameters()
        p.temperature = 0
        return p
    }

    /// Checks ranges: temperature ≥ 0, top-k ≥ 0, 0 < top-p ≤ 1, 0 ≤ min-p ≤ 1, penalty > 0, all finite.
    public func validate() throws(ModelError) {
        guard temperature >= 0, temperature.isFinite else { throw .invalidRequest("temperature must be ≥ 0") }
        guard topK >= 0 else { throw .invalidRequest("top-k must be ≥ 0") }
        guard topP > 0, topP <= 1 else { throw .invalidRequest("top-p must be in (0, 1]") }
        guard minP >= 0, minP <= 1 else { throw .invalidRequest("min-p must be in [0, 1]") }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else { throw .invalidRequest("repetition penalty must be > 0") }
        guard presencePenalty.isFinite, frequencyPenalty.isFinite else { throw .invalidRequest("penalties must be finite") }
        guard penaltyWindow >= -1 else { throw .invalidRequest("penalty window must be ≥ -1") }
        for (_, b) in logitBias where b.isNaN || b == .infinity { throw .invalidRequest("logit bias must be a number or -infinity") }
        guard typicalP > 0, typicalP <= 1 else { throw .invalidRequest("typical-p must be in (0, 1]") }
        guard (0...2).contains(mirostat) else { throw .invalidRequest("mirostat must be 0, 1 or 2") }
        guard mirostatTau.isFinite, mirostatTau >= 0, mirostatEta.isFinite, mirostatEta >= 0 else {
            throw .invalidRequest("mirostat tau and eta must be finite and ≥ 0")
        }
    }
}

/// Chooses tokens from logits according to ``SamplingParameters``, with its own random state.
public struct Sampler: Sendable {
    /// The parameters.
    public let parameters: SamplingParameters
    /// Ids never chosen: the model's rows that no token has (see ``Model/unassignedIDs``).
    public var excluded: [TokenID] = []
    private var rng: RandomState
    /// Mirostat's running target μ (starts at 2τ; moved by η × the error after each draw).
    public private(set) var mirostatMu: Float

    /// A sampler; its random state starts from `parameters.seed`.
    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        mirostatMu = 2 * parameters.mirostatTau
        var seed = parameters.seed ?? 0
        if parameters.seed == nil { withUnsafeMutableBytes(of: &seed) { getentropyFill($0) } }
        rng = RandomState(seed: seed)
    }

    /// Picks the next token.
    ///
    /// - Parameters:
    ///   - logits: one row of logits (`vocabSize` values); modified in place.
    ///   - history: the tokens of the context so far, for the penalties.
    public mutating func sample(_ logits: inout [Float], history: ArraySlice<TokenID>) -> TokenID {
        let p = parameters
        let n = logits.count
        for id in excluded where id >= 0 && Int(id) < n { logits[Int(id)] = -.infinity }
        for (id, bias) in p.logitBias where id >= 0 && Int(id) < n { logits[Int(id)] += bias }
        if p.repetitionPenalty != 1 || p.presencePenalty != 0 || p.frequencyPenalty != 0 {
            let window = p.penaltyWindow < 0 ? history : history.suffix(p.penaltyWindow)
            var counts: [TokenID: Int] = [:]
            for id in window where id >= 0 && Int(id) < n { counts[id, default: 0] += 1 }
            for (id, count) in counts {
                var v = logits[Int(id)]
                if p.repetitionPenalty != 1 { v = v > 0 ? v / p.repetitionPenalty : v * p.repetitionPenalty }
                v -= p.presencePenalty + Float(count) * p.frequencyPenalty
                logits[Int(id)] = v
            }
        }
        if p.temperature == 0 { return Sampler.argmax(logits) }
        if p.mirostat != 0 { return sampleMirostat(logits) }

        // Candidates sorted by logit, most likely first (top-k keeps only the first k).
        var candidates: [(id: Int32, logit: Float)] = []
        candidates.reserveCapacity(p.topK > 0 ? min(p.topK, n) : n)
        let k = p.topK > 0 ? min(p.topK, n) : n
        if k < n {
            // Partial selection: an ascending window of the k largest seen so far.
            var heap: [(id: Int32, logit: Float)] = []
            heap.reserveCapacity(k)
            for (i, v) in logits.enumerated() where v > -.infinity {
                if heap.count < k {
                    heap.append((Int32(i), v))
                    if heap.count == k { heap.sort { $0.logit < $1.logit } }
                } else if v > heap[0].logit {
                    heap[0] = (Int32(i), v)
                    // Restore order by bubbling the new element up (the array stays sorted ascending).
                    var j = 0
                    while j + 1 < heap.count && heap[j].logit > heap[j + 1].logit {
                        heap.swapAt(j, j + 1)
                        j += 1
                    }
                }
            }
            candidates = heap
        } else {
            for (i, v) in logits.enumerated() where v > -.infinity { candidates.append((Int32(i), v)) }
        }
        if candidates.isEmpty { return Sampler.argmax(logits) }
        candidates.sort { $0.logit > $1.logit || ($0.logit == $1.logit && $0.id < $1.id) }

        // Temperature, then softmax over the candidates.
        let maxLogit = candidates[0].logit
        var probs = candidates.map { expf(($0.logit - maxLogit) / p.temperature) }
        var total = probs.reduce(0, +)
        // Locally typical: the tokens whose surprise is nearest the entropy, until their mass exceeds p.
        if p.typicalP < 1 {
            let keep = Sampler.typicalSet(probs.map { $0 / total }, p: p.typicalP)
            candidates = keep.map { candidates[$0] }
            probs = keep.map { probs[$0] }
            // Back to most likely first (typical order is by distance from the entropy).
            let order = probs.indices.sorted { probs[$0] > probs[$1] || (probs[$0] == probs[$1] && candidates[$0].id < candidates[$1].id) }
            candidates = order.map { candidates[$0] }
            probs = order.map { probs[$0] }
            total = probs.reduce(0, +)
        }
        // Top-p: the shortest prefix whose probability reaches p.
        if p.topP < 1 {
            var cumulative: Float = 0
            var keep = probs.count
            for (i, q) in probs.enumerated() {
                cumulative += q / total
                if cumulative >= p.topP {
                    keep = i + 1
                    break
                }
            }
            probs.removeSubrange(keep...)
            candidates.removeSubrange(keep...)
            total = probs.reduce(0, +)
        }
        // Min-p: drop tokens below minP × the top probability.
        if p.minP > 0 {
            let threshold = p.minP * probs[0]
            var keep = probs.count
            while keep > 1 && probs[keep - 1] < threshold { keep -= 1 }
            probs.removeSubrange(keep...)
            candidates.removeSubrange(keep...)
            total = probs.reduce(0, +)
        }
        let r = Float(rng.nextUnit()) * total
        var cumulative: Float = 0
        for (i, q) in probs.enumerated() {
            cumulative += q
            if r < cumulative { return candidates[i].id }
        }
        return candidates[candidates.count - 1].id
    }

    /// Mirostat (``SamplingParameters/mirostat`` 1 or 2) over the temperature-scaled logits: the
    /// draw, then μ moves towards the target surprise.
    private mutating func sampleMirostat(_ logits: [Float]) -> TokenID {
        let p = parameters
        var ids: [Int32] = []
        var scaled: [Float] = []
        for (i, v) in logits.enumerated() where v > -.infinity {
            ids.append(Int32(i))
            scaled.append(v / p.temperature)
        }
        if ids.isEmpty { return Sampler.argmax(logits) }
        let order = ids.indices.sorted { scaled[$0] > scaled[$1] || (scaled[$0] == scaled[$1] && ids[$0] < ids[$1]) }
        let maxLogit = scaled[order[0]]
        var probs = order.map { expf(scaled[$0] - maxLogit) }
        let total = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= total }
        let (pick, _, mu) = Sampler.mirostatStep(sortedProbs: probs, version: p.mirostat, vocabSize: logits.count,
                                              tau: p.mirostatTau, eta: p.mirostatEta, mu: mirostatMu,
                                              uniform: Float(rng.nextUnit()))
        mirostatMu = mu
        return ids[order[pick]]
    }

    /// Locally typical sampling (Meister et al.; llama.cpp's `typical`): with `probs` a
    /// distribution, the indices of the tokens whose surprise −ln p is closest to the entropy, in
    /// that order, until their probability exceeds `p` (at least one).
    public static func typicalSet(_ probs: [Float], p: Float) -> [Int] {
        var entropy: Float = 0
        for q in probs where q > 0 { entropy -= q * logf(q) }
        let shifted = probs.map { abs(-logf($0) - entropy) }
        let order = probs.indices.sorted { shifted[$0] < shifted[$1] || (shifted[$0] == shifted[$1] && $0 < $1) }
        var cumulative: Float = 0
        for (i, idx) in order.enumerated() {
            cumulative += probs[idx]
            if cumulative > p { return Array(order[...i]) }
        }
        return order
    }

    /// One Mirostat step on a distribution sorted most likely first: truncation (version 1: top-k
    /// with k from the Zipf exponent estimated on the 100 most likely tokens, k = (ε̂·2^μ /
    /// (1 − N^−ε̂))^(1/ŝ); version 2: drop tokens whose surprise −log₂ p exceeds μ), renormalise,
    /// draw with `uniform` ∈ [0, 1), then μ ← μ − η (−log₂ p(chosen) − τ).
    /// - Returns: the chosen index into `sortedProbs`, how many tokens the truncation kept, and the new μ.
    public static func mirostatStep(sortedProbs probs: [Float], version: Int, vocabSize: Int, tau: Float, eta: Float,
                                    mu: Float, uniform: Float) -> (index: Int, kept: Int, mu: Float) {
        var keep: Int
        if version == 1 {
            let m = 100
            var sumTiBi: Float = 0, sumTiSq: Float = 0
            var i = 0
            while i < m - 1 && i < probs.count - 1 {
                let ti = logf(Float(i + 2) / Float(i + 1))
                let bi = logf(probs[i] / probs[i + 1])
                sumTiBi += ti * bi
                sumTiSq += ti * ti
                i += 1
            }
            let sHat = sumTiBi / sumTiSq
            let epsHat = sHat - 1
            let k = powf(epsHat * powf(2, mu) / (1 - powf(Float(vocabSize), -epsHat)), 1 / sHat)
            // llama.cpp: max(int(k), 1); a NaN or huge k (a flat distribution) keeps everything.
            keep = k.isFinite && k < Float(probs.count) ? max(Int(k), 1) : probs.count
        } else {
            keep = probs.firstIndex { -log2f($0) > mu } ?? probs.count
            if keep == 0 { keep = 1 }
        }
        keep = min(keep, probs.count)
        let total = probs[..<keep].reduce(0, +)
        let r = uniform * total
        var cumulative: Float = 0
        var pick = keep - 1
        for i in 0..<keep {
            cumulative += probs[i]
            if r < cumulative {
                pick = i
                break
            }
        }
        let surprise = -log2f(probs[pick] / total)
        return (pick, keep, mu - eta * (surprise - tau))
    }

    /// The index of the largest value (the lowest index on ties).
    public static func argmax(_ v: [Float]) -> TokenID {
        var best = 0
        var bestValue = -Float.infinity
        for (i, x) in v.enumerated() where x > bestValue {
            best = i
            bestValue = x
        }
        return TokenID(best)
    }
}

/// xoshiro256** seeded through splitmix64: fast, reproducible across platforms.
struct RandomState: Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// A uniform double in [0, 1).
    mutating func nextUnit() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
}

/// Fills a buffer from the system's entropy (falls back to the clock).
func getentropyFill(_ buf: UnsafeMutableRawBufferPointer) {
    #if os(Linux)
    if getentropy(buf.baseAddress, buf.count) == 0 { return }
    #endif
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    var v = UInt64(truncatingIfNeeded: ts.tv_nsec) ^ UInt64(truncatingIfNeeded: ts.tv_sec) << 32
    withUnsafeBytes(of: &v) { src in
        for i in 0..<min(8, buf.count) { buf[i] = src[i] }
    }
}
