// Log-probabilities of generated tokens (log-softmax of the raw logits).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CPhi4Kernels

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
