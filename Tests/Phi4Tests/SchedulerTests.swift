import XCTest
@testable import Phi4

/// The batch scheduler against the reference it must equal: each request run alone in a
/// ``Session`` (prompts in one chunk of up to 512 tokens, where the scheduler reads them in parts
/// between decode rows). With quantized weights every token is computed bit for bit alike in any
/// chunk, so tokens, text and log-probabilities must be identical, not close.
final class SchedulerTests: XCTestCase {
    static func load(_ weights: WeightType) -> Model {
        var o = ModelLoadOptions()
        o.weightType = weights
        return try! Model.load(path: modelFixtures + "/gqa8", options: o)
    }
    static let q4 = load(.q4_0)
    static let q8 = load(.q8_0)
    static let f32 = load(.f32)

    /// Prompts of several lengths (shorter and longer than a chunk), from the fixture's reference ids.
    func prompts(_ count: Int) throws -> [[TokenID]] {
        let base = try loadReference("gqa8")[1].ids
        let lengths = [3, 13, 1, 21, 9, 30, 5, 17]
        return (0..<count).map { i in
            let n = lengths[i % lengths.count]
            return (0..<n).map { j in base[(i * 7 + j) % base.count] }
        }
    }

    func alone(_ model: Model, _ prompt: [TokenID], _ o: GenerationOptions, chunk: Int = 512) throws -> GenerationResult {
        let session = try Session(model: model, contextLength: 128, batchSize: chunk)
        return try session.generate(prompt, options: o)
    }

    func scheduler(_ model: Model, slots: Int, chunk: Int) throws -> Scheduler {
        var so = SchedulerOptions()
        so.slots = slots
        so.contextLength = 128
        so.prefillChunk = chunk
        return try Scheduler(model: model, options: so)
    }

