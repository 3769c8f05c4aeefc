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
}
