import XCTest
@testable import Phi4

/// Malformed tokenizer files give specific errors, never a trap.
final class TokenizerFileTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = "/tmp/phi4-tokfile-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(mkdir(dir, 0o755), 0)
    }

    override func tearDownWithError() throws {
        _ = unlink(dir + "/tokenizer.json")
        _ = unlink(dir + "/tokenizer_config.json")
        _ = unlink(dir + "/x.tiktoken")
        _ = rmdir(dir)
    }

    func write(_ name: String, _ text: String) {
        let path = dir + "/" + name
        let f = fopen(path, "wb")!
        _ = text.utf8CString.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count - 1, f) }
        fclose(f)
    }

    /// A minimal valid tokenizer.json: the 256 byte tokens, one merge, two specials.
    func validTokenizerJSON(pattern: String? = nil, extraVocab: String = "", modelType: String = "BPE") -> String {
        var entries: [String] = []
        for (b, c) in ByteLevelAlphabet.scalarForByte.enumerated() {
            var key = ""
            JSONValue.writeString(String(UnicodeScalar(c)!), into: &key)
            entries.append("\(key):\(b)")
        }
        entries.append("\"ab\":256")
        let pat = pattern ?? #"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"#
        var patJSON = ""
        JSONValue.writeString(pat, into: &patJSON)
        return """
        {"added_tokens":[{"id":257,"content":"<|endoftext|>","special":true},{"id":258,"content":"<|im_end|>","special":true}],
         "pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":\(patJSON)}},{"type":"ByteLevel","use_regex":false}]},
         "model":{"type":"\(modelType)","vocab":{\(entries.joined(separator: ","))\(extraVocab)},"merges":["a b"]}}
        """
    }

    func loadError(_ path: String) -> TokenizerError? {
        do {
            _ = try Tokenizer.load(path: path)
            return nil
        } catch {
            return error
        }
    }

    func testValidMinimalFileLoads() throws {
        write("tokenizer.json", validTokenizerJSON())
        let tok = try Tokenizer.load(path: dir)
        XCTAssertEqual(tok.encode("ab"), [256])
        XCTAssertEqual(tok.encode("ab<|im_end|>", allowSpecial: true), [256, 258])
        XCTAssertEqual(tok.endOfGenerationIDs, [257, 258])
    }

    func testMissingFile() {
        guard case .io(let m)? = loadError(dir) else { return XCTFail() }
        XCTAssertTrue(m.contains("no tokenizer.json"))
        guard case .io? = loadError(dir + "/nope.json") else { return XCTFail() }
    }

    func testTruncatedAndNonJSON() {
        let full = validTokenizerJSON()
        write("tokenizer.json", String(full.prefix(full.count / 2)))
        guard case .malformedJSON(let m)? = loadError(dir) else { return XCTFail() }
        XCTAssertTrue(m.contains("invalid JSON at byte"), m)
        write("tokenizer.json", "\u{1}not json")
        guard case .malformedJSON? = loadError(dir) else { return XCTFail() }
        write("tokenizer.json", String(repeating: "[", count: 100_000))
        guard case .malformedJSON(let deep)? = loadError(dir) else { return XCTFail() }
        XCTAssertTrue(deep.contains("nesting"), deep)
        write("tokenizer.json", "")
        guard case .malformedJSON? = loadError(dir) else { return XCTFail() }
    }

    func testWrongStructure() {
        write("tokenizer.json", "{}")
        guard case .invalidFormat(let m)? = loadError(dir) else { return XCTFail() }
        XCTAssertTrue(m.contains("model"), m)
        write("tokenizer.json", validTokenizerJSON(modelType: "WordPiece"))
        guard case .unsupported? = loadError(dir) else { return XCTFail() }
        // A pattern that is neither cl100k's nor o200k's (here a cut o200k) is refused.
        write("tokenizer.json", validTokenizerJSON(pattern: #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*"#))
        guard case .unsupported(let u)? = loadError(dir) else { return XCTFail() }
        XCTAssertTrue(u.contains("neither cl100k"), u)
        // A vocabulary entry outside the byte-level alphabet.
        write("tokenizer.json", validTokenizerJSON(extraVocab: ",\"\u{4E2D}\":300"))
        guard case .invalidFormat(let v)? = loadError(dir) else { return XCTFail() }
        XCTAssertTrue(v.contains("byte-level alphabet"), v)
        // Two tokens with one id.
        write("tokenizer.json", validTokenizerJSON(extraVocab: ",\"bc\":256"))
        guard case .invalidFormat(let d)? = loadError(dir) else { return XCTFail() }
        XCTAssertTrue(d.contains("twice"), d)
        // A negative id.
        write("tokenizer.json", validTokenizerJSON(extraVocab: ",\"bc\":-3"))
        guard case .invalidFormat? = loadError(dir) else { return XCTFail() }
    }

    func testConfigNamingAnUnknownToken() {
        write("tokenizer.json", validTokenizerJSON())
        write("tokenizer_config.json", #"{"eos_token": "<|nope|>"}"#)
        guard case .invalidFormat(let m)? = loadError(dir) else { return XCTFail() }
        XCTAssertTrue(m.contains("<|nope|>"), m)
        write("tokenizer_config.json", #"{"eos_token": {"content": "<|im_end|>"}, "add_bos_token": false}"#)
        XCTAssertNil(loadError(dir))
    }

    func testBadTiktokenFiles() {
        let path = dir + "/x.tiktoken"
        write("x.tiktoken", "YQ== 0\n!!!! 1\n")
        guard case .invalidFormat(let m)? = loadError(path) else { return XCTFail() }
        XCTAssertTrue(m.contains(":2: invalid base64"), m)
        write("x.tiktoken", "YQ== zero\n")
        guard case .invalidFormat? = loadError(path) else { return XCTFail() }
        write("x.tiktoken", "YQ==\n")
        guard case .invalidFormat? = loadError(path) else { return XCTFail() }
        // Valid lines, but most single bytes are missing.
        write("x.tiktoken", "YQ== 0\nYg== 1\n")
        guard case .invalidFormat(let missing)? = loadError(path) else { return XCTFail() }
        XCTAssertTrue(missing.contains("single byte"), missing)
        write("x.tiktoken", "")
        guard case .invalidFormat? = loadError(path) else { return XCTFail() }
    }
}
