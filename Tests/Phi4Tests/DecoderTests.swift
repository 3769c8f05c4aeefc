import XCTest
@testable import Phi4

let modelFixtures = fixturesDirectory + "/models"
let fixtureModelNames = ["gqa4", "gqa8", "mha"]

/// One reference prompt of a fixture model: ids, transformers' greedy continuation, logits.
struct ReferencePrompt {
    let name: String
    let ids: [TokenID]
    let greedy: [TokenID]
    let logits: [Float]  // [ids.count, vocab]
}

func loadReference(_ model: String) throws -> [ReferencePrompt] {
    let dir = modelFixtures + "/" + model + "/reference"
    let json = try JSONParser.parse(try FileIO.readAll(dir + "/prompts.json"))
    return try json["prompts"]!.arrayValue!.enumerated().map { i, p in
        ReferencePrompt(name: p["name"]!.stringValue!,
                        ids: p["ids"]!.arrayValue!.map { TokenID($0.intValue!) },
                        greedy: p["greedy32"]!.arrayValue!.map { TokenID($0.intValue!) },
                        logits: try NPY.read(path: dir + "/logits_\(i).npy").values)
    }
}

/// The largest |a − b| and the largest |b|.
func maxDifference(_ a: [Float], _ b: [Float]) -> (Float, Float) {
    precondition(a.count == b.count)
    var diff: Float = 0, scale: Float = 0
    for i in 0..<a.count {
        diff = max(diff, abs(a[i] - b[i]))
        scale = max(scale, abs(b[i]))
    }
    return (diff, scale)
}

final class DecoderTests: XCTestCase {
    static let models: [String: Model] = {
        var out: [String: Model] = [:]
        for name in fixtureModelNames { out[name] = try! Model.load(path: modelFixtures + "/" + name) }
        return out
    }()

    func argmax(_ v: ArraySlice<Float>) -> TokenID { Sampler.argmax(Array(v)) }

    /// Logits match transformers (f32 vs f32) at every position of every prompt, within
    /// 1e-4 × max |logit|: both sides compute in f32 but sum in different orders (BLAS blocking,
    /// online softmax), which moves results by a few ulps per operation; 1e-4 relative leaves
    /// room for that across layers and still catches any real error (a wrong RoPE pairing,
    /// mask or gate/up split moves logits by whole units).
    func testLogitsMatchTransformers() throws {
        for name in fixtureModelNames {
            let model = Self.models[name]!
            for p in try loadReference(name) {
                let session = try Session(model: model, contextLength: 512)
                let logits = try session.evaluate(p.ids, allLogits: true)
                let (diff, scale) = maxDifference(logits, p.logits)
                XCTAssertLessThanOrEqual(diff, 1e-4 * scale, "\(name)/\(p.name): max diff \(diff), max |logit| \(scale)")
            }
        }
    }

    /// Greedy continuations are the same 32 tokens transformers produced.
    func testGreedyContinuationsMatchTransformers() throws {
        for name in fixtureModelNames {
            let model = Self.models[name]!
            for p in try loadReference(name) {
                let session = try Session(model: model, contextLength: 512)
                var logits = try session.evaluate(p.ids)
                var out: [TokenID] = []
                for _ in 0..<32 {
                    let next = argmax(logits[...])
                    out.append(next)
                    logits = try session.evaluate([next])
                }
                XCTAssertEqual(out, p.greedy, "\(name)/\(p.name)")
            }
        }
    }

    /// The generation loop, greedy, gives the same tokens up to its first end-of-generation id.
    func testGenerateGreedyMatchesTransformers() throws {
        let model = Self.models["gqa8"]!
        for p in try loadReference("gqa8") {
            let session = try Session(model: model, contextLength: 512)
            var options = GenerationOptions()
            options.maxTokens = 32
            options.sampling = .greedy
            let result = try session.generate(p.ids, options: options)
            let cut = p.greedy.firstIndex { model.endOfGenerationIDs.contains($0) } ?? 32
            XCTAssertEqual(result.tokens, Array(p.greedy[..<cut]))
            XCTAssertEqual(result.stopReason, cut < 32 ? .endOfSequence : .maxTokens)
            XCTAssertEqual(result.text, try model.tokenizer.decodeText(result.tokens))
        }
    }

