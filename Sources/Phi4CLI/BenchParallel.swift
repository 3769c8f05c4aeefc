// `phi4 bench --parallel 1,2,4,8`: aggregate decode speed of N sequences advanced together by the
// batch Scheduler (one pass over the weights per step for all of them).

import ArgumentParser
import Phi4

extension Bench {
    func runParallel(_ list: String) throws {
        let counts = list.split(separator: ",").compactMap { Int($0.filter { $0 != " " }) }
        guard !counts.isEmpty, counts.allSatisfy({ $0 >= 1 && $0 <= 64 }) else {
            throw ValidationError("--parallel takes a comma-separated list of counts in 1…64")
        }
        do {
            let m = try common.loadModel()
            let vocab = UInt64(m.tokenizer.bpeTokenCount)
            var x: UInt64 = 0x9E37_79B9
            func prompt() -> [TokenID] {
                (0..<max(1, promptTokens)).map { _ in
                    x = x &* 6364136223846793005 &+ 1442695040888963407
                    return TokenID((x >> 33) % vocab)
                }
            }
            var options = GenerationOptions()
            options.sampling = .greedy
            options.maxTokens = max(2, genTokens)
            for id in m.endOfGenerationIDs { options.sampling.logitBias[id] = -.infinity }  // always generate maxTokens
            print("model: \(common.model), cpu: \(Kernels.cpuModel); prompts of \(max(1, promptTokens)) tokens, \(options.maxTokens) generated each")
            var single = 0.0
            for n in counts {
                var rates: [Double] = []
                for _ in 0..<max(1, repeats) {
                    var so = SchedulerOptions()
                    so.slots = n
                    so.contextLength = max(1, promptTokens) + options.maxTokens + 1
                    so.threads = common.threads
                    so.cacheType = try common.cacheType()
                    let s = try Scheduler(model: m, options: so)
                    for _ in 0..<n { _ = try s.submit(prompt(), options: options) }
                    // Timed from the step after which every sequence is decoding to the end.
                    let clock = ContinuousClock()
                    var started: ContinuousClock.Instant?
                    var generated = 0, atStart = 0, finished = 0
                    var decoding = Set<Int>()
                    while finished < n {
                        for u in try s.step() {
                            generated += u.tokens.count
                            if !u.tokens.isEmpty { decoding.insert(u.request) }
                            if u.result != nil { finished += 1 }
                        }
                        if started == nil && decoding.count == n {
                            started = clock.now
                            atStart = generated
                        }
                    }
                    let secs = seconds(clock.now - started!)
                    rates.append(Double(generated - atStart) / secs)
                }
                let r = median(rates)
                if n == counts.first { single = r / Double(n) }
                print("parallel \(n): \(spread(rates)) tok/s aggregate, \(fmt(r / Double(n))) per sequence, \(fmt(r / max(single, 1e-9)))× one sequence")
            }
        } catch {
            throw RuntimeError(error)
        }
    }
}
