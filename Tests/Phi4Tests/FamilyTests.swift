import XCTest
@testable import Phi4

/// Phi-4-mini's decoder (partial rotary embeddings, LongRoPE, tied `lm_head`) against
/// transformers, on the `mini` fixture of tools/make_mini_fixtures.py: 4 heads of 16, RoPE over
/// the first 12 dimensions, short and long factors with `original_max_position_embeddings` 48,
/// so that prompts cross the threshold. f32 vs f32: the decoder tests' bound, 1e-4 × max |logit|.
final class FamilyTests: XCTestCase {
    static let mini = try! Model.load(path: modelFixtures + "/mini")
    static let dir = modelFixtures + "/mini/reference"

    func chunkedReference(_ i: Int) throws -> [Float] { try NPY.read(path: Self.dir + "/chunked_\(i).npy").values }

    func testBothConfigSpellingsReadTheSameModel() throws {
        let c = Self.mini.config
        XCTAssertEqual(c.rotaryDim, 12)
        XCTAssertEqual(c.headDim, 16)
        XCTAssertTrue(c.tieWordEmbeddings)
        let r = try XCTUnwrap(c.longRoPE)
        XCTAssertEqual(r.originalMaxPositions, 48)
        XCTAssertEqual(r.shortFactors.count, 6)
        XCTAssertEqual(r.longFactors.count, 6)
        // transformers: sqrt(1 + ln(max / original) / ln(original)) with max 512.
        XCTAssertEqual(Double(r.attentionFactor), (1 + log(512.0 / 48) / log(48.0)).squareRoot(), accuracy: 1e-6)
        let other = try ModelConfig.parse(try JSONParser.parse(try FileIO.readAll(modelFixtures + "/mini/config-rope_parameters.json")))
        XCTAssertEqual(other, c)
        // A rotary dimension the factors do not fit, and an unknown scaling, are refused.
        var bad = c
        bad.rotaryDim = 8
        XCTAssertThrowsError(try bad.validate())
        let yarn = try JSONParser.parse(#"{"architectures": ["Phi3ForCausalLM"], "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1, "rope_scaling": {"type": "yarn", "factor": 4}}"#)
        XCTAssertThrowsError(try ModelConfig.parse(yarn)) { XCTAssertTrue("\($0)".contains("yarn"), "\($0)") }
    }

    func testTiedOutputProjectionIsTheEmbedding() throws {
        XCTAssertTrue(Self.mini.weights.lmHead === Self.mini.weights.embedding)
        var o = ModelLoadOptions()
        o.weightType = .q8_0
        let q8 = try Model.load(path: modelFixtures + "/mini", options: o)
        XCTAssertTrue(q8.weights.lmHead === q8.weights.embedding, "one copy in memory")
    }

    /// A prompt in one call: the factors of its whole length (long for the prompts over 48
    /// tokens), however the engine chunks it.
    func testLogitsInOneCallMatchTransformers() throws {
        for p in try loadReference("mini") {
            for batch in [512, 7] {
                let session = try Session(model: Self.mini, contextLength: 512, batchSize: batch)
                let logits = try session.evaluate(p.ids, allLogits: true)
                let (diff, scale) = maxDifference(logits, p.logits)
                XCTAssertLessThanOrEqual(diff, 1e-4 * scale, "\(p.name), chunks of \(batch): max diff \(diff), max |logit| \(scale)")
            }
        }
    }

    /// The prompt fed as separate forward calls of 16 tokens, as transformers ran it with a KV
    /// cache: each call picks its factors by its own end, so the calls before the threshold use
    /// the short ones (and the logits differ from the one-call reference by whole units).
    func testSeparateCallsMatchTransformersCallByCall() throws {
        for (i, p) in try loadReference("mini").enumerated() {
            let decoder = Decoder(model: Self.mini, batchSize: 16)
            let cache = KVCache(config: Self.mini.config, capacity: 512)
            var logits: [Float] = []
            for s in stride(from: 0, to: p.ids.count, by: 16) {
                logits += try decoder.forward(Array(p.ids[s..<min(p.ids.count, s + 16)]), cache: cache, logits: .all)
            }
            let reference = try chunkedReference(i)
            let (diff, scale) = maxDifference(logits, reference)
            XCTAssertLessThanOrEqual(diff, 1e-4 * scale, "\(p.name): max diff \(diff)")
            if p.ids.count > 48 {
                XCTAssertGreaterThan(maxDifference(reference, p.logits).0, 0.5, "\(p.name): the rule matters here")
            }
        }
    }

    /// Greedy generation with a KV cache, as transformers' generate() does it: the "cross" prompt
    /// (40 tokens) crosses 48 while generating; cached keys keep their short-factor rotation.
    func testGreedyGenerationAcrossTheThresholdMatchesTransformers() throws {
        for p in try loadReference("mini") {
            let session = try Session(model: Self.mini, contextLength: 512)
            var logits = try session.evaluate(p.ids)
            var out: [TokenID] = []
            for _ in 0..<32 {
                let next = Sampler.argmax(logits)
                out.append(next)
                logits = try session.evaluate([next])
            }
            XCTAssertEqual(out, p.greedy, p.name)
        }
    }

    /// A context reused for the next prompt (prefix reuse) or cut back (truncate) after its
    /// cache switched to the long factors gives what a fresh context gives: transformers'
    /// greedy tokens for every prompt, whatever came before.
    func testReusedContextAfterTheSwitchEqualsAFreshOne() throws {
        let prompts = try loadReference("mini")
        let session = try Session(model: Self.mini, contextLength: 512)
        for p in prompts + prompts.reversed() {
            var logits = try session.evaluate(session.reusePrefix(of: p.ids))
            var out: [TokenID] = []
            for _ in 0..<32 {
                let next = Sampler.argmax(logits)
                out.append(next)
                logits = try session.evaluate([next])
            }
            XCTAssertEqual(out, p.greedy, p.name)
        }
        // Cut back below the threshold: the next token's logits equal a fresh evaluation's.
        let long = prompts.first { $0.ids.count > 48 }!
        _ = try session.evaluate(session.reusePrefix(of: long.ids))
        session.truncate(to: 20)
        let a = try session.evaluate([long.ids[20]])
        let b = try Session(model: Self.mini, contextLength: 512).evaluate(Array(long.ids[...20]))
        XCTAssertEqual(maxDifference(a, b).0, 0, accuracy: 1e-4)
    }

    /// The scheduler reads a prompt in parts beside other requests; with quantized weights it
    /// still equals a lone session token for token, on both sides of the threshold.
    func testSchedulerEqualsSessionWithLongRoPE() throws {
        var o = ModelLoadOptions()
        o.weightType = .q8_0
        let model = try Model.load(path: modelFixtures + "/mini", options: o)
        let prompts = try loadReference("mini").map(\.ids).filter { $0.count < 300 }
        var options = GenerationOptions()
        options.maxTokens = 24
        options.sampling = .greedy
        var so = SchedulerOptions()
        so.slots = 3
        so.contextLength = 512
        so.prefillChunk = 8
        let batch = try Scheduler(model: model, options: so).generateAll(prompts, options: options)
        for (prompt, r) in zip(prompts, batch) {
            let alone = try Session(model: model, contextLength: 512).generate(prompt, options: options)
            XCTAssertEqual(r.tokens, alone.tokens)
        }
    }

    /// `phi4 quantize` writes Phi-4-mini's rotary facts as llama.cpp's converter does
    /// (rope.dimension_count, rope_factors_short/long tensors, the original context and attention
    /// factor, no output.weight when tied); the file loads as the same model and computes the same
    /// logits bit for bit as the checkpoint quantized at load.
    func testGGUFRoundTripKeepsTheRotaryFacts() throws {
        let path = FileManager.default.temporaryDirectory.path + "/mini-q8_0-\(getpid()).gguf"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try GGUFExport.write(hfDirectory: modelFixtures + "/mini", type: .q8_0, output: path)
        let file = try GGUFFile(path: path)
        XCTAssertNil(file.tensors["output.weight"])
        XCTAssertEqual(file.tensors["rope_factors_long.weight"]?.dims, [6])
        XCTAssertEqual(file.metadata["phi3.rope.dimension_count"]?.intValue, 12)
        XCTAssertEqual(file.metadata["phi3.rope.scaling.original_context_length"]?.intValue, 48)
        let gguf = try Model.load(path: path)
        var o = ModelLoadOptions()
        o.weightType = .q8_0
        let direct = try Model.load(path: modelFixtures + "/mini", options: o)
        XCTAssertEqual(gguf.config.rotaryDim, 12)
        XCTAssertEqual(gguf.config.longRoPE, direct.config.longRoPE)
        XCTAssertTrue(gguf.weights.lmHead === gguf.weights.embedding)
        for p in try loadReference("mini") where p.name == "long" || p.name == "cross" {
            let a = try Session(model: gguf, contextLength: 512).evaluate(p.ids, allLogits: true)
            let b = try Session(model: direct, contextLength: 512).evaluate(p.ids, allLogits: true)
            XCTAssertEqual(maxDifference(a, b).0, 0, p.name)
        }
    }

    /// `phi4 info` names the family member from the configuration.
    func testFamilyNames() throws {
        XCTAssertEqual(ModelConfig.phi4.familyName, "Phi-4")
        var reasoning = ModelConfig.phi4
        reasoning.maxPositions = 32768
        reasoning.ropeTheta = 500_000
        XCTAssertEqual(reasoning.familyName, "Phi-4-reasoning")
        let mini = ModelConfig(hiddenSize: 3072, intermediateSize: 8192, layerCount: 32, headCount: 24, kvHeadCount: 8,
                               headDim: 128, vocabSize: 200_064, maxPositions: 131_072, rmsNormEps: 1e-5, ropeTheta: 10000,
                               rotaryDim: 96, tieWordEmbeddings: true)
        XCTAssertEqual(mini.familyName, "Phi-4-mini")
        XCTAssertEqual(Self.mini.config.familyName, "Phi-4-mini architecture (other shape)")
        XCTAssertEqual(try Model.config(path: modelFixtures + "/gqa8").familyName, "Phi-4 architecture (other shape)")
    }
}