    func assertSame(_ a: GenerationResult, _ b: GenerationResult, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.tokens, b.tokens, what, file: file, line: line)
        XCTAssertEqual(a.text, b.text, what, file: file, line: line)
        XCTAssertEqual(a.stopReason, b.stopReason, what, file: file, line: line)
        XCTAssertEqual(a.logprobs.map(\.logprob), b.logprobs.map(\.logprob), what, file: file, line: line)
        XCTAssertEqual(a.logprobs.map { $0.top.map(\.token) }, b.logprobs.map { $0.top.map(\.token) }, what, file: file, line: line)
    }

    func testGreedyBatchEqualsEachRequestAloneForQuantizedWeights() throws {
        var o = GenerationOptions()
        o.sampling = .greedy
        o.maxTokens = 20
        o.topLogprobs = 2
        for (name, model) in [("q4_0", Self.q4), ("q8_0", Self.q8)] {
            // 6 requests, 3 slots: half of them wait and join while the others decode.
            let ps = try prompts(6)
            let got = try scheduler(model, slots: 3, chunk: 8).generateAll(ps, options: o)
            for (i, p) in ps.enumerated() {
                assertSame(got[i], try alone(model, p, o), "\(name) request \(i)")
                XCTAssertEqual(got[i].promptTokenCount, p.count)
            }
        }
    }

    func testSeededSamplingIsReproducibleWhateverRunsBesideIt() throws {
        let ps = try prompts(4)
        func options(_ i: Int) -> GenerationOptions {
            var o = GenerationOptions()
            o.sampling.temperature = 1.2
            o.sampling.topP = 0.95
            o.sampling.seed = UInt64(100 + i)
            o.maxTokens = 16
            o.stopStrings = ["qq"]
            return o
        }
        let s = try scheduler(Self.q4, slots: 4, chunk: 8)
        let ids = try ps.enumerated().map { i, p in try s.submit(p, options: options(i)) }
        var results: [Int: GenerationResult] = [:]
        var streamed: [Int: String] = [:]
        while results.count < ids.count {
            for u in try s.step() {
                streamed[u.request, default: ""] += u.text
                if let r = u.result { results[u.request] = r }
            }
        }
        for (i, p) in ps.enumerated() {
            let r = results[ids[i]]!
            assertSame(r, try alone(Self.q4, p, options(i)), "request \(i)")
            XCTAssertEqual(streamed[ids[i]], r.text, "the updates' text concatenates to the result's")
        }
    }

    func testFloatWeightsWithinEightRowsAreExactAndAboveWithinTolerance() throws {
        var o = GenerationOptions()
        o.sampling = .greedy
        o.maxTokens = 12
        o.topLogprobs = 0
        let ps = try prompts(4)
        // 2 slots and chunks of 4: at most 6 rows a pass, one matrix-vector product per row.
        let small = try scheduler(Self.f32, slots: 2, chunk: 4).generateAll(ps, options: o)
        for (i, p) in ps.enumerated() { assertSame(small[i], try alone(Self.f32, p, o, chunk: 4), "f32 request \(i)") }
        // 4 slots and chunks of 8: up to 12 rows go through OpenBLAS's sgemm, whose rounding may
        // differ from one row at a time; the log-probabilities agree within 1e-4 (f32 sums of
        // a few hundred products).
        let big = try scheduler(Self.f32, slots: 4, chunk: 8).generateAll(ps, options: o)
        for (i, p) in ps.enumerated() {
            let ref = try alone(Self.f32, p, o, chunk: 8)
            XCTAssertEqual(big[i].tokens, ref.tokens, "f32 request \(i)")
            for (a, b) in zip(big[i].logprobs, ref.logprobs) { XCTAssertEqual(a.logprob, b.logprob, accuracy: 1e-4) }
        }
    }

    func testCancelEndsOneRequestAndTheOthersGoOn() throws {
        var o = GenerationOptions()
        o.sampling = .greedy
        o.maxTokens = 16
        let ps = try prompts(3)
        let s = try scheduler(Self.q8, slots: 2, chunk: 8)
        let ids = try ps.map { try s.submit($0, options: o) }
        var results: [Int: GenerationResult] = [:]
        var steps = 0
        while results.count < ids.count {
            if steps == 4 {
                s.cancel(ids[0])  // decoding in a slot
                s.cancel(ids[2])  // still waiting for a slot
            }
            for u in try s.step() { if let r = u.result { results[u.request] = r } }
            steps += 1
        }
        XCTAssertEqual(results[ids[0]]!.stopReason, .cancelled)
        XCTAssertEqual(results[ids[2]]!.stopReason, .cancelled)
        XCTAssertEqual(results[ids[2]]!.tokens, [])
        assertSame(results[ids[1]]!, try alone(Self.q8, ps[1], o), "the request not cancelled")
        XCTAssertFalse(s.hasWork)
        XCTAssertEqual(s.activeCount, 0)
        XCTAssertEqual(s.queuedCount, 0)
    }

    func testANextTurnEvaluatesOnlyWhatIsNew() throws {
        var o = GenerationOptions()
        o.sampling = .greedy
        o.maxTokens = 6
        let first = try prompts(4)[3]  // 21 tokens
        let s = try scheduler(Self.q8, slots: 2, chunk: 8)
        let a = try s.generateAll([first], options: o)[0]
        let turn = first + a.tokens + [5, 6, 7]
        let b = try s.generateAll([turn], options: o)[0]
        // The slot holds the first prompt and all but the last generated token (never evaluated).
        XCTAssertEqual(b.promptTokenCount, turn.count - (first.count + a.tokens.count - 1))
        // Reusing the cached prefix changes nothing: the same as the whole turn in a fresh session.
        assertSame(b, { var x = try! alone(Self.q8, turn, o); x.promptTokenCount = b.promptTokenCount; return x }(), "next turn")
    }

    func testRefusesBadRequestsAndAFullQueue() throws {
        var so = SchedulerOptions()
        so.slots = 1
        so.maxQueue = 1
        so.contextLength = 32
        let s = try Scheduler(model: Self.q8, options: so)
        XCTAssertThrowsError(try s.submit([])) { XCTAssertEqual(($0 as? ModelError).map { "\($0)" }?.hasPrefix("invalid request"), true) }
        XCTAssertThrowsError(try s.submit([1, 100_000]))
        XCTAssertThrowsError(try s.submit(Array(repeating: 1, count: 33))) {
            guard case .contextFull = $0 as? ModelError else { return XCTFail("\($0)") }
        }
        var bad = GenerationOptions()
        bad.maxTokens = -1
        XCTAssertThrowsError(try s.submit([1], options: bad))
        _ = try s.submit([1, 2])  // takes the slot at the next step
        _ = try s.submit([1, 2])  // waits
        XCTAssertThrowsError(try s.submit([1, 2])) {
            guard case .busy = $0 as? ModelError else { return XCTFail("\($0)") }
        }
        var zero = GenerationOptions()
        zero.maxTokens = 0
        let s2 = try Scheduler(model: Self.q8, options: so)
        let r = try s2.generateAll([[1, 2, 3]], options: zero)[0]
        XCTAssertEqual(r.tokens, [])
        XCTAssertEqual(r.stopReason, .maxTokens)
        XCTAssertThrowsError(try Scheduler(model: Self.q8, options: { var x = so; x.slots = 0; return x }()))
        for slowdown in [0.5, -1, .nan, .infinity] {
            XCTAssertThrowsError(try Scheduler(model: Self.q8, options: { var x = so; x.maxStepSlowdown = slowdown; return x }()))
        }
        XCTAssertNoThrow(try Scheduler(model: Self.q8, options: { var x = so; x.maxStepSlowdown = 0; return x }()))
    }

    func testSegmentsOfOnePassAreCheckedBeforeAnythingChanges() throws {
        let d = Decoder(model: Self.q8, batchSize: 8)
        let c1 = KVCache(config: Self.q8.config, capacity: 16, type: .f32)
        let c2 = KVCache(config: Self.q8.config, capacity: 4, type: .f32)
        XCTAssertThrowsError(try d.forward([.init(tokens: [1], cache: c1, logits: .last), .init(tokens: [2], cache: c1, logits: .last)]))
        XCTAssertThrowsError(try d.forward([.init(tokens: [1], cache: c1, logits: .last), .init(tokens: [1, 2, 3, 4, 5], cache: c2, logits: .last)]))
        XCTAssertThrowsError(try d.forward([.init(tokens: [1, 2, 3, 4, 5], cache: c1, logits: .last), .init(tokens: [1, 2, 3, 4], cache: c2, logits: .last)]))
        XCTAssertEqual(c1.count, 0)
        XCTAssertEqual(c2.count, 0)
        let out = try d.forward([.init(tokens: [1, 2], cache: c1, logits: .all), .init(tokens: [3], cache: c2, logits: .none)])
        XCTAssertEqual(out.count, 2 * Self.q8.config.vocabSize)
        XCTAssertEqual(c1.count, 2)
        XCTAssertEqual(c2.count, 1)
    }
}