    /// Decoding one token at a time on the cache equals evaluating the whole sequence at once,
    /// and small prefill chunks equal one big chunk (both f32 on the same engine: tight bound).
    func testIncrementalAndChunkedEqualFullRecompute() throws {
        for name in fixtureModelNames {
            let model = Self.models[name]!
            let p = try loadReference(name).last!  // the long prompt
            let full = try Session(model: model, contextLength: 512).evaluate(p.ids, allLogits: true)
            let vocab = model.config.vocabSize

            let incremental = try Session(model: model, contextLength: 512)
            var rows: [Float] = []
            for id in p.ids.prefix(40) { rows += try incremental.evaluate([id]) }
            let (d1, s1) = maxDifference(rows, Array(full[0..<(40 * vocab)]))
            XCTAssertLessThanOrEqual(d1, 1e-5 * s1, "\(name): incremental decode")

            let chunked = try Session(model: model, contextLength: 512, batchSize: 7)
            let c = try chunked.evaluate(p.ids, allLogits: true)
            let (d2, s2) = maxDifference(c, full)
            XCTAssertLessThanOrEqual(d2, 1e-5 * s2, "\(name): 7-token chunks")
        }
    }

    /// A forward call stopped after its first layer throws `cancelled` and leaves the cache's
    /// length as it was; the same chunk evaluated again gives exactly the uninterrupted logits
    /// (the stopped call's partial cache entries are overwritten, never read).
    func testForwardStoppedMidwayLeavesTheCacheConsistent() throws {
        let model = Self.models["gqa8"]!
        let p = try loadReference("gqa8").last!
        let half = p.ids.count / 2
        let reference = try Session(model: model, contextLength: 512)
        _ = try reference.evaluate(Array(p.ids[..<half]))
        let want = try reference.evaluate(Array(p.ids[half...]))

        let session = try Session(model: model, contextLength: 512)
        _ = try session.evaluate(Array(p.ids[..<half]))
        var asked = 0
        XCTAssertThrowsError(try session.decoder.forward(Array(p.ids[half...]), cache: session.cache, logits: .last,
                                                         shouldStop: { asked += 1; return true })) { error in
            XCTAssertEqual(error as? ModelError, .cancelled)
        }
        XCTAssertEqual(asked, 1)
        XCTAssertEqual(session.cache.count, half)
        let got = try session.evaluate(Array(p.ids[half...]))
        XCTAssertEqual(got, want)
    }

    /// One and two threads give the same logits.
    func testThreadCountsAgree() throws {
        let model = Self.models["gqa4"]!
        let p = try loadReference("gqa4").last!
        let one = try Session(model: model, contextLength: 512, threads: 1).evaluate(p.ids, allLogits: true)
        let two = try Session(model: model, contextLength: 512, threads: 2).evaluate(p.ids, allLogits: true)
        let (d, s) = maxDifference(one, two)
        XCTAssertLessThanOrEqual(d, 1e-6 * s)
    }

    func testTruncateAndResetReuseTheCache() throws {
        let model = Self.models["mha"]!
        let p = try loadReference("mha")[1]
        let session = try Session(model: model, contextLength: 128)
        let first = try session.evaluate(p.ids)
        _ = try session.evaluate([5, 6, 7])
        session.truncate(to: p.ids.count - 1)
        let again = try session.evaluate([p.ids.last!])
        let (d, scale) = maxDifference(again, first)
        XCTAssertLessThanOrEqual(d, 1e-5 * scale)
        session.reset()
        XCTAssertEqual(session.tokens.count, 0)
        let fresh = try session.evaluate(p.ids)
        XCTAssertEqual(fresh, first)
    }

    func testBadRequestsAreErrorsAndLeaveTheContextUsable() throws {
        let model = Self.models["gqa4"]!
        let session = try Session(model: model, contextLength: 16)
        XCTAssertThrowsError(try session.evaluate([]))
        XCTAssertThrowsError(try session.evaluate([1, TokenID(model.config.vocabSize)]))
        XCTAssertThrowsError(try session.evaluate([-1]))
        XCTAssertThrowsError(try session.evaluate([TokenID](repeating: 1, count: 17)))
        XCTAssertEqual(session.tokens.count, 0)
        _ = try session.evaluate([1, 2, 3])
        XCTAssertThrowsError(try session.evaluate([TokenID](repeating: 1, count: 14)))
        XCTAssertEqual(session.tokens, [1, 2, 3])
        XCTAssertThrowsError(try Session(model: model, contextLength: 0))
        XCTAssertThrowsError(try Session(model: model, contextLength: 1_000_000))
        XCTAssertThrowsError(try Session(model: model, threads: 0))
    }

