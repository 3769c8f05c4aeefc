import XCTest
@testable import Phi4

final class SamplerTests: XCTestCase {
    let logits: [Float] = [1.0, 3.0, 2.0, -1.0, 2.5, 0.0]

    func softmax(_ v: [Float], temperature: Float = 1) -> [Double] {
        let m = v.max()!
        let e = v.map { exp(Double(($0 - m) / temperature)) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    func draw(_ p: SamplingParameters, _ n: Int, history: [TokenID] = []) -> [Int] {
        var sampler = Sampler(p)
        var counts = [Int](repeating: 0, count: logits.count)
        for _ in 0..<n {
            var l = logits
            counts[Int(sampler.sample(&l, history: history[...]))] += 1
        }
        return counts
    }

    func testGreedyAndTopKOne() {
        var l = logits
        var greedy = Sampler(.greedy)
        XCTAssertEqual(greedy.sample(&l, history: []), 1)
        var p = SamplingParameters()
        p.topK = 1
        p.seed = 3
        XCTAssertEqual(draw(p, 200)[1], 200)
    }

    /// With no filter, draws follow softmax(logits / T): each frequency within 4.5 standard errors.
    func testDrawsFollowTheDistribution() {
        for t: Float in [1.0, 0.5] {
            var p = SamplingParameters()
            p.temperature = t
            p.topK = 0
            p.topP = 1
            p.minP = 0
            p.seed = 42
            let n = 40_000
            let counts = draw(p, n)
            for (i, q) in softmax(logits, temperature: t).enumerated() {
                let se = (q * (1 - q) / Double(n)).squareRoot()
                XCTAssertEqual(Double(counts[i]) / Double(n), q, accuracy: 4.5 * se + 1e-9, "token \(i) at T=\(t)")
            }
        }
    }

    func testTopKTopPMinPRestrictTheSupport() {
        var p = SamplingParameters()
        p.temperature = 1
        p.seed = 7
        p.topP = 1
        p.minP = 0
        p.topK = 2
        var c = draw(p, 2000)
        XCTAssertEqual(c[1] + c[4], 2000)  // the two largest logits: 3.0 and 2.5
        p.topK = 0
        p.topP = 0.5  // softmax: 3.0 → 0.43, 2.5 → 0.26: the nucleus is {1, 4}
        c = draw(p, 2000)
        XCTAssertEqual(c[1] + c[4], 2000)
        XCTAssertGreaterThan(c[4], 0)
        p.topP = 1
        p.minP = 0.5  // keep p ≥ 0.5 × p(1): exp(-0.5) = 0.61 → {1, 4}; exp(-1) = 0.37 → 2 is dropped
        c = draw(p, 2000)
        XCTAssertEqual(c[1] + c[4], 2000)
    }

    func testSameSeedSameDraws() {
        var p = SamplingParameters()
        p.seed = 1234
        p.topK = 0
        p.topP = 1
        p.minP = 0
        var a = Sampler(p), b = Sampler(p)
        for _ in 0..<100 {
            var x = logits, y = logits
            XCTAssertEqual(a.sample(&x, history: []), b.sample(&y, history: []))
        }
    }

    func testPenaltiesAndBias() {
        var p = SamplingParameters.greedy
        p.logitBias = [1: -.infinity]
        var l = logits
        var s = Sampler(p)
        XCTAssertEqual(s.sample(&l, history: []), 4)  // 1 is banned; 2.5 is next
        // Repetition penalty 2: token 1 (3.0 → 1.5) and token 4 (2.5 → 1.25) seen; token 2 (2.0) wins.
        p = .greedy
        p.repetitionPenalty = 2
        l = logits
        s = Sampler(p)
        XCTAssertEqual(s.sample(&l, history: [1, 4]), 2)
        XCTAssertEqual(l[1], 1.5)
        XCTAssertEqual(l[3], -1.0)
        // Frequency 0.4 × 3 occurrences + presence 0.5: 3.0 − 1.7 = 1.3.
        p = .greedy
        p.frequencyPenalty = 0.4
        p.presencePenalty = 0.5
        l = logits
        s = Sampler(p)
        _ = s.sample(&l, history: [1, 1, 1])
        XCTAssertEqual(l[1], 1.3, accuracy: 1e-6)
        // The window: only the last 2 tokens count.
        p.penaltyWindow = 2
        l = logits
        s = Sampler(p)
        _ = s.sample(&l, history: [1, 1, 0, 0])
        XCTAssertEqual(l[1], 3.0)
    }

    func testInvalidParametersAreRejected() {
        var p = SamplingParameters()
        p.temperature = -1
        XCTAssertThrowsError(try p.validate())
        p = SamplingParameters()
        p.topP = 0
        XCTAssertThrowsError(try p.validate())
        p = SamplingParameters()
        p.repetitionPenalty = 0
        XCTAssertThrowsError(try p.validate())
        p = SamplingParameters()
        p.logitBias = [3: .nan]
        XCTAssertThrowsError(try p.validate())
    }
}

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

final class AsyncGenerationTests: XCTestCase {
    func testAsyncPiecesEqualTheCallbackText() async throws {
        let model = GenerationTests.model
        let prompt = try loadReference("gqa4")[1].ids
        var options = GenerationOptions()
        options.sampling = .greedy
        options.maxTokens = 24
        let expected = try Session(model: model, contextLength: 256).generate(prompt, options: options).text
        let session = try Session(model: model, contextLength: 256)
        var text = ""
        for try await piece in session.pieces(prompt, options: options) { text += piece }
        XCTAssertEqual(text, expected)
        // Breaking out early stops the generation and leaves the session usable.
        let s2 = try Session(model: model, contextLength: 256)
        options.maxTokens = 200
        var n = 0
        for try await _ in s2.pieces(prompt, options: options) {
            n += 1
            if n == 2 { break }
        }
        XCTAssertEqual(n, 2)
    }
}
