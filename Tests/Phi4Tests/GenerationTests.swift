import XCTest
@testable import Phi4

final class GenerationTests: XCTestCase {
    static let model = try! Model.load(path: modelFixtures + "/gqa4")

    func prompt() throws -> [TokenID] { try loadReference("gqa4")[1].ids }

    func greedyText(_ n: Int) throws -> String {
        let session = try Session(model: Self.model, contextLength: 256)
        var o = GenerationOptions()
        o.sampling = .greedy
        o.maxTokens = n
        return try session.generate(try prompt(), options: o).text
    }

    func testStopStringEndsGenerationAndIsNotEmitted() throws {
        let full = try greedyText(32)
        let chars = Array(full)
        XCTAssertGreaterThan(chars.count, 12)
        let stop = String(chars[8..<11])
        let expected = String(full[..<full.firstRange(of: stop)!.lowerBound])
        let session = try Session(model: Self.model, contextLength: 256)
        var o = GenerationOptions()
        o.sampling = .greedy
        o.maxTokens = 32
        o.stopStrings = ["zzzz-never", stop]
        var streamed = ""
        let r = try session.generate(try prompt(), options: o) { text, _ in
            streamed += text
            return true
        }
        XCTAssertEqual(r.stopReason, .stopString)
        XCTAssertEqual(r.text, expected)
        XCTAssertEqual(streamed, expected)
    }

    func testStreamedPiecesAreWholeCharactersAndConcatenateToTheText() throws {
        let session = try Session(model: Self.model, contextLength: 256)
        var o = GenerationOptions()
        o.sampling.seed = 9
        o.sampling.temperature = 1.5
        o.maxTokens = 60
        var pieces: [String] = []
        let r = try session.generate(try prompt(), options: o) { text, _ in
            pieces.append(text)
            return true
        }
        XCTAssertEqual(pieces.joined(), r.text)
        XCTAssertEqual(r.text, try Self.model.tokenizer.decodeText(r.tokens))
    }

    func testSameSeedSameTextDifferentSeedDifferentText() throws {
        func run(_ seed: UInt64) throws -> [TokenID] {
            let session = try Session(model: Self.model, contextLength: 256)
            var o = GenerationOptions()
            o.sampling.seed = seed
            o.sampling.temperature = 1.0
            o.maxTokens = 24
            return try session.generate(try prompt(), options: o).tokens
        }
        XCTAssertEqual(try run(5), try run(5))
        XCTAssertNotEqual(try run(5), try run(6))
    }

    func testMaxTokensAndContextLimit() throws {
        var o = GenerationOptions()
        o.sampling = .greedy
        o.maxTokens = 5
        let p = try prompt()
        var r = try Session(model: Self.model, contextLength: 256).generate(p, options: o)
        XCTAssertEqual(r.tokens.count, 5)
        XCTAssertEqual(r.stopReason, .maxTokens)
        // Room for the prompt and 3 more positions: 4 tokens come out (the last is never evaluated).
        o.maxTokens = 100
        let session = try Session(model: Self.model, contextLength: p.count + 3)
        r = try session.generate(p, options: o)
        XCTAssertEqual(r.stopReason, .contextFull)
        XCTAssertEqual(r.tokens.count, 4)
        XCTAssertEqual(session.tokens.count, p.count + 3)
        // A prompt that does not fit is an error, and the context is untouched.
        XCTAssertThrowsError(try session.generate([1, 2, 3], options: o))
        XCTAssertEqual(session.tokens.count, p.count + 3)
        session.reset()
        XCTAssertEqual(try session.generate(p, options: { var x = o; x.maxTokens = 2; return x }()).tokens.count, 2)
    }

    func testCallbackAndCancelStopGeneration() throws {
        var o = GenerationOptions()
        o.sampling = .greedy
        o.maxTokens = 30
        let session = try Session(model: Self.model, contextLength: 256)
        var calls = 0
        let r = try session.generate(try prompt(), options: o) { _, _ in
            calls += 1
            return calls < 3
        }
        XCTAssertEqual(r.stopReason, .cancelled)
        XCTAssertEqual(calls, 3)
        // cancel() from the callback's thread takes effect before the next token.
        session.reset()
        var n = 0
        let r2 = try session.generate(try prompt(), options: o) { _, _ in
            n += 1
            if n == 2 { session.cancel() }
            return true
        }
        XCTAssertEqual(r2.stopReason, .cancelled)
        XCTAssertLessThanOrEqual(r2.tokens.count, 3)
        // The session stays usable.
        session.reset()
        XCTAssertEqual(try session.generate(try prompt(), options: o).stopReason, .maxTokens)
    }

    func testStopStringMatcherHoldsBackPossiblePrefixes() {
        var m = StopStringMatcher(["</end>"])
        XCTAssertEqual(m.push("hello <").0, "hello ")
        XCTAssertEqual(m.push("/e").0, "")
        XCTAssertEqual(m.push("x").0, "</ex")
        let r = m.push("ab</en")
        XCTAssertEqual(r.0, "ab")
        let done = m.push("d> tail")
        XCTAssertEqual(done.0, "")
        XCTAssertTrue(done.1)
        var m2 = StopStringMatcher(["ab"])
        XCTAssertEqual(m2.push("xa").0, "x")
        XCTAssertEqual(m2.flush(), "a")
    }
}
