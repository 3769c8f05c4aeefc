// `phi4 demo`: the bundled demo model completing Python code.

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
@preconcurrency import Glibc  // stdout and stderr: C globals (FILE streams lock themselves)
#endif

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the bundled demo model: Phi-4's architecture and tokenizer, trained small on Python's standard library, completing Python code.")

    @Option(help: "The model (default: models/\(demoModelName)).")
    var model: String?

    @Option(help: "A prompt to complete instead of the built-in ones.")
    var prompt: String?

    @Option(name: .customLong("max-tokens"), help: "Tokens to generate per prompt.")
    var maxTokens = 48

    @Option(help: "Threads (default: the CPUs this process may use).")
    var threads: Int?

    func run() throws {
        guard let path = model ?? findDemoModel() else {
            throw RuntimeError("the demo model models/\(demoModelName) was not found (run from the repository, or set PHI4_DEMO_MODEL)")
        }
        let clock = ContinuousClock()
        let t0 = clock.now
        let m = try loadModel(path)
        let load = clock.now - t0
        print("model: \(path) — Phi-4 architecture, \(m.config.layerCount) layers, hidden \(m.config.hiddenSize), vocabulary \(m.config.vocabSize), \(m.config.parameterCount / 1_000_000)M parameters, loaded in \(fmt(Double(load.components.attoseconds) * 1e-15 + Double(load.components.seconds) * 1e3)) ms")
        print("(a small model trained on the Python standard library; the same code runs the 14B model)\n")
        // Held-out style prompts: code the model never saw, in the style of its training text.
        var prompts: [(String, Float)] = [
            ("import os\nimport sys\n\n\ndef main():\n", 0),
            ("class Stack:\n    \"\"\"A last-in, first-out stack.\"\"\"\n\n    def __init__(self):\n", 0.7),
            ("def read_lines(path):\n    with open(path) as f:\n", 0.7),
        ]
        if let prompt { prompts = [(prompt, 0)] }
        for (text, temperature) in prompts {
            let ids = m.tokenizer.encode(text, addBOS: true)
            var options = GenerationOptions()
            options.maxTokens = maxTokens
            options.sampling.temperature = temperature
            options.sampling.seed = 1
            print(temperature == 0 ? "--- greedy ---" : "--- sampled (temperature \(temperature), seed 1) ---")
            fputs(text, stdout)
            do {
                let session = try Session(model: m, contextLength: 512, threads: threads)
                let result = try session.generate(ids, options: options) { piece, _ in
                    fputs(piece, stdout)
                    fflush(stdout)
                    return true
                }
                let tg = Double(result.tokens.count) / max(result.generationSeconds, 1e-9)
                let pp = Double(result.promptTokenCount) / max(result.promptSeconds, 1e-9)
                print("\n[\(result.tokens.count) tokens, \(fmt(tg)) tok/s; prompt \(result.promptTokenCount) tokens at \(fmt(pp)) tok/s]\n")
            } catch {
                throw RuntimeError(error)
            }
        }
    }
}
