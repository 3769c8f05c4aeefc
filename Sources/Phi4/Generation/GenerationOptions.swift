// What a generation is asked for (options) and what it gives back (result, stop reason).

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
    /// Constrained output: a GBNF grammar, a regular expression or a JSON Schema the generated
    /// text must follow (nil: none). Before each token the tokens that cannot continue a match
    /// are removed (and end-of-generation unless the text is a complete match); tokens that
    /// could not be finished within the remaining `maxTokens` are removed too, so the output is
    /// complete whenever the budget allows any match. Log-probabilities are those of the
    /// constrained distribution (after the removal). With prompt lookup, draft tokens the
    /// constraint forbids are not proposed, and each verified position is masked the same way. A
    /// constraint that cannot be compiled, matches nothing, or needs more bytes than `maxTokens`
    /// is an error before generation starts.
    public var constraint: Constraint? = nil

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
