// Tool (function) calling: how the functions are described in the prompt, the grammar that makes
// every call the model writes parse and follow its function's parameter schema, and how a reply is
// read back into calls. Phi-4-mini was trained on tools with special tokens of its own; Phi-4 14B
// was not, so for it (and any vocabulary without those tokens) a documented prompt stands in.

/// A function the model may call: OpenAI's `tools[i].function`.
public struct ToolFunction: Sendable, Hashable {
    /// Its name (letters, digits, `_`, `-`, `.`; 1–64 characters).
    public var name: String
    /// What it does, for the model.
    public var description: String?
    /// The JSON Schema of its arguments, as JSON text (nil: any JSON object).
    public var parameters: String?
    /// True: the arguments follow `parameters` exactly, and a schema keyword libphi4 cannot
    /// enforce is an error. False (OpenAI's default): such a schema constrains the arguments to
    /// a JSON object only. A schema libphi4 supports is enforced either way.
    public var strict: Bool

    /// A function.
    public init(name: String, description: String? = nil, parameters: String? = nil, strict: Bool = false) {
        self.name = name
        self.description = description
        self.parameters = parameters
        self.strict = strict
    }
}

/// Whether and which function the model must call (OpenAI's `tool_choice`).
public enum ToolChoice: Sendable, Hashable {
    /// The model answers in text or calls functions, as it decides.
    case auto
    /// The model answers in text; the functions are not shown to it.
    case none
    /// The model calls one or more functions.
    case required
    /// The model calls this function.
    case function(String)
}

/// A call the model made.
public struct ToolCall: Sendable, Equatable {
    /// An id for the caller to answer with (OpenAI's `tool_call_id`).
    public var id: String
    /// The function's name.
    public var name: String
    /// Its arguments as compact JSON text (an object).
    public var arguments: String

    /// A call.
    public init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// Tool calling for one request: which functions, which choice, and the chat format's way of
/// writing calls.
///
/// **Phi-4-mini** (its vocabulary has `<|tool|>` and `<|tool_call|>`): the functions go into the
/// system message as its template does, `<|system|>…<|tool|>[{"name": …, "description": …,
/// "parameters": …}]<|/tool|><|end|>`, and the model calls with
/// `<|tool_call|>[{"name": …, "arguments": {…}}]<|/tool_call|>`; tool results are `tool`
/// messages, `<|tool|>…<|end|>` as its template writes any role.
///
/// **Phi-4** (not trained on tools): the system message gets ``phi4Instructions(_:)`` (the
/// functions as JSON and how to call them), and calls are written
/// `<tool_call>[{"name": …, "arguments": {…}}]</tool_call>` in plain text; tool results are
/// given back as a user message `<tool_response>…</tool_response>`.
///
/// Either way a call is a whole reply, starting at its first token: with ``ToolChoice/auto`` the
/// reply is either text (which cannot begin with the call marker) or calls, and a call's JSON
/// follows its function's schema (the grammar, ``constraint``, makes it so); with
/// ``ToolChoice/required`` or a named function the reply is calls only.
public struct ToolCalling: Sendable, Hashable {
    /// The functions.
    public let functions: [ToolFunction]
    /// The choice.
    public let choice: ToolChoice
    /// Whether one reply may hold several calls (OpenAI's `parallel_tool_calls`).
    public let parallel: Bool
    /// The chat format the calls are written in.
    public let format: ChatFormat

    /// Tool calling with `functions`; throws when a name is invalid or repeated, or the named
    /// choice is not among them.
    public init(functions: [ToolFunction], choice: ToolChoice = .auto, parallel: Bool = true,
                format: ChatFormat) throws(ConstraintError) {
        var seen = Set<String>()
        for f in functions {
            let ok = !f.name.isEmpty && f.name.utf8.count <= 64
                && f.name.unicodeScalars.allSatisfy { c in
                    ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || "_-.".unicodeScalars.contains(c)
                }
            guard ok else { throw ConstraintError("tool name \(f.name) must be 1–64 characters of a-z, A-Z, 0-9, _, - and .") }
            guard seen.insert(f.name).inserted else { throw ConstraintError("tool name \(f.name) is given twice") }
        }
        if case .function(let n) = choice, !seen.contains(n) { throw ConstraintError("tool_choice names \(n), which is not among the tools") }
        if choice != .none && functions.isEmpty { throw ConstraintError("tool_choice \(choice) needs tools") }
        self.functions = functions
        self.choice = choice
        self.parallel = parallel
        self.format = format
    }

