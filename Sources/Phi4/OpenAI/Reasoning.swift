/// Separates a reasoning model's thinking from its answer (Phi-4-reasoning writes
/// `<think> … </think>` and then the answer), for OpenAI's `reasoning_content` beside `content`.
///
/// Fed the streamed text piece by piece, it returns what is final on each side: text is held back
/// only while it could still be the start of `<think>` (at the beginning of the output) or of
/// `</think>`. An output that does not begin with `<think>` (leading whitespace aside) is all
/// answer; a `<think>` that is never closed (the output was cut) is all reasoning. The
/// whitespace between `</think>` and the answer is dropped. It works on the text, so it does not
/// matter whether the tokenizer has `<think>` as one special token or spells it in pieces.
public struct ReasoningSplitter: Sendable {
    private enum State: Sendable { case undecided, reasoning, answerStart, answer }
    private var state = State.undecided
    private var held = ""
    private static let open = "<think>", close = "</think>"

    /// A splitter at the start of an output.
    public init() {}

    /// Splits a whole output: the reasoning (nil when there is none) and the answer.
    public static func split(_ text: String) -> (reasoning: String?, content: String) {
        var s = ReasoningSplitter()
        let a = s.push(text), b = s.finish()
        let reasoning = a.reasoning + b.reasoning
        return (s.sawThinking ? reasoning : nil, a.content + b.content)
    }

    /// Whether the output began with `<think>`.
    public private(set) var sawThinking = false

    /// Takes the next piece of output; returns the reasoning and answer text now final.
    public mutating func push(_ text: String) -> (reasoning: String, content: String) {
        held += text
        var reasoning = "", content = ""
        while true {
            switch state {
            case .undecided:
                let trimmed = held.drop { $0.isWhitespace }
                if trimmed.hasPrefix(Self.open) {
                    held = String(trimmed.dropFirst(Self.open.count))
                    state = .reasoning
                    sawThinking = true
                    continue
                }
                if trimmed.isEmpty || Self.open.hasPrefix(trimmed) { return (reasoning, content) }  // still possible
                state = .answer
                continue
            case .reasoning:
                if let r = held.firstRange(of: Self.close) {
                    reasoning += held[..<r.lowerBound]
                    held = String(held[r.upperBound...])
                    state = .answerStart
                    continue
                }
                let keep = Self.partialSuffix(held, of: Self.close)
                reasoning += held.dropLast(keep)
                held = String(held.suffix(keep))
                return (reasoning, content)
            case .answerStart:
                held = String(held.drop { $0.isWhitespace })
                if held.isEmpty { return (reasoning, content) }
                state = .answer
                continue
            case .answer:
                content += held
                held = ""
                return (reasoning, content)
            }
        }
    }

    /// The rest at the end of the output.
    public mutating func finish() -> (reasoning: String, content: String) {
        defer { held = "" }
        switch state {
        case .reasoning: return (held, "")
        case .undecided: return ("", held)
        case .answerStart, .answer: return ("", held)
        }
    }

    /// The length of the longest suffix of `s` that is a proper prefix of `tag`.
    private static func partialSuffix(_ s: String, of tag: String) -> Int {
        var n = min(tag.count - 1, s.count)
        while n > 0 {
            if tag.hasPrefix(s.suffix(n)) { return n }
            n -= 1
        }
        return 0
    }
}

extension Model {
    /// Whether the model thinks before answering (`<think> … </think>`): Phi-4-reasoning's shape,
    /// or a vocabulary with a `<think>` token. Chat responses then carry `reasoning_content`.
    public var thinksBeforeAnswering: Bool {
        config.familyName == "Phi-4-reasoning" || tokenizer.specialTokenID("<think>") != nil
    }
}
