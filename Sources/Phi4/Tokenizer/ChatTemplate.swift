/// One message of a conversation.
public struct ChatMessage: Sendable, Equatable {
    /// Who speaks: `system`, `user` or `assistant` (any non-empty role is accepted).
    public var role: String
    /// What they say.
    public var content: String
    /// A system message's functions for Phi-4-mini's template (``ToolCalling/toolsJSON``): written
    /// after the content between `<|tool|>` and `<|/tool|>`. Ignored in Phi-4's format, where
    /// ``ToolCalling/prepare(_:)`` puts the functions into the content.
    public var tools: String?
    /// An assistant message's function calls (``ToolCalling/callsJSON(_:)``): written after the
    /// content between the format's call markers (`<|tool_call|>` … `<|/tool_call|>` as special
    /// tokens for Phi-4-mini, `<tool_call>` … `</tool_call>` as text for Phi-4).
    public var toolCalls: String?

    /// Creates a message.
    public init(role: String, content: String, tools: String? = nil, toolCalls: String? = nil) {
        self.role = role
        self.content = content
        self.tools = tools
        self.toolCalls = toolCalls
    }

    /// A system message.
    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    /// A user message.
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    /// An assistant message.
    public static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: "assistant", content: content) }

    /// Phi-4-reasoning's system prompt: the system text of its published chat template, which
    /// puts it first in every conversation that does not begin with a system message (the
    /// models are trained with it). ``Tokenizer/applyChatTemplate(_:addGenerationPrompt:allowSpecialInContent:)``
    /// adds it by itself for a vocabulary with Phi-4-reasoning's `<think>` token; use it
    /// explicitly (`phi4 chat --reasoning`) for a file whose tokenizer lacks that token.
    public static let phi4ReasoningSystemPrompt =
        "You are Phi, a language model trained by Microsoft to help users. Your role as an assistant involves "
        + "thoroughly exploring questions through a systematic thinking process before providing the final precise "
        + "and accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, "
        + "exploration, reassessment, reflection, backtracing, and iteration to develop well-considered thinking "
        + "process. Please structure your response into two main sections: Thought and Solution using the specified "
        + "format: <think> {Thought section} </think> {Solution section}. In the Thought section, detail your "
        + "reasoning process in steps. Each step should include detailed considerations such as analysing questions, "
        + "summarizing relevant findings, brainstorming new ideas, verifying the accuracy of the current steps, "
        + "refining any errors, and revisiting previous steps. In the Solution section, based on various attempts, "
        + "explorations, and reflections from the Thought section, systematically present the final solution that "
        + "you deem correct. The Solution section should be logical, accurate, and concise and detail necessary "
        + "steps needed to reach the conclusion. Now, try to solve the following question through the above "
        + "guidelines:"

    /// Phi-4-reasoning's system message (``phi4ReasoningSystemPrompt``).
    public static var reasoningSystem: ChatMessage { .system(phi4ReasoningSystemPrompt) }
}

/// Which chat format a tokenizer's special tokens call for.
public enum ChatFormat: String, Sendable {
    /// Phi-4 (and Phi-4-reasoning):
    /// `<|im_start|>system<|im_sep|>…<|im_end|><|im_start|>user<|im_sep|>…<|im_end|><|im_start|>assistant<|im_sep|>`.
    case phi4
    /// Phi-4-mini: `<|system|>…<|end|><|user|>…<|end|><|assistant|>`, every role its own special token.
    case phi4Mini

    /// The format as a Jinja chat template (what llama-server's `/props` reports; rendering it
    /// gives what this library builds, tools aside).
    public var jinjaTemplate: String {
        switch self {
        case .phi4:
            return "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + '<|im_end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}"
        case .phi4Mini:
            return "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
        }
    }
}

