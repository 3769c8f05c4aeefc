import XCTest
@testable import Phi4

/// Typical and Mirostat sampling against a direct reimplementation of llama.cpp's formulas
/// (tools/make_sampler_fixtures.py), and embeddings against transformers' last hidden states
/// (tools/make_embedding_fixtures.py).
final class EmbeddingAndLlamaSamplerTests: XCTestCase {
    func samplerCases() throws -> JSONValue {
        try JSONParser.parse(try FileIO.readAll(fixturesDirectory + "/sampling/llama_samplers.json", limit: 1 << 22))
    }

    /// Softmax of `logits`, most likely first (ties by id), in f32 as the sampler computes it.
    func sortedSoftmax(_ logits: [Float]) -> (order: [Int], probs: [Float]) {
        let order = logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        let m = logits[order[0]]
        let e = order.map { expf(logits[$0] - m) }
        let s = e.reduce(0, +)
        return (order, e.map { $0 / s })
    }

    /// The kept set is the reference's exactly (sets of token ids; f32 both sides).
    func testTypicalMatchesLlamaCpp() throws {
        let cases = try samplerCases()["typical"]!.arrayValue!
        XCTAssertGreaterThan(cases.count, 40)
        for c in cases {
            let logits = c["logits"]!.arrayValue!.map { Float($0.doubleValue!) }
            let (order, probs) = sortedSoftmax(logits)
            let kept = Sampler.typicalSet(probs, p: Float(c["p"]!.doubleValue!)).map { order[$0] }.sorted()
            XCTAssertEqual(kept, c["kept"]!.arrayValue!.map { $0.intValue! }, "p \(c["p"]!.doubleValue!), \(logits.count) logits")
        }
    }

    /// The truncation, the token drawn with the same uniform, and μ (to 1e-4: f32 logs) agree.
    func testMirostatMatchesLlamaCpp() throws {
        let cases = try samplerCases()["mirostat"]!.arrayValue!
        XCTAssertGreaterThan(cases.count, 20)
        for c in cases {
            let logits = c["logits"]!.arrayValue!.map { Float($0.doubleValue!) }
            let (order, probs) = sortedSoftmax(logits)
            let r = Sampler.mirostatStep(sortedProbs: probs, version: c["version"]!.intValue!, vocabSize: logits.count,
                                         tau: Float(c["tau"]!.doubleValue!), eta: Float(c["eta"]!.doubleValue!),
                                         mu: Float(c["mu"]!.doubleValue!), uniform: Float(c["uniform"]!.doubleValue!))
            let what = "mirostat \(c["version"]!.intValue!), \(logits.count) logits"
            XCTAssertEqual(r.kept, c["kept"]!.intValue!, what)
            XCTAssertEqual(order[r.index], c["token"]!.intValue!, what)
            XCTAssertEqual(r.mu, Float(c["new_mu"]!.doubleValue!), accuracy: 1e-4, what)
        }
    }

    /// Sampling with typical_p keeps to the typical set; Mirostat 2 with a tiny τ is greedy-like
    /// and its μ moves.
    func testSamplerUsesTheNewStages() {
        let logits: [Float] = [1.0, 3.0, 2.0, -1.0, 2.5, 0.0]
        var p = SamplingParameters()
        p.temperature = 1
        p.topK = 0
        p.topP = 1
        p.minP = 0
        p.typicalP = 0.3
        p.seed = 1
        let (order, probs) = sortedSoftmax(logits)
        let allowed = Set(Sampler.typicalSet(probs, p: 0.3).map { order[$0] })
        var s = Sampler(p)
        for _ in 0..<200 {
            var l = logits
            XCTAssertTrue(allowed.contains(Int(s.sample(&l, history: []))))
        }
        var m = SamplingParameters()
        m.mirostat = 2
        m.mirostatTau = 0.01
        m.seed = 2
        var ms = Sampler(m)
        XCTAssertEqual(ms.mirostatMu, 0.02, accuracy: 1e-6)
        var l = logits
        XCTAssertEqual(ms.sample(&l, history: []), 1)  // only the top token has surprise ≤ μ (at least one is kept)
        XCTAssertNotEqual(ms.mirostatMu, 0.02)
        m.mirostat = 3
        XCTAssertThrowsError(try m.validate())
    }

