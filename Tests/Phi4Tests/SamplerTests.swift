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

    /// A top-k far above the vocabulary is the same as keeping every token (it once reserved
    /// top-k slots, so a client's top_k of 10^15 ended the process).
    func testHugeTopKKeepsEveryToken() {
        var p = SamplingParameters()
        p.seed = 3
        p.topK = 1 << 50
        var q = p
        q.topK = 0
        XCTAssertEqual(draw(p, 300), draw(q, 300))
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