/// Phi-4's chat format. No newlines; every marker is one special token:
///
///     <|im_start|>system<|im_sep|>…<|im_end|><|im_start|>user<|im_sep|>…<|im_end|><|im_start|>assistant<|im_sep|>
///
/// It is not ChatML (no newline after the role). Phi-4-mini's format is
/// `<|system|>…<|end|><|user|>…<|end|><|assistant|>` (see ``ChatFormat``). Message text is encoded
/// with special tokens *not* recognised, so a user who types `<|im_end|>` cannot close their own
/// turn (no prompt injection), unless the caller passes `allowSpecialInContent: true`.
extension Tokenizer {
    /// The chat format of this vocabulary: Phi-4-mini's when it has `<|user|>` and `<|end|>` but no
    /// `<|im_start|>`, Phi-4's otherwise.
    public var chatFormat: ChatFormat {
        specialTokenID("<|im_start|>") == nil && specialTokenID("<|user|>") != nil && specialTokenID("<|end|>") != nil
            ? .phi4Mini : .phi4
    }

    /// The system message this vocabulary's chat template puts first when a conversation has
    /// none: ``ChatMessage/phi4ReasoningSystemPrompt`` for Phi-4-reasoning's vocabulary (Phi-4's
    /// format with `<think>` as a special token), nil otherwise.
    public var defaultSystemPrompt: String? {
        chatFormat == .phi4 && specialTokenID("<think>") != nil ? ChatMessage.phi4ReasoningSystemPrompt : nil
    }

    /// `messages` with ``defaultSystemPrompt`` first when there is one and they do not begin
    /// with a system message.
    func withDefaultSystem(_ messages: [ChatMessage]) -> [ChatMessage] {
        guard let s = defaultSystemPrompt, messages.first?.role != "system" else { return messages }
        return [.system(s)] + messages
    }

    /// The chat prompt as token ids. A conversation that does not begin with a system message
    /// gets the vocabulary's ``defaultSystemPrompt`` first, as the model's own template does.
    ///
    /// - Parameters:
    ///   - messages: the conversation so far.
    ///   - addGenerationPrompt: end with `<|im_start|>assistant<|im_sep|>` so that the model
    ///     writes the assistant's reply.
    ///   - allowSpecialInContent: treat special-token text inside message contents as special tokens.
    /// - Throws: ``TokenizerError/missingSpecialToken(_:)`` when the vocabulary lacks a marker,
    ///   ``TokenizerError/invalidMessage(_:)`` for an empty role or a role containing special-token text.
    public func applyChatTemplate(_ messages: [ChatMessage], addGenerationPrompt: Bool = true,
                                  allowSpecialInContent: Bool = false) throws(TokenizerError) -> [TokenID] {
        if chatFormat == .phi4Mini {
            return try applyMiniChatTemplate(messages, addGenerationPrompt: addGenerationPrompt,
                                             allowSpecialInContent: allowSpecialInContent)
        }
        let messages = withDefaultSystem(messages)
        let (start, sep, end) = try chatMarkers()
        var out: [TokenID] = []
        func open(_ role: String) throws(TokenizerError) {
            guard !role.isEmpty else { throw .invalidMessage("empty role") }
            let roleIDs = encode(role)
            if encode(role, allowSpecial: true) != roleIDs { throw .invalidMessage("role \(role) contains special-token text") }
            out.append(start)
            out.append(contentsOf: roleIDs)
            out.append(sep)
        }
        for m in messages {
            try open(m.role)
            out.append(contentsOf: encode(m.content, allowSpecial: allowSpecialInContent))
            if let calls = m.toolCalls { out.append(contentsOf: encode("<tool_call>" + calls + "</tool_call>")) }
            out.append(end)
        }
        if addGenerationPrompt { try open("assistant") }
        return out
    }