    func testConfigSpellingsAndGenerationConfig() throws {
        // gqa8 uses Phi-4's published spelling (rope_theta, torch_dtype), the others the newer one.
        for name in fixtureModelNames {
            let c = Self.models[name]!.config
            XCTAssertEqual(c.ropeTheta, 250000)
            XCTAssertEqual(c.vocabSize, 608)
            XCTAssertEqual(Self.models[name]!.endOfGenerationIDs, [521, 513])
        }
        XCTAssertEqual(Self.models["gqa8"]!.config.storedDType, "float32")
        XCTAssertEqual(Self.models["mha"]!.config.storedDType, "bfloat16")
        XCTAssertEqual(Self.models["gqa4"]!.config.intermediateSize, 176)
        XCTAssertEqual(ModelConfig.phi4.parameterCount, 14_659_507_200)
    }

    func testMemoryEstimateRefusesFullPhi4InF32() throws {
        let estimate = MemoryEstimate(config: .phi4, weights: .f32, contextLength: 4096)
        XCTAssertEqual(Double(estimate.weightBytes) / 1e9, 58.6, accuracy: 0.1)
        guard let available = MemoryEstimate.availableBytes() else { throw XCTSkip("no memory information") }
        if available < estimate.total {
            XCTAssertThrowsError(try estimate.check()) { e in
                guard case .insufficientMemory(let m)? = e as? ModelError else { return XCTFail("\(e)") }
                XCTAssertTrue(m.contains("needs about 6"), m)
                XCTAssertTrue(m.contains("q4_0"), m)
            }
        }
    }
}

final class KVCacheTypeTests: XCTestCase {
    /// An f16 cache (half the memory) stays close to the f32 cache: keys and values are rounded
    /// to 11 significant bits (relative error ≤ 2⁻¹¹), which moves the logits by a small fraction
    /// of their range. Bounds: max |Δ| ≤ 5e-3 × max |logit| and mean KL ≤ 1e-5.
    func testHalfCacheStaysCloseToF32() throws {
        for name in fixtureModelNames {
            let model = DecoderTests.models[name]!
            let p = try loadReference(name).last!
            let a = try Session(model: model, contextLength: 512, cacheType: .f32).evaluate(p.ids, allLogits: true)
            let half = try Session(model: model, contextLength: 512, batchSize: 64, cacheType: .f16)
            XCTAssertEqual(half.cache.type, .f16)
            XCTAssertEqual(half.cache.byteCount * 2, try Session(model: model, contextLength: 512, cacheType: .f32).cache.byteCount)
            let b = try half.evaluate(p.ids, allLogits: true)
            let (d, s) = maxDifference(b, a)
            let vocab = model.config.vocabSize
            var kl = 0.0
            for i in 0..<p.ids.count {
                let ra = Array(a[(i * vocab)..<((i + 1) * vocab)])
                let rb = Array(b[(i * vocab)..<((i + 1) * vocab)])
                kl += klDivergenceOfLogits(ra, rb)
            }
            kl /= Double(p.ids.count)
            print("\(name): f16 cache max |Δ| \(d) (max |logit| \(s)), mean KL \(kl)")
            XCTAssertLessThanOrEqual(d, 5e-3 * s)
            XCTAssertLessThanOrEqual(kl, 1e-5)
        }
    }

    func testQuantizedModelsDefaultToHalfCache() throws {
        var options = ModelLoadOptions()
        options.weightType = .q8_0
        let m = try Model.load(path: modelFixtures + "/gqa8", options: options)
        XCTAssertEqual(try Session(model: m, contextLength: 64).cache.type, .f16)
        XCTAssertEqual(try Session(model: DecoderTests.models["gqa8"]!, contextLength: 64).cache.type, .f32)
    }
}
