import XCTest
@testable import Phi4

/// Tool calling: Phi-4-mini's prompt against transformers' rendering of its template
/// (tools/make_tool_fixtures.py), calls generated under the grammar on the demo model (Phi-4's
/// prompted format) and on the Phi-4-mini fixture (its special tokens), the masks around a
/// special token, and the OpenAI answer's `tool_calls`.
final class ToolCallTests: XCTestCase {
    static let fixture: JSONValue = try! JSONParser.parse(try! FileIO.readAll(tokenizerFixtures + "/mini-small/tools.json"))

    /// OpenAI-shaped requests (tools, a tool message, an assistant message with tool_calls) give
    /// the ids transformers gives for Phi-4-mini's template.
    func testMiniToolPromptMatchesTransformers() throws {
        let tok = try Tokenizer.load(path: tokenizerFixtures + "/mini-small")
        XCTAssertEqual(tok.chatFormat, .phi4Mini)
        let tools = Self.fixture["tools"]!
        for c in Self.fixture["cases"]!.arrayValue! {
            let body = JSONValue.object(["messages": c["messages"]!, "tools": tools]).serialized
            let r = try OpenAIRequest.parse(Array(body.utf8), kind: .chat, maxTokensCap: 100)
            let want = c["ids"]!.arrayValue!.map { TokenID($0.intValue!) }
            XCTAssertEqual(try r.promptTokens(tok), want, c["text"]!.stringValue!)
            XCTAssertEqual(tok.renderChat(r.toolCalling(tok)!.prepare(r.messages)), c["text"]!.stringValue!)
        }
    }

