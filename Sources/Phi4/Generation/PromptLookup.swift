// Prompt-lookup decoding: drafts proposed by continuing an earlier occurrence of the last tokens,
// verified in one batched pass with speculative sampling's rule.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CPhi4Kernels

extension Generation {
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
    func proposeDraft(after id: TokenID) -> (Int, [TokenID]) {
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
                        return (n, allowedPrefix((from..<(from + count)).map(history)))
                    }
                }
                start -= 1
            }
        }
        return (0, [])
    }

    /// The longest start of `draft` that the constraint (if any) allows, with the budget each
    /// draft position will have: a token the constraint would remove cannot be accepted, so it
    /// is not worth computing.
    func allowedPrefix(_ draft: [TokenID]) -> [TokenID] {
        guard var t = tracker else { return draft }
        // draft[i] goes to context index session.tokens.count + 1 + i (after the chosen token).
        for (i, d) in draft.enumerated() {
            let room = min(options.maxTokens - result.tokens.count - i, session.contextLength - session.tokens.count - 1 - i)
            guard t.allows(d, remaining: room, endIDs: endIDs) else { return Array(draft[..<i]) }
            if endIDs.contains(d) { return Array(draft[...i]) }
            t.accept(d)
        }
        return draft
    }

    /// Checks draft tokens against the model, in order, with the sampler: a draft token is kept
    /// when the token drawn at its position equals it. This is speculative sampling's rule for a
    /// draft that proposes one token with certainty (accept with probability p(token); on
    /// rejection the drawn token, a sample of p without the draft token, is the next token), so
    /// the output distribution is unchanged, and greedy output is the same. Under a constraint
    /// each position's logits are masked as ``chooseToken()`` masks them, in the constraint's
    /// state after the draft tokens before it. The KV cache drops the
    /// positions after the last kept token.
    func verify(_ draft: [TokenID], rows: [Float]) throws(ModelError) {
        let vocab = session.model.config.vocabSize
        let base = session.tokens.count - draft.count  // context index of draft[0]
        result.draftTokens += draft.count
        for (i, d) in draft.enumerated() {
            var row = Array(rows[(i * vocab)..<((i + 1) * vocab)])
            // The budget at this position, as chooseToken() computes it.
            let room = min(options.maxTokens - result.tokens.count, session.contextLength - (base + i))
            tracker?.apply(&row, remaining: room, endIDs: endIDs)
            let raw = options.topLogprobs == nil ? [] : row
            let t = sampler.sample(&row, history: penaltyHistory(end: base + i))
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
            tracker?.accept(t)
            guard try emitToken(t) else { return session.truncate(to: base + i) }
            if let c = tracker, c.state.isComplete && !c.state.canContinue {
                session.truncate(to: base + i)
                return end(.endOfSequence, flush: true)
            }
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