    /// The text that opens a call in this format.
    public var openMarker: String { format == .phi4Mini ? "<|tool_call|>" : "<tool_call>" }
    /// The text that closes it.
    public var closeMarker: String { format == .phi4Mini ? "<|/tool_call|>" : "</tool_call>" }

    /// The functions as the prompt lists them: a JSON array of `{"name", "description",
    /// "parameters"}` objects, written as Python's `json.dumps` writes them.
    public var toolsJSON: String {
        "[" + functions.map { f in
            var parts = ["\"name\": " + JSONValue.string(f.name).spacedSerialized]
            if let d = f.description { parts.append("\"description\": " + JSONValue.string(d).spacedSerialized) }
            let p = f.parameters.flatMap { try? JSONParser.parse($0) } ?? .object(["type": .string("object"), "properties": .object([:])])
            parts.append("\"parameters\": " + p.spacedSerialized)
            return "{" + parts.joined(separator: ", ") + "}"
        }.joined(separator: ", ") + "]"
    }

    /// What Phi-4 (which has no tool tokens) is told after its system text: the functions and
    /// the one way to call them.
    public static func phi4Instructions(_ toolsJSON: String) -> String {
        "# Tools\n\nYou may call one or more functions to assist with the user query. The functions, with their "
            + "parameters as JSON Schema:\n<tools>\n" + toolsJSON + "\n</tools>\n\nTo call functions, reply with "
            + "nothing but <tool_call>[{\"name\": <function name>, \"arguments\": <arguments as a JSON object>}]</tool_call>. "
            + "Each function's result comes back as <tool_response>…</tool_response>. Otherwise, answer the user directly."
    }

    /// The conversation as the model sees it with the functions: described in the system message
    /// (one is added when there is none), `tool` messages in the format's form. With
    /// ``ToolChoice/none`` the functions are not described.
    public func prepare(_ messages: [ChatMessage]) -> [ChatMessage] {
        var out = messages
        if format == .phi4 {
            out = out.map { m in m.role == "tool" ? .user("<tool_response>" + m.content + "</tool_response>") : m }
        }
        guard choice != .none else { return out }
        if out.first?.role != "system" {
            out.insert(.system(format == .phi4Mini ? "You are a helpful assistant with some tools." : "You are a helpful assistant."), at: 0)
        }
        if format == .phi4Mini {
            out[0].tools = toolsJSON
        } else {
            out[0].content += (out[0].content.isEmpty ? "" : "\n\n") + ToolCalling.phi4Instructions(toolsJSON)
        }
        return out
    }

    /// The constraint on the reply: nil with ``ToolChoice/none``.
    public var constraint: Constraint? { choice == .none ? nil : .toolCalls(self) }

