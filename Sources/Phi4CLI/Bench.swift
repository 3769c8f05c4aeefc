// `phi4 bench`: prefill and decode speed, memory and load time.

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure prefill and decode speed (tokens/s, median and spread), peak memory and load time.")

    @OptionGroup var common: ModelOptions

    @Option(name: [.customShort("p"), .customLong("prompt-tokens")], help: "Prompt length for the prefill measurement.")
    var promptTokens = 512

    @Option(name: [.customShort("n"), .customLong("gen-tokens")], help: "Tokens decoded one at a time.")
    var genTokens = 32

    @Option(name: .customLong("batch-size"), help: "Most tokens per forward chunk.")
    var batchSize = 512

    @Option(name: [.customShort("r"), .customLong("repeats")], help: "Repetitions (median and spread are reported).")
    var repeats = 3

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Option(name: .customLong("verify"), help: "Also time one pass over 1…N+1 tokens with all logits (the cost of verifying N prompt-lookup drafts).")
    var verify = 0

    @Option(name: .customLong("parallel"), help: "Also measure batched decoding: aggregate tokens/s of N sequences decoded together, for each N of a comma-separated list (e.g. 1,2,4,8).")
    var parallel: String?

    func run() throws {
        if let parallel { return try runParallel(parallel) }
        let clock = ContinuousClock()
        let t0 = clock.now
        let m = try common.loadModel()
        var x: UInt64 = 0x1234_5678
        let vocab = UInt64(m.tokenizer.bpeTokenCount)
        let prompt: [TokenID] = (0..<promptTokens).map { _ in
            x = x &* 6364136223846793005 &+ 1442695040888963407
            return TokenID((x >> 33) % vocab)
        }
        var prefill: [Double] = [], decode: [Double] = []
        var loadSeconds = 0.0
        do {
            // Default capacity: the prompt and the generated tokens.
            let session = try common.session(m, defaultCapacity: promptTokens + genTokens + 1, batchSize: batchSize)
            var logits = try session.evaluate([prompt.first ?? 1])  // first token: load finished
            loadSeconds = seconds(clock.now - t0)
            for _ in 0..<max(1, repeats) {
                session.reset()
                if promptTokens > 0 {
                    let a = clock.now
                    logits = try session.evaluate(prompt)
                    prefill.append(Double(promptTokens) / seconds(clock.now - a))
                }
                if genTokens > 0 {
                    if promptTokens == 0 { session.reset(); logits = try session.evaluate([1]) }
                    let b = clock.now
                    for _ in 0..<genTokens { logits = try session.evaluate([Sampler.argmax(logits)]) }
                    decode.append(Double(genTokens) / seconds(clock.now - b))
                }
            }
            // The cost of a verification pass: t tokens evaluated at once, all logits, relative to
            // one. The sizes alternate within each repeat, so that a slow spell of the machine
            // affects them alike.
            var passes: [(Int, Double)] = []
            if verify > 0 {
                var times = [[Double]](repeating: [], count: verify + 1)
                for _ in 0..<max(1, repeats) {
                    for t in 1...(verify + 1) {
                        session.truncate(to: min(session.tokens.count, 8))
                        let c = clock.now
                        _ = try session.evaluate(Array(prompt.prefix(t)) + Array(repeating: 1, count: max(0, t - prompt.count)),
                                                 allLogits: true)
                        times[t - 1].append(seconds(clock.now - c))
                    }
                }
                passes = times.enumerated().map { ($0.offset + 1, median($0.element)) }
            }
            let mem = residentMemory()
            let format = m.weights.layers.first?.gateUp.format.rawValue ?? common.weightsName
            var kernels: [String: JSONValue] = [:]
            for f in m.matrixFormats where f != .f32 {
                var byClass: [String: JSONValue] = [:]
                for c in Kernels.BatchClass.allCases { byClass[c.label] = .string(Kernels.choice(f, c) ?? "-") }
                kernels[f.rawValue] = .object(byClass)
            }
            if json {
                var o: [String: JSONValue] = [
                    "model": .string(common.model), "weights": .string(format), "threads": .number(Double(session.decoder.threads)),
                    "n_prompt": .number(Double(promptTokens)), "n_gen": .number(Double(genTokens)),
                    "repeats": .number(Double(max(1, repeats))), "kernels": .object(kernels),
                    "cpu": .string(Kernels.cpuModel), "cpu_flags": .string(Kernels.cpuFlags),
                    "kernel_calibration_ms": .number(Kernels.calibrationMilliseconds),
                    "peak_rss_bytes": .number(Double(mem.peak)), "load_s": .number(loadSeconds),
                    "weight_bytes": .number(Double(m.weights.byteCount)),
                    "kv_type": .string(session.cache.type.rawValue), "kv_positions": .number(Double(session.cache.capacity)),
                    "kv_bytes": .number(Double(session.cache.byteCount)),
                    // Decoding reads every weight once per token except the embedding table (one row).
                    "bytes_per_token": .number(Double(m.weights.byteCount - (m.weights.lmHead === m.weights.embedding ? 0 : m.weights.embedding.byteCount))),
                ]
                if !prefill.isEmpty {
                    o["pp_tps"] = .number(median(prefill))
                    o["pp_tps_all"] = .array(prefill.map { .number($0) })
                }
                if !decode.isEmpty {
                    o["tg_tps"] = .number(median(decode))
                    o["tg_tps_all"] = .array(decode.map { .number($0) })
                }
                if !passes.isEmpty {
                    // Median seconds of a pass over 1, 2, … tokens.
                    o["verify_s"] = .array(passes.map { .number($0.1) })
                }
                print(JSONValue.object(o).serialized)
            } else {
                print("model: \(common.model) (\(m.config.layerCount) layers, \(format) weights, \(fmt(Double(m.weights.byteCount) / 1e9)) GB)")
                print("cpu: \(Kernels.cpuModel) [\(Kernels.cpuFlags)]")
                for line in Kernels.summary(m.matrixFormats) { print("kernels \(line)") }
                print("threads: \(session.decoder.threads), batch: \(session.decoder.batchSize), load to first token: \(fmt(loadSeconds)) s")
                if !prefill.isEmpty { print("prefill pp\(promptTokens): \(spread(prefill)) tok/s") }
                if !decode.isEmpty { print("decode  tg\(genTokens): \(spread(decode)) tok/s") }
                for (t, sec) in passes {
                    print("pass of \(t) token\(t == 1 ? "" : "s"): \(fmt(sec * 1e3)) ms (\(fmt(sec / passes[0].1))× one token)")
                }
                print("memory: rss \(fmt(Double(mem.current) / 1e9)) GB, peak \(fmt(Double(mem.peak) / 1e9)) GB; KV cache \(session.cache.type.rawValue), \(session.cache.capacity) positions, \(fmt(Double(session.cache.byteCount) / 1e9)) GB")
            }
        } catch {
            throw RuntimeError(error)
        }
    }

    func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    func spread(_ v: [Double]) -> String {
        "\(fmt(median(v))) (\(fmt(v.min()!))–\(fmt(v.max()!)), \(v.count) runs)"
    }

    func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