    func cosine(_ a: ArraySlice<Float>, _ b: [Float]) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0
        for (x, y) in zip(a, b) {
            dot += Double(x) * Double(y)
            na += Double(x) * Double(x)
            nb += Double(y) * Double(y)
        }
        return dot / (na.squareRoot() * nb.squareRoot())
    }

    /// Every pooling of every reference input, all inputs in one batched call, against
    /// transformers' `last_hidden_state` (f32 vs f32): cosine ≥ 1 − 1e-4 (the issue's bound; the
    /// measured worst is far closer, ~1e-7).
    func testEmbeddingsMatchTransformers() throws {
        for name in fixtureModelNames {
            let model = try Model.load(path: modelFixtures + "/" + name)
            let ref = try JSONParser.parse(try FileIO.readAll(modelFixtures + "/" + name + "/reference/embeddings.json", limit: 1 << 22))
            let inputs = ref["inputs"]!.arrayValue!.map { $0.arrayValue!.map { TokenID($0.intValue!) } }
            let d = model.config.hiddenSize
            // A batch of 64 tokens: the long input spans several passes, the short ones share them.
            let embedder = try Embedder(model: model, batchSize: 64)
            var worst = 1.0
            for (pooling, key) in [(Pooling.mean, "mean"), (.last, "last"), (.first, "first")] {
                let got = try embedder.embed(inputs, pooling: pooling)
                for (i, want) in ref[key]!.arrayValue!.enumerated() {
                    XCTAssertEqual(got[i].count, d)
                    worst = min(worst, cosine(got[i][...], want.arrayValue!.map { Float($0.doubleValue!) }))
                }
            }
            let none = try embedder.embed(inputs, pooling: .none)
            for (key, rows) in ref["none"]!.objectValue! {
                let i = Int(key)!
                XCTAssertEqual(none[i].count, inputs[i].count * d)
                for (t, row) in rows.arrayValue!.enumerated() {
                    worst = min(worst, cosine(none[i][(t * d)..<((t + 1) * d)], row.arrayValue!.map { Float($0.doubleValue!) }))
                }
            }
            XCTAssertGreaterThanOrEqual(worst, 1 - 1e-4, name)
            // Normalised: unit length, same direction.
            let unit = try embedder.embed([inputs[0]], pooling: .mean, normalize: true)[0]
            XCTAssertEqual(unit.reduce(0) { $0 + Double($1) * Double($1) }, 1, accuracy: 1e-5)
        }
    }

    /// With quantized weights an input's embedding does not depend on what it is batched with
    /// (bit for bit), and bad inputs are errors that change nothing.
    func testEmbeddingsBatchedEqualAloneAndBadInputs() throws {
        var options = ModelLoadOptions()
        options.weightType = .q8_0
        let model = try Model.load(path: modelFixtures + "/gqa8", options: options)
        let ref = try JSONParser.parse(try FileIO.readAll(modelFixtures + "/gqa8/reference/embeddings.json", limit: 1 << 22))
        let inputs = ref["inputs"]!.arrayValue!.map { $0.arrayValue!.map { TokenID($0.intValue!) } }
        let e = try Embedder(model: model, batchSize: 32)
        let together = try e.embed(inputs, pooling: .mean)
        for (i, input) in inputs.enumerated() {
            XCTAssertEqual(try e.embed([input], pooling: .mean)[0], together[i])
        }
        XCTAssertThrowsError(try e.embed([[1, 2], []]))
        XCTAssertThrowsError(try e.embed([[TokenID(model.config.vocabSize)]]))
        XCTAssertEqual(try e.embed([]), [])
    }
}