    static let weather = ToolFunction(name: "get_weather", description: "Weather for a city.",
                                      parameters: #"{"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}, "days": {"type": "integer", "minimum": 1, "maximum": 7}}, "required": ["city", "days"], "additionalProperties": false}"#)
    static let add = ToolFunction(name: "add", parameters: #"{"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}"#, strict: true)

    /// Checks a call against its function's parameters by hand (independent of the grammar).
    func checkCall(_ call: ToolCall, _ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let args = try JSONParser.parse(call.arguments)
        switch call.name {
        case "get_weather":
            XCTAssertEqual(Set(args.objectValue!.keys), ["city", "days"], text, file: file, line: line)
            XCTAssertLessThanOrEqual(args["city"]?.stringValue?.count ?? 99, 12, text, file: file, line: line)
            let d = args["days"]?.intValue ?? 0
            XCTAssertTrue(d >= 1 && d <= 7, text, file: file, line: line)
        case "add":
            XCTAssertNotNil(args["a"]?.intValue, text, file: file, line: line)
            XCTAssertNotNil(args["b"]?.intValue, text, file: file, line: line)
        default: XCTFail("unknown function \(call.name): \(text)", file: file, line: line)
        }
    }

    func generate(_ model: Model, _ calling: ToolCalling, seed: Int, maxTokens: Int = 120) throws -> GenerationResult {
        var o = GenerationOptions()
        o.maxTokens = maxTokens
        o.sampling.temperature = 1
        o.sampling.seed = UInt64(seed)
        o.constraint = calling.constraint
        let prompt = try model.tokenizer.applyChatTemplate(calling.prepare([.user("Weather in Paris for 3 days?")]))
        return try Session(model: model, contextLength: min(1024, model.config.maxPositions)).generate(prompt, options: o)
    }

    /// Phi-4's prompted format on the demo model: `required` and a named function always give
    /// calls that parse and fit their schemas; `auto` gives calls or text that does not start
    /// with the marker; `none` leaves the reply free and the functions out of the prompt.
    func testPromptedCallsOnDemoModel() throws {
        let model = try Model.load(path: fixturesDirectory + "/../../../models/phi4-demo-q8_0.gguf")
        XCTAssertEqual(model.tokenizer.chatFormat, .phi4)
        for (choice, parallel) in [(ToolChoice.required, true), (.function("add"), false)] {
            let calling = try ToolCalling(functions: [Self.weather, Self.add], choice: choice, parallel: parallel, format: .phi4)
            for seed in 1...3 {
                let r = try generate(model, calling, seed: seed)
                XCTAssertTrue(r.text.hasPrefix("<tool_call>"), r.text)
                let calls = try XCTUnwrap(calling.calls(in: r.text), r.text)
                if !parallel { XCTAssertEqual(calls.count, 1, r.text) }
                for c in calls {
                    try checkCall(c, r.text)
                    if case .function(let n) = choice { XCTAssertEqual(c.name, n) }
                }
            }
        }
        let auto = try ToolCalling(functions: [Self.weather, Self.add], choice: .auto, format: .phi4)
        for seed in 1...4 {
            let r = try generate(model, auto, seed: seed, maxTokens: 60)
            if let calls = auto.calls(in: r.text) {
                for c in calls { try checkCall(c, r.text) }
            } else {
                XCTAssertFalse(r.text.hasPrefix("<tool_call>"), r.text)
            }
        }
        let none = try ToolCalling(functions: [Self.weather], choice: .none, format: .phi4)
        XCTAssertNil(none.constraint)
        XCTAssertEqual(none.prepare([.user("hi")]), [.user("hi")])
        // The prompted format's text branch: anything but the marker's start.
        let g = try auto.grammar()
        for s in ["", "<", "<tool", "Hello", "<b>bold</b>", "<tool_cal", "<tool_calx", "日本"] { XCTAssertTrue(g.matches(s), s) }
        for s in ["<tool_call>", "<tool_call>hello", #"<tool_call>[{"name": "nope", "arguments": {}}]</tool_call>"#] {
            XCTAssertFalse(g.matches(s), s)
        }
        XCTAssertTrue(g.matches(#"<tool_call>[{"name": "add", "arguments": {"a": 1, "b": -2}}]</tool_call>"#))
    }

    /// Phi-4-mini's format on its fixture model (random weights): a required call opens with the
    /// one `<|tool_call|>` token and closes with `<|/tool_call|>`; the mask admits a special token
    /// only where the grammar names it.
    func testMiniCallsUseItsSpecialTokens() throws {
        // The mini fixture's weights with the mini-small vocabulary (Phi-4-mini's special tokens).
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("phi4-mini-tools-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: modelFixtures + "/mini/model.safetensors", toPath: dir + "/model.safetensors")
        // Its config's ids are the Phi-4 vocabulary's: <|endoftext|> and <|end|> in this one.
        let config = try String(contentsOfFile: modelFixtures + "/mini/config.json", encoding: .utf8)
            .replacingOccurrences(of: "\"eos_token_id\": 521", with: "\"eos_token_id\": 515")
            .replacingOccurrences(of: "\"bos_token_id\": 513", with: "\"bos_token_id\": 512")
        try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        for f in ["tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(atPath: tokenizerFixtures + "/mini-small/" + f, toPath: dir + "/" + f)
        }
        let model = try Model.load(path: dir)
        let tok = model.tokenizer
        XCTAssertEqual(tok.chatFormat, .phi4Mini)
        let open = try XCTUnwrap(tok.specialTokenID("<|tool_call|>")), close = try XCTUnwrap(tok.specialTokenID("<|/tool_call|>"))
        // A short prompt: the small vocabulary spends a token on nearly every character, and
        // the context holds 512. Calls still close within what is left.
        let calling = try ToolCalling(functions: [ToolFunction(name: "add", parameters: Self.add.parameters)], choice: .required, format: .phi4Mini)
        for seed in 1...3 {
            let r = try generate(model, calling, seed: seed, maxTokens: 200)
            XCTAssertEqual(r.tokens.first, open, r.text)
            XCTAssertEqual(r.tokens.last, close, r.text)
            let calls = try XCTUnwrap(calling.calls(in: r.text), r.text)
            for c in calls { try checkCall(c, r.text) }
        }
        let auto = try ToolCalling(functions: [Self.weather], choice: .auto, format: .phi4Mini)
        let c = TokenConstraint(grammar: try auto.grammar(), tokenizer: tok, vocabSize: model.config.vocabSize)
        let allowed = Set(c.allowedTokens(c.grammar.initialState))
        XCTAssertTrue(allowed.contains(open))
        for s in tok.specialTokens where s.id != open { XCTAssertFalse(allowed.contains(s.id), s.text) }
        XCTAssertTrue(allowed.contains(tok.encode("Hello")[0]))
        // After the marker: JSON only; text spelling the marker is not a call.
        let after = c.advance(c.grammar.initialState, open)
        let next = c.allowedTokens(after)
        XCTAssertFalse(next.isEmpty)
        for id in next { XCTAssertTrue(((try? tok.decodeText([id])) ?? "").hasPrefix("["), "\(id)") }
        XCTAssertNil(auto.calls(in: "Hello"))
    }

    /// The OpenAI answer: a call reply is `tool_calls` with finish reason `tool_calls`, streamed
    /// as one delta once complete; a text reply streams as text.
    func testOpenAIAnswerGivesToolCalls() throws {
        let tok = try Tokenizer.load(path: tokenizerFixtures + "/phi4")
        let body = #"{"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}], "stream": true}"#
        let r = try OpenAIRequest.parse(Array(body.utf8), kind: .chat, maxTokensCap: 100)
        XCTAssertNotNil(r.generationOptions(tok).constraint)
        let responder = OpenAIResponder(kind: .chat, id: "x", created: 0, model: "m", tokenizer: tok)
        let result = GenerationResult(tokens: [1, 2], text: "", stopReason: .endOfSequence, promptTokenCount: 1, promptSeconds: 0, generationSeconds: 0)
        var a = OpenAIAnswer(request: r, responder: responder, tokenizer: tok, splitsReasoning: false)
        var lines = a.chunks(text: "<tool", logprobs: [])
        lines += a.chunks(text: #"_call>[{"name": "add", "arguments": {"a": 2}}]"#, logprobs: [])
        lines += a.chunks(text: "</tool_call>", logprobs: [], result: result)
        let parsed = try lines.map { try JSONParser.parse($0) }
        XCTAssertTrue(parsed.dropLast().allSatisfy { $0["choices"]?.arrayValue?[0]["delta"]?["content"]?.stringValue ?? "" == "" })
        let last = parsed.last!["choices"]!.arrayValue![0]
        XCTAssertEqual(last["finish_reason"]?.stringValue, "tool_calls")
        let call = last["delta"]!["tool_calls"]!.arrayValue![0]
        XCTAssertEqual(call["function"]?["name"]?.stringValue, "add")
        XCTAssertEqual(try JSONParser.parse(call["function"]!["arguments"]!.stringValue!), .object(["a": .number(2)]))
        var b = OpenAIAnswer(request: r, responder: responder, tokenizer: tok, splitsReasoning: false)
        let text = b.chunks(text: "Hel", logprobs: []) + b.chunks(text: "lo", logprobs: [], result: result)
        XCTAssertEqual(text.compactMap { try? JSONParser.parse($0)["choices"]?.arrayValue?[0]["delta"]?["content"]?.stringValue }.joined(), "Hello")
        let whole = try JSONParser.parse(b.completion(text: #"<tool_call>[{"name": "add", "arguments": {}}]</tool_call>"#, logprobs: [],
                                                      result: result, usage: OpenAIUsage(promptTokens: 1, completionTokens: 2)))
        XCTAssertEqual(whole["choices"]?.arrayValue?[0]["message"]?["content"], .null)
        XCTAssertEqual(whole["choices"]?.arrayValue?[0]["message"]?["tool_calls"]?.arrayValue?.count, 1)
        // Refusals name the field.
        for (bad, param) in [(#""tool_choice": {"type": "function", "function": {"name": "nope"}}"#, "tools"),
                             (#""response_format": {"type": "json_object"}"#, "tools"),
                             (#""tool_choice": "sometimes""#, "tool_choice")] {
            let b2 = #"{"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "add"}}], "# + bad + "}"
            XCTAssertThrowsError(try OpenAIRequest.parse(Array(b2.utf8), kind: .chat, maxTokensCap: 100)) { e in
                XCTAssertEqual((e as? OpenAIError)?.param, param, "\(e)")
            }
        }
    }
}