    /// The chat prompt for a conversation that may have outgrown the context: when the whole
    /// prompt is longer than `budget` tokens, the oldest messages are dropped — a leading system
    /// message is always kept, and a user message is dropped with the assistant reply that
    /// follows it — until it fits. Returns the ids and how many messages were dropped (they are
    /// the first `dropped` messages after the system message).
    /// - Throws: ``TokenizerError/invalidMessage(_:)`` when even the system message and the last
    ///   message do not fit.
    public func applyChatTemplate(_ messages: [ChatMessage], fitting budget: Int, addGenerationPrompt: Bool = true)
        throws(TokenizerError) -> (ids: [TokenID], dropped: Int) {
        let messages = withDefaultSystem(messages)
        let head = messages.first?.role == "system" ? 1 : 0
        var dropped = 0
        while true {
            let kept = Array(messages[..<head]) + Array(messages[(head + dropped)...])
            let ids = try applyChatTemplate(kept, addGenerationPrompt: addGenerationPrompt)
            if ids.count <= budget { return (ids, dropped) }
            guard messages.count - head - dropped > 1 else {
                throw .invalidMessage("the last message needs \(ids.count) tokens; the context leaves \(budget)")
            }
            // Drop a whole exchange: the oldest message, and the reply after it when it is one.
            dropped += 1
            if head + dropped < messages.count - 1 && messages[head + dropped].role == "assistant" { dropped += 1 }
        }
    }

    /// The chat prompt as text (what ``applyChatTemplate(_:addGenerationPrompt:allowSpecialInContent:)``
    /// encodes, for display). Encoding this text with specials allowed gives the same ids only
    /// when no content contains special-token text.
    public func renderChat(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        let messages = withDefaultSystem(messages)
        var s = ""
        if chatFormat == .phi4Mini {
            for m in messages {
                s += "<|\(m.role)|>\(m.content)"
                if let t = m.tools { s += "<|tool|>\(t)<|/tool|>" }
                if let c = m.toolCalls { s += "<|tool_call|>\(c)<|/tool_call|>" }
                s += "<|end|>"
            }
            return s + (addGenerationPrompt ? "<|assistant|>" : "<|endoftext|>")
        }
        for m in messages {
            s += "<|im_start|>\(m.role)<|im_sep|>\(m.content)"
            if let c = m.toolCalls { s += "<tool_call>\(c)</tool_call>" }
            s += "<|im_end|>"
        }
        if addGenerationPrompt { s += "<|im_start|>assistant<|im_sep|>" }
        return s
    }

    /// Phi-4-mini's template: `<|role|>` (a special token for each role the vocabulary has),
    /// the content, `<|end|>`; then `<|assistant|>` to prompt a reply, or `<|endoftext|>` when not.
    private func applyMiniChatTemplate(_ messages: [ChatMessage], addGenerationPrompt: Bool,
                                       allowSpecialInContent: Bool) throws(TokenizerError) -> [TokenID] {
        guard let end = specialTokenID("<|end|>") else { throw .missingSpecialToken("<|end|>") }
        func role(_ name: String) throws(TokenizerError) -> TokenID {
            guard !name.isEmpty else { throw .invalidMessage("empty role") }
            guard let id = specialTokenID("<|\(name)|>") else {
                throw .invalidMessage("role \(name) has no <|\(name)|> token in this vocabulary")
            }
            return id
        }
        func special(_ name: String) throws(TokenizerError) -> TokenID {
            guard let id = specialTokenID(name) else { throw .missingSpecialToken(name) }
            return id
        }
        var out: [TokenID] = []
        for m in messages {
            out.append(try role(m.role))
            out.append(contentsOf: encode(m.content, allowSpecial: allowSpecialInContent))
            if let t = m.tools {
                out.append(try special("<|tool|>"))
                out.append(contentsOf: encode(t))
                out.append(try special("<|/tool|>"))
            }
            if let c = m.toolCalls {
                out.append(try special("<|tool_call|>"))
                out.append(contentsOf: encode(c))
                out.append(try special("<|/tool_call|>"))
            }
            out.append(end)
        }
        if addGenerationPrompt {
            out.append(try role("assistant"))
        } else if let eot = specialTokenID("<|endoftext|>") {
            out.append(eot)
        }
        return out
    }

    private func chatMarkers() throws(TokenizerError) -> (TokenID, TokenID, TokenID) {
        guard let start = specialTokenID("<|im_start|>") else { throw .missingSpecialToken("<|im_start|>") }
        guard let sep = specialTokenID("<|im_sep|>") else { throw .missingSpecialToken("<|im_sep|>") }
        guard let end = specialTokenID("<|im_end|>") else { throw .missingSpecialToken("<|im_end|>") }
        return (start, sep, end)
    }
}
