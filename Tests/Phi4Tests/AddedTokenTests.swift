import XCTest
@testable import Phi4

/// Added tokens with HF `tokenizers`' semantics, on folders that library wrote itself
/// (tools/make_added_token_fixtures.py): special tokens listed both in `added_tokens` (special) and
/// in `model.vocab` at the same ids, a non-special added token that duplicates a vocabulary
/// entry, and a non-special one of its own with `rstrip` (o200k) or `lstrip` (cl100k). Every
/// case's ids must equal what `tokenizers` and transformers' AutoTokenizer gave (they agree),
/// in both special-token modes; decoding, chat prompts and a checkpoint's greedy output too.
final class AddedTokenTests: XCTestCase {
    static let folders = ["o200k-vocab-specials", "cl100k-vocab-specials"]

    struct Case { let text: String; let special: Bool; let ids: [TokenID]; let decoded: String }

    func cases(_ folder: String) throws -> [Case] {
        try readLines(tokenizerFixtures + "/" + folder + "/cases.jsonl").map { line in
            let v = try JSONParser.parse(line)
            return Case(text: v["text"]!.stringValue!, special: v["special"]!.boolValue!,
                        ids: v["ids"]!.arrayValue!.map { TokenID($0.intValue!) }, decoded: v["decoded"]!.stringValue!)
        }
    }

    func testEncodingEqualsTokenizersInBothModes() throws {
        for folder in Self.folders {
            let tok = try Tokenizer.load(path: tokenizerFixtures + "/" + folder)
            let cases = try cases(folder)
            XCTAssertGreaterThan(cases.count, 500)
            var failures = 0
            for c in cases {
                let ids = tok.encode(c.text, allowSpecial: c.special)
                if ids != c.ids {
                    failures += 1
                    if failures <= 5 { XCTFail("\(folder) \(c.text.debugDescription.prefix(100)) special=\(c.special): \(ids.prefix(24)) vs \(c.ids.prefix(24))") }
                }
                XCTAssertEqual(try tok.decodeText(c.ids), c.decoded, "\(folder) \(c.text.debugDescription.prefix(60))")
            }
            XCTAssertEqual(failures, 0, folder)
        }
    }

    /// The specials are special although model.vocab lists them; the non-special added tokens
    /// are not, and are matched in both modes (the cases above check that they are).
    func testSpecialFlagsAndIds() throws {
        let mini = try Tokenizer.load(path: tokenizerFixtures + "/o200k-vocab-specials")
        XCTAssertEqual(mini.pattern, .o200k)
        XCTAssertEqual(mini.chatFormat, .phi4Mini)
        XCTAssertEqual(mini.specialTokenID("<|endoftext|>"), 512)
        XCTAssertEqual(mini.specialTokenID("<|end|>"), 533)
        XCTAssertEqual(mini.bosTokenID, 512)
        XCTAssertEqual(mini.eosTokenID, 533)
        XCTAssertTrue(mini.isSpecial(512) && mini.isSpecial(541))
        XCTAssertFalse(mini.isValid(513), "ids between the gapped specials have no token")
        let and = try XCTUnwrap(mini.specialTokenID("and"))
        XCTAssertFalse(mini.isSpecial(and))
        XCTAssertEqual(mini.addedToken(and)?.isSpecial, false)
        XCTAssertEqual(mini.addedToken(try XCTUnwrap(mini.specialTokenID("<|note|>")))?.rstrip, true)
        XCTAssertTrue(mini.endOfGenerationIDs.isSuperset(of: [512, 533]))

        let phi4 = try Tokenizer.load(path: tokenizerFixtures + "/cl100k-vocab-specials")
        XCTAssertEqual(phi4.chatFormat, .phi4)
        XCTAssertEqual(phi4.specialTokenID("<|im_end|>"), 521)
        XCTAssertEqual(phi4.eosTokenID, 521)
        XCTAssertEqual(phi4.padTokenID, 512 + 93)
        XCTAssertEqual(phi4.addedToken(try XCTUnwrap(phi4.specialTokenID("<|note|>")))?.lstrip, true)
    }

    /// Chat prompts equal transformers' `apply_chat_template` (whose content may hold added tokens:
    /// the non-special ones are matched there as everywhere).
    func testChatTemplateEqualsTransformers() throws {
        for folder in Self.folders {
            let tok = try Tokenizer.load(path: tokenizerFixtures + "/" + folder)
            let chats = try JSONParser.parse(FileIO.readAll(tokenizerFixtures + "/" + folder + "/chats.json", limit: 1 << 20))
            for chat in chats.arrayValue! {
                let messages = chat["messages"]!.arrayValue!.map {
                    ChatMessage(role: $0["role"]!.stringValue!, content: $0["content"]!.stringValue!)
                }
                XCTAssertEqual(try tok.applyChatTemplate(messages), chat["ids"]!.arrayValue!.map { TokenID($0.intValue!) }, folder)
            }
        }
    }

    /// A GGUF written from such a checkpoint keeps the added tokens' kinds (control for special,
    /// user-defined for the others, as llama.cpp's converter writes them) and encodes the same.
    /// GGUF has no field for `lstrip` / `rstrip`, so texts with the rstrip token are left out.
    func testGGUFKeepsAddedTokenKinds() throws {
        let path = FileManager.default.temporaryDirectory.path + "/vocab-specials-\(getpid()).gguf"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try GGUFExport.write(hfDirectory: modelFixtures + "/mini-vocab-specials", type: .q8_0, output: path)
        let file = try GGUFFile(path: path)
        let types = try XCTUnwrap(file.metadata["tokenizer.ggml.token_type"]?.arrayValue)
        XCTAssertEqual(types[512].intValue, 3)
        XCTAssertEqual(types[427].intValue, 4, "the non-special duplicate is user-defined")
        let tok = try Model.load(path: path).tokenizer
        for c in try cases("o200k-vocab-specials") where !c.text.contains("<|note|>") {
            XCTAssertEqual(tok.encode(c.text, allowSpecial: c.special), c.ids, c.text.debugDescription)
        }
    }

    /// A Phi-4-mini checkpoint shipping such a folder loads, and its chat prompt and greedy
    /// continuation equal transformers'.
    func testCheckpointGreedyOutputEqualsTransformers() throws {
        let dir = modelFixtures + "/mini-vocab-specials"
        let ref = try JSONParser.parse(FileIO.readAll(dir + "/reference.json", limit: 1 << 20))
        let model = try Model.load(path: dir)
        let messages = ref["messages"]!.arrayValue!.map {
            ChatMessage(role: $0["role"]!.stringValue!, content: $0["content"]!.stringValue!)
        }
        let prompt = try model.tokenizer.applyChatTemplate(messages)
        XCTAssertEqual(prompt, ref["prompt_ids"]!.arrayValue!.map { TokenID($0.intValue!) })
        let session = try Session(model: model, contextLength: 256)
        var logits = try session.evaluate(prompt)
        var out: [TokenID] = []
        let expected = ref["greedy"]!.arrayValue!.map { TokenID($0.intValue!) }
        var sampler = Sampler(.greedy)
        sampler.excluded = model.unassignedIDs  // suppressed in the reference too
        XCTAssertEqual(model.unassignedIDs.count, 608 - 512 - 13)  // 12 specials and <|note|>
        for _ in 0..<expected.count {
            let next = sampler.sample(&logits, history: out[...])
            out.append(next)
            if model.tokenizer.endOfGenerationIDs.contains(next) { break }
            logits = try session.evaluate([next])
        }
        XCTAssertEqual(out, expected)
    }
}