    /// The grammar of a reply: text (with ``ToolChoice/auto``) or the call marker, a JSON array
    /// of calls (one only unless ``parallel``), each `{"name": …, "arguments": …}` with the
    /// arguments valid for that function's schema, and the closing marker.
    public func grammar() throws(ConstraintError) -> Grammar {
        let b = GrammarBuilder()
        var variants: [JSONValue] = []
        for f in functions {
            if case .function(let n) = choice, n != f.name { continue }
            var params: JSONValue = .object(["type": .string("object")])
            if let text = f.parameters {
                let parsed: JSONValue
                do { parsed = try JSONParser.parse(text) } catch { throw ConstraintError("tool \(f.name): parameters are not valid JSON: \(error)") }
                do {
                    _ = try JSONSchema.symbols(parsed, in: GrammarBuilder())
                    params = parsed
                } catch {
                    if f.strict { throw ConstraintError("tool \(f.name): \(error)") }
                }
            }
            variants.append(.object(["type": .string("object"), "additionalProperties": .bool(false),
                                     "required": .array([.string("name"), .string("arguments")]),
                                     "properties": .object(["name": .object(["const": .string(f.name)]), "arguments": params])]))
        }
        var list: [String: JSONValue] = ["type": .string("array"), "minItems": .number(1),
                                         "items": variants.count == 1 ? variants[0] : .object(["anyOf": .array(variants)])]
        if !parallel { list["maxItems"] = .number(1) }
        let calls = try JSONSchema.symbols(.object(list), in: b)
        let marker = { (text: String) in self.format == .phi4Mini ? GrammarBuilder.specialToken(text) : GrammarBuilder.literal(text) }
        var alternatives = [marker(openMarker) + calls + marker(closeMarker)]
        if choice == .auto { alternatives += textNotStartingWithMarker(b) }
        return try b.build(root: b.rule("root", alternatives))
    }

    /// Alternatives matching any UTF-8 text that does not begin with the call marker (Phi-4-mini's
    /// marker is a special token, which text never contains).
    private func textNotStartingWithMarker(_ b: GrammarBuilder) -> [[GrammarBuilder.Symbol]] {
        let anyChar = b.scalarClass(ScalarSet.all, "char")
        let rest = b.star([anyChar], "text")
        if format == .phi4Mini { return [[rest]] }
        let m = Array(openMarker.utf8)  // ASCII
        var alts: [[GrammarBuilder.Symbol]] = [[]]
        for i in 0..<m.count {
            let prefix = GrammarBuilder.literal(Array(m[..<i]))
            if i > 0 { alts.append(prefix) }
            let other = b.scalarClass(ScalarSet.subtract(ScalarSet.all, [UInt32(m[i])...UInt32(m[i])]), "char")
            alts.append(prefix + [other, rest])
        }
        return alts
    }

    /// Whether a reply that starts with `text` is calls (`true`), text (`false`), or cannot be
    /// told yet (nil: `text` is a proper start of the marker).
    public func isCall(_ text: String) -> Bool? {
        if text.hasPrefix(openMarker) { return true }
        if openMarker.hasPrefix(text) { return nil }
        return false
    }

    /// The calls of a finished reply, or nil when it is text (or not a whole, well-formed call
    /// list, as a cut-off reply is). Ids are `call_` and a random suffix.
    public func calls(in text: String) -> [ToolCall]? {
        guard text.hasPrefix(openMarker) else { return nil }
        var body = Substring(text.dropFirst(openMarker.count))
        guard body.hasSuffix(closeMarker) else { return nil }
        body = body.dropLast(closeMarker.count)
        guard let list = (try? JSONParser.parse(String(body)))?.arrayValue, !list.isEmpty else { return nil }
        var out: [ToolCall] = []
        for item in list {
            guard let name = item["name"]?.stringValue, let args = item["arguments"], args.objectValue != nil else { return nil }
            out.append(ToolCall(id: "call_" + String(UInt64.random(in: 1...UInt64.max), radix: 36), name: name, arguments: args.serialized))
        }
        return out
    }

    /// The calls as an assistant message carries them in the prompt (``ChatMessage/toolCalls``):
    /// a JSON array of `{"name", "arguments"}`, arguments given as JSON text.
    public static func callsJSON(_ calls: [(name: String, arguments: String)]) -> String {
        "[" + calls.map { c in
            let args = (try? JSONParser.parse(c.arguments)).map(\.spacedSerialized) ?? JSONValue.string(c.arguments).spacedSerialized
            return "{\"name\": " + JSONValue.string(c.name).spacedSerialized + ", \"arguments\": " + args + "}"
        }.joined(separator: ", ") + "]"
    }
}