/// The request fields llama-server and llama-cpp-python add to OpenAI's.
final class OpenAIExtensionFieldTests: XCTestCase {
    func parse(_ body: String, _ kind: OpenAIRequest.Kind = .completion) throws -> OpenAIRequest {
        try OpenAIRequest.parse(Array(body.utf8), kind: kind, maxTokensCap: 100)
    }

    func testSamplerFields() throws {
        let r = try parse(#"{"prompt": "x", "typical_p": 0.7, "mirostat": 2, "mirostat_tau": 3.5, "mirostat_eta": 0.2}"#)
        XCTAssertEqual(r.options.sampling.typicalP, 0.7)
        XCTAssertEqual(r.options.sampling.mirostat, 2)
        XCTAssertEqual(r.options.sampling.mirostatTau, 3.5)
        XCTAssertEqual(r.options.sampling.mirostatEta, 0.2)
        XCTAssertEqual(try parse(#"{"prompt": "x", "mirostat_mode": 1}"#).options.sampling.mirostat, 1)
        for bad in [#""typical_p": 0"#, #""typical_p": 1.5"#, #""mirostat": 3"#, #""mirostat_mode": -1"#, #""mirostat_tau": -1"#] {
            XCTAssertThrowsError(try parse(#"{"prompt": "x", "# + bad + "}"), bad)
        }
    }

    func testAnyNumberOfStopStrings() throws {
        let stops = (0..<12).map { "\"s\($0)\"" }.joined(separator: ", ")
        XCTAssertEqual(try parse(#"{"prompt": "x", "stop": ["# + stops + "]}").options.stopStrings.count, 12)
        XCTAssertThrowsError(try parse(#"{"prompt": "x", "stop": [1]}"#))
    }

    func testGrammarAndJSONObjectSchema() throws {
        let g = try parse(#"{"prompt": "x", "grammar": "root ::= \"a\" | \"b\""}"#)
        XCTAssertEqual(g.options.constraint, .grammar(#"root ::= "a" | "b""#))
        XCTAssertThrowsError(try parse(#"{"prompt": "x", "grammar": "root ::= ("}"#))
        XCTAssertThrowsError(try parse(#"{"prompt": "x", "grammar": 3}"#))
        XCTAssertNil(try parse(#"{"prompt": "x", "grammar": ""}"#).options.constraint)
        XCTAssertThrowsError(try parse(#"{"prompt": "x", "grammar": "root ::= \"a\"", "response_format": {"type": "json_object"}}"#))
        let s = try parse(#"{"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object", "schema": {"type": "array"}}}"#, .chat)
        guard case .jsonSchema(let text)? = s.options.constraint else { return XCTFail("no schema constraint") }
        XCTAssertTrue(text.contains("array"))
        XCTAssertEqual(try parse(#"{"prompt": "x", "response_format": {"type": "json_object"}}"#).options.constraint, .jsonObject)
    }
}

/// llama-server's /tokenize and /detokenize bodies and OpenAI's /v1/embeddings, on Phi-4's
/// tokenizer (ids from tiktoken's cl100k_base, as the tokenizer tests check).
final class ServerEndpointTests: XCTestCase {
    static let tokenizer = try! Tokenizer.load(path: tokenizerFixtures + "/phi4")

    func body(_ s: String) -> [UInt8] { Array(s.utf8) }

    func testTokenizeAndDetokenize() throws {
        let t = Self.tokenizer
        XCTAssertEqual(try ServerEndpoints.tokenize(body(#"{"content": "Hello, world!<|im_end|>"}"#), tokenizer: t),
                       #"{"tokens":[9906,11,1917,0,100265]}"#)
        XCTAssertEqual(try ServerEndpoints.tokenize(body(#"{"content": "<|im_end|>", "parse_special": false}"#), tokenizer: t),
                       #"{"tokens":[27,91,318,6345,91,29]}"#)
        // A token that is not whole UTF-8 comes back as its bytes.
        let pieces = try ServerEndpoints.tokenize(body(#"{"content": "🚀", "with_pieces": true}"#), tokenizer: t)
        XCTAssertTrue(pieces.contains(#""piece":["#), pieces)
        XCTAssertEqual(try ServerEndpoints.tokenize(body("{}"), tokenizer: t), #"{"tokens":[]}"#)
        for bad in [#"{"content": 3}"#, #"{"content": null}"#, #"{"content": "x", "with_pieces": "yes"}"#, "[1]", "{"] {
            XCTAssertThrowsError(try ServerEndpoints.tokenize(body(bad), tokenizer: t), bad)
        }
        XCTAssertEqual(try ServerEndpoints.detokenize(body(#"{"tokens": [9906, 11, 1917, 0]}"#), tokenizer: t),
                       #"{"content":"Hello, world!"}"#)
        for bad in [#"{"tokens": [-1]}"#, #"{"tokens": [1e9]}"#, #"{"tokens": "1"}"#, #"{"tokens": null}"#] {
            XCTAssertThrowsError(try ServerEndpoints.detokenize(body(bad), tokenizer: t), bad)
        }
    }

    func testEmbeddingRequestsAndBase64() throws {
        let t = Self.tokenizer
        func inputs(_ s: String) throws -> [[TokenID]] {
            try ServerEndpoints.embeddingRequest(body(s), tokenizer: t, maxInputs: 4, maxTokens: 8).inputs
        }
        XCTAssertEqual(try inputs(#"{"input": "Hello, world!"}"#), [[9906, 11, 1917, 0]])
        XCTAssertEqual(try inputs(#"{"input": ["Hello", "world"]}"#), [[9906], [14957]])
        XCTAssertEqual(try inputs(#"{"input": [1, 2, 3]}"#), [[1, 2, 3]])
        XCTAssertEqual(try inputs(#"{"input": [[1, 2], [3]]}"#), [[1, 2], [3]])
        for bad in [#"{"input": ""}"#, #"{"input": []}"#, #"{"input": [[]]}"#, #"{"input": [1, "a"]}"#, #"{"input": [-1]}"#,
                    #"{"input": ["a", "b", "c", "d", "e"]}"#, #"{"input": "a b c d e f g h i j"}"#,
                    #"{"input": "x", "encoding_format": "hex"}"#, #"{"input": "x", "user": 1}"#] {
            XCTAssertThrowsError(try inputs(bad), bad)
        }
        XCTAssertTrue(try ServerEndpoints.embeddingRequest(body(#"{"input": "x", "encoding_format": "base64"}"#), tokenizer: t,
                                                           maxInputs: 4, maxTokens: 8).base64)
        // base64 of little-endian float32 (Python: base64.b64encode(struct.pack("<3f", 1.0, -0.5, 3.25))).
        let json = ServerEndpoints.embeddingResponse([[1, -0.5, 3.25]], model: "m", promptTokens: 3, base64: true)
        XCTAssertTrue(json.contains(#""embedding":"AACAPwAAAL8AAFBA""#), json)
        XCTAssertEqual(ServerEndpoints.base64Encoded(Array("a".utf8)), "YQ==")
        XCTAssertEqual(ServerEndpoints.base64Encoded(Array("ab".utf8)), "YWI=")
        XCTAssertEqual(ServerEndpoints.base64Encoded(Array("abc".utf8)), "YWJj")
        let plain = try JSONParser.parse(ServerEndpoints.embeddingResponse([[1, -0.5], [2, 0]], model: "m", promptTokens: 5, base64: false))
        XCTAssertEqual(plain["data"]?.arrayValue?.count, 2)
        XCTAssertEqual(plain["usage"]?["total_tokens"]?.intValue, 5)
    }
}
