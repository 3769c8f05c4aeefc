import CPhi4Kernels
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

    /// Generated tokens' log-probabilities equal log-softmax of transformers' logits at the same
    /// position (f32 vs f64 reference arithmetic: within 1e-4), and the top alternatives are the
    /// reference's most likely tokens in order, whatever the sampling settings.
    func testLogprobsMatchLogSoftmaxOfTheReferenceLogits() throws {
        let model = Self.models["gqa8"]!
        let vocab = model.config.vocabSize
        let p = try loadReference("gqa8")[2]
        for j in [1, 5, p.ids.count / 2, p.ids.count] {
            let row = Array(p.logits[((j - 1) * vocab)..<(j * vocab)]).map(Double.init)
            let maxv = row.max()!
            let lse = maxv + log(row.reduce(0) { $0 + exp($1 - maxv) })
            var options = GenerationOptions()
            options.maxTokens = 1
            options.topLogprobs = 5
            options.sampling.temperature = 1.3  // sampled: the logprobs stay the model's own
            options.sampling.seed = UInt64(j)
            let result = try Session(model: model, contextLength: 512).generate(Array(p.ids[..<j]), options: options)
            guard let r = result.logprobs.first else { continue }  // an end-of-generation draw
            XCTAssertEqual(result.logprobs.count, result.tokens.count)
            XCTAssertEqual(Double(r.logprob), row[Int(r.token)] - lse, accuracy: 1e-4)
            let order = row.indices.sorted { row[$0] > row[$1] }
            XCTAssertEqual(r.top.map { Int($0.token) }, Array(order.prefix(5)))
            for a in r.top { XCTAssertEqual(Double(a.logprob), row[Int(a.token)] - lse, accuracy: 1e-4) }
        }
        var off = GenerationOptions()
        off.maxTokens = 3
        XCTAssertTrue(try Session(model: model, contextLength: 64).generate([1, 2], options: off).logprobs.isEmpty)
        off.topLogprobs = 21
        XCTAssertThrowsError(try Session(model: model, contextLength: 64).generate([1, 2], options: off))
    }

    /// Prompt lookup changes nothing in greedy output, and it does propose and confirm tokens
    /// when the text repeats its context. The reason it cannot: a batch of up to 8 tokens (a
    /// verification pass) computes each token bit for bit as decoding it alone does — checked
    /// below for Q8_0, Q4_0 and f32 weights and every cache type, logits compared exactly.
    func testPromptLookupGreedyOutputIsIdentical() throws {
        var load = ModelLoadOptions()
        load.weightType = .q8_0
        let model = try Model.load(path: modelFixtures + "/gqa8", options: load)
        var drafted = 0, accepted = 0
        for p in try loadReference("gqa8") {
            // The prompt repeated: the continuation tends to repeat it as well.
            let prompt = Array((p.ids + p.ids).prefix(300))
            var plain = GenerationOptions()
            plain.maxTokens = 48
            plain.sampling = .greedy
            var lookup = plain
            lookup.lookup = 6
            let a = try Session(model: model, contextLength: 512).generate(prompt, options: plain)
            let b = try Session(model: model, contextLength: 512).generate(prompt, options: lookup)
            XCTAssertEqual(b.tokens, a.tokens, p.name)
            XCTAssertEqual(b.text, a.text)
            XCTAssertEqual(b.stopReason, a.stopReason)
            drafted += b.draftTokens
            accepted += b.acceptedDraftTokens
            // The context afterwards holds the same tokens as without lookup.
            let s1 = try Session(model: model, contextLength: 512), s2 = try Session(model: model, contextLength: 512)
            _ = try s1.generate(prompt, options: plain)
            _ = try s2.generate(prompt, options: lookup)
            XCTAssertEqual(s2.tokens, s1.tokens)
        }
        XCTAssertGreaterThan(drafted, 0)
        XCTAssertGreaterThan(accepted, 0)
        // A verification pass (8 tokens at once) against the same tokens one at a time.
        let p = try loadReference("gqa8")[2]
        for type in [WeightType.q8_0, .q4_0, .f32] {
            var options = ModelLoadOptions()
            options.weightType = type
            let m = try Model.load(path: modelFixtures + "/gqa8", options: options)
            for cacheType in [KVCacheType.f16, .f32, .q8_0] where cacheType != .q8_0 || m.config.headDim % 32 == 0 {
                let one = try Session(model: m, contextLength: 512, cacheType: cacheType)
                let batch = try Session(model: m, contextLength: 512, cacheType: cacheType)
                _ = try one.evaluate(Array(p.ids[..<20]))
                _ = try batch.evaluate(Array(p.ids[..<20]))
                var rows: [Float] = []
                for id in p.ids[20..<28] { rows += try one.evaluate([id]) }
                let all = try batch.evaluate(Array(p.ids[20..<28]), allLogits: true)
                XCTAssertEqual(all, rows, "\(type) weights, \(cacheType) cache")
            }
        }
    }

    /// A token's logits do not depend on the chunk it comes in: a prompt of 60 tokens evaluated
    /// in one chunk, in chunks of 7, and one token at a time gives the same logits at every
    /// position, bit for bit, for quantized weights and every cache type (what makes batched
    /// decoding, prefix reuse and prefill interleaved with decoding exact).
    func testLogitsDoNotDependOnChunking() throws {
        let p = try loadReference("gqa8")[1]
        let ids = Array((p.ids + p.ids).prefix(60))
        for type in [WeightType.q8_0, .q4_0] {
            var options = ModelLoadOptions()
            options.weightType = type
            let m = try Model.load(path: modelFixtures + "/gqa8", options: options)
            for cacheType in [KVCacheType.f16, .f32, .q8_0] where cacheType != .q8_0 || m.config.headDim % 32 == 0 {
                func logits(chunk: Int) throws -> [Float] {
                    let s = try Session(model: m, contextLength: 128, batchSize: chunk, cacheType: cacheType)
                    return try s.evaluate(ids, allLogits: true)
                }
                let whole = try logits(chunk: 512)
                XCTAssertEqual(try logits(chunk: 7), whole, "\(type) weights, \(cacheType) cache, chunks of 7")
                XCTAssertEqual(try logits(chunk: 1), whole, "\(type) weights, \(cacheType) cache, one at a time")
            }
        }
    }

    /// With sampling, prompt lookup keeps the distribution of the output: over many seeds, the
    /// frequencies of the first three generated tokens (a joint outcome, so the accept/reject
    /// path matters; top-k 3 keeps the outcomes few) agree with plain sampling — a chi-square
    /// homogeneity test at the 0.1 % level (outcomes expected < 5 times are pooled). Accepting
    /// every draft token, or resampling after a rejection, fails it.
    func testPromptLookupSamplingKeepsTheDistribution() throws {
        var load = ModelLoadOptions()
        load.weightType = .q8_0
        let model = try Model.load(path: modelFixtures + "/gqa4", options: load)
        let p = try loadReference("gqa4")[1]
        // The greedy continuation appears earlier in the prompt, so drafts are proposed.
        let prompt = p.ids + p.greedy.prefix(16) + p.ids
        var drafted = 0
        func counts(_ lookup: Int, seeds: Range<UInt64>) throws -> [String: Int] {
            var out: [String: Int] = [:]
            let session = try Session(model: model, contextLength: 256)
            for seed in seeds {
                session.reset()
                var o = GenerationOptions()
                o.maxTokens = 3
                o.lookup = lookup
                o.sampling.temperature = 1
                o.sampling.topK = 3
                o.sampling.topP = 1
                o.sampling.minP = 0
                o.sampling.seed = seed
                let r = try session.generate(prompt, options: o)
                drafted += r.draftTokens
                out[r.tokens.map(String.init).joined(separator: ","), default: 0] += 1
            }
            return out
        }
        let n = 2000
        let plain = try counts(0, seeds: 0..<UInt64(n))
        drafted = 0
        let lookup = try counts(4, seeds: 100_000..<UInt64(100_000 + n))
        XCTAssertGreaterThan(drafted, n / 5, "drafts must be proposed for the test to mean anything")
        var chi = 0.0, df = -1, restA = 0, restB = 0
        for k in Set(plain.keys).union(lookup.keys) {
            let a = plain[k] ?? 0, b = lookup[k] ?? 0
            if Double(a + b) / 2 < 5 {
                restA += a
                restB += b
                continue
            }
            let e = Double(a + b) / 2
            chi += ((Double(a) - e) * (Double(a) - e) + (Double(b) - e) * (Double(b) - e)) / e
            df += 1
        }
        if restA + restB > 0 {
            let e = Double(restA + restB) / 2
            chi += ((Double(restA) - e) * (Double(restA) - e) + (Double(restB) - e) * (Double(restB) - e)) / e
            df += 1
        }
        // The 99.9th percentile of chi-square(df) (Wilson–Hilferty).
        let d = Double(max(df, 1)), z = 3.09
        let critical = d * pow(1 - 2 / (9 * d) + z * (2 / (9 * d)).squareRoot(), 3)
        XCTAssertLessThan(chi, critical, "chi-square \(chi) with \(df) degrees of freedom")
    }

    /// A saved state restored into a new session continues exactly as the original: same logits
    /// and same greedy text for the next turn. Corrupted, truncated, foreign-model and oversized
    /// states are refused and leave the session as it was.
    func testSavedStateRestoresExactlyAndBadStatesAreRefused() throws {
        for type in [WeightType.f32, .q8_0] {
            var load = ModelLoadOptions()
            load.weightType = type
            let model = try Model.load(path: modelFixtures + "/gqa8", options: load)
            let refs = try loadReference("gqa8")
            let first = refs[1].ids, next = Array(refs[2].ids.prefix(20))
            var greedy = GenerationOptions()
            greedy.sampling = .greedy
            greedy.maxTokens = 24

            let original = try Session(model: model, contextLength: 512)
            _ = try original.generate(first, options: greedy)
            let state = original.saveState()
            let want = try original.generate(next, options: greedy)

            let restored = try Session(model: model, contextLength: 512)
            try restored.restoreState(state)
            let got = try restored.generate(next, options: greedy)
            XCTAssertEqual(got.tokens, want.tokens, "\(type)")
            XCTAssertEqual(restored.tokens, original.tokens)

            // Refusals leave the session unchanged.
            let target = try Session(model: model, contextLength: 512)
            _ = try target.evaluate([1, 2, 3])
            var corrupted = state
            corrupted[corrupted.count / 2] ^= 0x40
            XCTAssertThrowsError(try target.restoreState(corrupted))
            XCTAssertThrowsError(try target.restoreState(Array(state.dropLast(9))))
            XCTAssertThrowsError(try target.restoreState([]))
            XCTAssertThrowsError(try target.restoreState(Array(repeating: 0, count: 64)))
            XCTAssertThrowsError(try Session(model: model, contextLength: 16).restoreState(state))
            XCTAssertEqual(target.tokens, [1, 2, 3])
            let other = try Model.load(path: modelFixtures + "/gqa4", options: load)
            XCTAssertThrowsError(try Session(model: other, contextLength: 512).restoreState(state))
        }
        // The same files run in another weight type are another model.
        let f32 = try Model.load(path: modelFixtures + "/gqa8")
        var q = ModelLoadOptions()
        q.weightType = .q8_0
        let q8 = try Model.load(path: modelFixtures + "/gqa8", options: q)
        XCTAssertNotEqual(f32.fingerprint, q8.fingerprint)
        XCTAssertEqual(f32.fingerprint, try Model.load(path: modelFixtures + "/gqa8").fingerprint)
    }

    /// Prefix reuse keeps the shared part of the context and evaluates only the rest; the logits
    /// equal a fresh evaluation of the whole prompt.
    func testPrefixReuseEvaluatesOnlyTheNewTokens() throws {
        let model = Self.models["gqa8"]!
        let p = try loadReference("gqa8")[3]
        let session = try Session(model: model, contextLength: 512)
        _ = try session.evaluate(Array(p.ids[..<100]) + [5, 6, 7])
        let rest = session.reusePrefix(of: p.ids)
        XCTAssertEqual(rest.count, p.ids.count - 100)
        XCTAssertEqual(session.tokens.count, 100)
        let got = try session.evaluate(rest)
        let want = try Session(model: model, contextLength: 512).evaluate(p.ids)
        let (d, scale) = maxDifference(got, want)
        XCTAssertLessThanOrEqual(d, 1e-5 * scale)
        // The whole prompt already in the context: the last token is evaluated again.
        XCTAssertEqual(session.reusePrefix(of: p.ids), [p.ids.last!])
    }

    /// A q8_0 KV cache on the trained demo model (head dimension 64): logits at every position of
    /// a 200-token held-out-style text stay within 2 % of the largest |logit| of the f16 cache's,
    /// with the same greedy choice at ≥ 95 % of positions (int8 keys and values with one scale per
    /// 32 values: errors of ~0.4 % per value, averaged by attention); the cache is 34/64 of f16's
    /// size. Models whose head dimension is not a multiple of 32 refuse it.
    func testQ8CacheStaysCloseToF16AndIsHalfTheSize() throws {
        let demo = fixturesDirectory + "/../../../models/phi4-demo-q8_0.gguf"
        let model = try Model.load(path: demo)
        let text = "import os\nimport sys\n\n\nclass Cache(object):\n    \"\"\"A small cache of recently used values.\"\"\"\n\n    def __init__(self, size=128):\n        self._size = size\n        self._data = {}\n\n    def get(self, key, default=None):\n        if key in self._data:\n            return self._data[key]\n        return default\n\n    def put(self, key, value):\n        if len(self._data) >= self._size:\n            self._data.pop(next(iter(self._data)))\n        self._data[key] = value\n"
        let ids = model.tokenizer.encode(text)
        let f16 = try Session(model: model, contextLength: 512, cacheType: .f16)
        let q8 = try Session(model: model, contextLength: 512, cacheType: .q8_0)
        let a = try f16.evaluate(ids, allLogits: true), b = try q8.evaluate(ids, allLogits: true)
        let vocab = model.config.vocabSize
        var same = 0
        var worst: Float = 0
        for i in 0..<ids.count {
            let ra = Array(a[(i * vocab)..<((i + 1) * vocab)]), rb = Array(b[(i * vocab)..<((i + 1) * vocab)])
            let (d, scale) = maxDifference(rb, ra)
            worst = max(worst, d / scale)
            XCTAssertLessThanOrEqual(d, 0.02 * scale, "position \(i)")
            same += Sampler.argmax(ra) == Sampler.argmax(rb) ? 1 : 0
        }
        print("q8_0 KV vs f16 KV: worst max|Δ|/max|logit| \(worst), same argmax at \(same) of \(ids.count) positions")
        XCTAssertGreaterThanOrEqual(Double(same), 0.95 * Double(ids.count))
        XCTAssertEqual(q8.cache.byteCount * 64, f16.cache.byteCount * 34)
        // A saved q8_0 state restores into a q8_0 context and not into an f16 one.
        let restored = try Session(model: model, contextLength: 512, cacheType: .q8_0)
        try restored.restoreState(q8.saveState())
        XCTAssertEqual(try restored.evaluate([ids[0]]), try q8.evaluate([ids[0]]))
        XCTAssertThrowsError(try Session(model: model, contextLength: 512, cacheType: .f16).restoreState(q8.saveState()))
        XCTAssertThrowsError(try Session(model: Self.models["gqa4"]!, contextLength: 64, cacheType: .q8_0))
    }

    /// The demo model's weights (Q8_0) re-quantized to the Q4_K_M recipe by our K-quant writer
    /// and run by the native K-quant kernels: every position of a 200-token text stays close to
    /// the Q8_0 model (mean KL < 0.02 nats, same greedy choice at ≥ 90 % of positions: 4–6-bit
    /// weights against 8-bit ones), and a batch of 8 tokens equals decoding them one by one
    /// bit for bit (so prompt lookup's guarantee holds for K-quant files).
    func testKQuantModelRunsNativelyAndStaysCloseToQ8() throws {
        let demo = fixturesDirectory + "/../../../models/phi4-demo-q8_0.gguf"
        let q8 = try Model.load(path: demo)
        let c = q8.config
        func requantize(_ m: WeightMatrix, _ type: GGMLType) throws -> WeightMatrix {
            let rows = m.rows, cols = m.cols
            let format: WeightFormat = type == .q4_K ? .q4_K : (type == .q5_K ? .q5_K : .q6_K)
            let bytes = rows * format.rowBytes(cols)
            let out = try WeightMatrix.allocateLarge(bytes: bytes)
            var row = [Float](repeating: 0, count: cols)
            for r in 0..<rows {
                m.copyRow(r, into: &row)
                p4k_quantize_kquant(format.kernelCode, row, out + r * format.rowBytes(cols), cols)
            }
            return WeightMatrix(rows: rows, cols: cols, format: format, owning: out, bytes: bytes)
        }
        let recipe = GGUFExport.FileType.q4_K_M
        func pick(_ role: WeightType.Role, _ name: String, _ cols: Int, _ layer: Int) -> GGMLType {
            recipe.type(for: role, cols: cols, layer: layer, layers: c.layerCount)
        }
        let w = q8.weights
        var layers: [LayerWeights] = []
        for (i, l) in w.layers.enumerated() {
            layers.append(LayerWeights(
                attentionNorm: l.attentionNorm,
                qkv: try requantize(l.qkv, pick(.qkv, "blk.\(i).attn_qkv.weight", l.qkv.cols, i)),
                output: try requantize(l.output, pick(.attention, "blk.\(i).attn_output.weight", l.output.cols, i)),
                mlpNorm: l.mlpNorm,
                gateUp: try requantize(l.gateUp, pick(.gateUp, "blk.\(i).ffn_up.weight", l.gateUp.cols, i)),
                down: try requantize(l.down, pick(.down, "blk.\(i).ffn_down.weight", l.down.cols, i))))
        }
        let weights = ModelWeights(embedding: try requantize(w.embedding, .q4_K), layers: layers, finalNorm: w.finalNorm,
                                   lmHead: try requantize(w.lmHead, .q6_K))
        let k = try Model(config: c, tokenizer: q8.tokenizer, weights: weights)
        XCTAssertEqual(Set(k.weights.layers.flatMap { [$0.qkv.format, $0.output.format, $0.gateUp.format, $0.down.format] }),
                       [.q4_K, .q6_K])
        let text = "def parse(path):\n    \"\"\"Read a configuration file.\"\"\"\n    result = {}\n    with open(path) as f:\n        for line in f:\n            line = line.strip()\n            if not line or line.startswith('#'):\n                continue\n            key, _, value = line.partition('=')\n            result[key.strip()] = value.strip()\n    return result\n\n\nclass Parser(object):\n    def __init__(self, path):\n        self.path = path\n        self.data = parse(path)\n"
        let ids = q8.tokenizer.encode(text)
        let a = try Session(model: q8, contextLength: 512).evaluate(ids, allLogits: true)
        let b = try Session(model: k, contextLength: 512).evaluate(ids, allLogits: true)
        let vocab = c.vocabSize
        var kl = 0.0, same = 0
        for i in 0..<ids.count {
            let ra = Array(a[(i * vocab)..<((i + 1) * vocab)]), rb = Array(b[(i * vocab)..<((i + 1) * vocab)])
            kl += klDivergenceOfLogits(ra, rb)
            same += Sampler.argmax(ra) == Sampler.argmax(rb) ? 1 : 0
        }
        print("Q4_K_M recipe vs Q8_0 on the demo model: mean KL \(kl / Double(ids.count)), same argmax at \(same) of \(ids.count)")
        XCTAssertLessThan(kl / Double(ids.count), 0.02)
        XCTAssertGreaterThanOrEqual(Double(same), 0.9 * Double(ids.count))
        // A batch of 8 equals one token at a time exactly.
        let one = try Session(model: k, contextLength: 512), batch = try Session(model: k, contextLength: 512)
        _ = try one.evaluate(Array(ids[..<40]))
        _ = try batch.evaluate(Array(ids[..<40]))
        var rows: [Float] = []
        for id in ids[40..<48] { rows += try one.evaluate([id]) }
        XCTAssertEqual(try batch.evaluate(Array(ids[40..<48]), allLogits: true), rows)
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
