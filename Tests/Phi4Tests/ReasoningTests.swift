import XCTest
@testable import Phi4

/// `<think> … </think>` separated from the answer, whole and streamed in any pieces.
final class ReasoningTests: XCTestCase {
    let cases: [(String, String?, String)] = [
        ("<think>Let me add 2 and 2.</think>\n\nThe answer is 4.", "Let me add 2 and 2.", "The answer is 4."),
        ("  \n<think>\nstep 1\nstep 2\n</think>4", "\nstep 1\nstep 2\n", "4"),
        ("<think>cut off before the end", "cut off before the end", ""),
        ("No thinking here. <think>not at the start</think>", nil, "No thinking here. <think>not at the start</think>"),
        ("<thin", nil, "<thin"),
        ("<think></think>", "", ""),
        ("<think>a < b and </thin k> is not the tag</think> done", "a < b and </thin k> is not the tag", "done"),
        ("", nil, ""),
    ]

    func testWholeOutputs() {
        for (text, reasoning, content) in cases {
            let (r, c) = ReasoningSplitter.split(text)
            XCTAssertEqual(r, reasoning, text.debugDescription)
            XCTAssertEqual(c, content, text.debugDescription)
        }
    }

    /// Streamed in pieces of every size, the parts add up to the whole split, and nothing of a
    /// tag is ever emitted on the wrong side.
    func testStreamedInAnyPieces() {
        for (text, reasoning, content) in cases {
            let chars = Array(text)
            for size in 1...max(1, chars.count) {
                var s = ReasoningSplitter()
                var r = "", c = ""
                var i = 0
                while i < chars.count {
                    let piece = String(chars[i..<min(chars.count, i + size)])
                    let out = s.push(piece)
                    r += out.reasoning
                    c += out.content
                    i += size
                }
                let end = s.finish()
                r += end.reasoning
                c += end.content
                XCTAssertEqual(r, reasoning ?? "", "\(text.debugDescription) in pieces of \(size)")
                XCTAssertEqual(c, content, "\(text.debugDescription) in pieces of \(size)")
            }
        }
    }

    func testResponsesCarryReasoningContent() throws {
        let tok = try Tokenizer.load(path: tokenizerFixtures + "/small")
        let responder = OpenAIResponder(kind: .chat, id: "chatcmpl-1", created: 0, model: "m", tokenizer: tok)
        let whole = try JSONParser.parse(Array(responder.completion(text: "4", reasoning: "2+2", finishReason: "stop",
                                                                     usage: OpenAIUsage(promptTokens: 1, completionTokens: 2),
                                                                     logprobs: nil).utf8))
        XCTAssertEqual(whole["choices"]?.arrayValue?.first?["message"]?["reasoning_content"]?.stringValue, "2+2")
        XCTAssertEqual(whole["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue, "4")
        let chunk = try JSONParser.parse(Array(responder.chunk(text: "", reasoning: "hmm", first: false, finishReason: nil,
                                                                logprobs: nil, usageNull: false).utf8))
        XCTAssertEqual(chunk["choices"]?.arrayValue?.first?["delta"]?["reasoning_content"]?.stringValue, "hmm")
        XCTAssertNil(chunk["choices"]?.arrayValue?.first?["delta"]?["content"])
        var reasoningShape = ModelConfig.phi4
        reasoningShape.maxPositions = 32768
        reasoningShape.ropeTheta = 500_000
        XCTAssertEqual(reasoningShape.familyName, "Phi-4-reasoning")
    }

    /// Phi-4-reasoning's chat prompt equals transformers' `apply_chat_template` on the model's
    /// template (tools/make_reasoning_fixtures.py): the preset system text byte for byte, put
    /// first when the conversation has no system message, a caller's system message kept, and
    /// the same ids (special-token text in contents read as special tokens, as HF tokenizers do).
    func testReasoningChatPromptMatchesTransformers() throws {
        let fixture = try JSONParser.parse(try FileIO.readAll(tokenizerFixtures + "/reasoning/chat.json"))
        XCTAssertEqual(ChatMessage.phi4ReasoningSystemPrompt, fixture["system"]?.stringValue)
        // Phi-4's tokenizer.json with <|dummy_16|> / <|dummy_17|> renamed, as the fixture's.
        var json = String(decoding: try FileIO.readAll(tokenizerFixtures + "/phi4/tokenizer.json"), as: UTF8.self)
        json = json.replacingOccurrences("<|dummy_16|>", "<think>").replacingOccurrences("<|dummy_17|>", "</think>")
        let dir = "/tmp/phi4-reasoning-tok-\(getpid())"
        mkdir(dir, 0o755)
        defer { unlink(dir + "/tokenizer.json"); rmdir(dir) }
        try FileIO.writeAll(dir + "/tokenizer.json", Array(json.utf8))
        let tok = try Tokenizer.load(path: dir)
        XCTAssertEqual(tok.specialTokenID("<think>"), 100280)
        XCTAssertEqual(tok.defaultSystemPrompt, ChatMessage.phi4ReasoningSystemPrompt)
        let cases = fixture["cases"]?.arrayValue ?? []
        XCTAssertEqual(cases.count, 6)
        for c in cases {
            let messages = (c["messages"]?.arrayValue ?? []).map {
                ChatMessage(role: $0["role"]!.stringValue!, content: $0["content"]!.stringValue!)
            }
            let gen = c["add_generation_prompt"]?.boolValue ?? true
            let want = (c["ids"]?.arrayValue ?? []).map { TokenID($0.intValue!) }
            XCTAssertEqual(try tok.applyChatTemplate(messages, addGenerationPrompt: gen, allowSpecialInContent: true), want)
            if gen { XCTAssertEqual(tok.renderChat(messages), c["text"]?.stringValue) }
        }
        // Phi-4's own vocabulary gets no default system message.
        let phi4 = try Tokenizer.load(path: tokenizerFixtures + "/phi4")
        XCTAssertNil(phi4.defaultSystemPrompt)
        XCTAssertEqual(try phi4.applyChatTemplate([.user("hi")]).first, 100264)
        XCTAssertFalse(phi4.renderChat([.user("hi")]).contains("You are Phi"))
        XCTAssertTrue(phi4.renderChat([.reasoningSystem, .user("hi")]).contains("You are Phi"))
    }
}
