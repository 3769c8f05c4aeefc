// `phi4 dev`: developer tools (random full-size models for measurements).

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
@preconcurrency import Glibc  // stdout and stderr: C globals (FILE streams lock themselves)
#endif

struct Dev: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Developer tools (random models for measurements).", subcommands: [RandomModelCommand.self])
}

struct RandomModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "random-model",
        abstract: "Write a Phi-4-shaped GGUF with random weights, streaming (for speed and memory measurements).")

    @Option(help: "Shape: phi4 (14B) or phi4-mini (3.8B: partial rotary, LongRoPE with factors 1, tied lm_head; use the o200k tokenizer).")
    var shape = "phi4"

    @Option(help: "Number of layers (default: the shape's, 40 or 32).")
    var layers: Int?

    @Option(help: "f32, f16, q8_0, q4_0, q4_0-mixed, q4_k_m, q5_k_m or q6_k (K-quants: random bits).")
    var type: String

    @Option(help: "A tokenizer (model directory, tokenizer.json or .tiktoken) whose vocabulary to embed.")
    var tokenizer: String

    @Option(help: "The GGUF file to write.")
    var out: String

    @Option(help: "Random seed.")
    var seed: UInt64 = 1

    @Flag(help: "Zero matrices written as a sparse file (any size, no disk space; for load and memory-limit tests).")
    var zeros = false

    func run() throws {
        let config: ModelConfig
        switch shape {
        case "phi4": config = .phi4
        case "phi4-mini":
            // Phi-4-mini-instruct's shape; the LongRoPE factors are 1 (speed does not depend on them).
            config = ModelConfig(hiddenSize: 3072, intermediateSize: 8192, layerCount: 32, headCount: 24, kvHeadCount: 8,
                                 headDim: 128, vocabSize: 200_064, maxPositions: 131_072, rmsNormEps: 1e-5, ropeTheta: 10000,
                                 rotaryDim: 96, longRoPE: LongRoPE(shortFactors: Array(repeating: 1, count: 48),
                                                                  longFactors: Array(repeating: 1, count: 48),
                                                                  originalMaxPositions: 4096,
                                                                  attentionFactor: LongRoPE.defaultAttentionFactor(scale: 32, originalMaxPositions: 4096)),
                                 tieWordEmbeddings: true, bosTokenID: 199_999, eosTokenIDs: [200_020, 199_999],
                                 padTokenID: 199_999)
        default: throw ValidationError("--shape must be phi4 or phi4-mini")
        }
        guard let t = GGUFExport.FileType(rawValue: type) else { throw ValidationError("unknown --type \(type)") }
        let tok = try loadTokenizer(tokenizer)
        let clock = ContinuousClock()
        let start = clock.now
        do {
            try RandomModel.write(config: config, layers: layers, type: t, tokenizer: tok,
                                  tokenizerDirectory: tokenizer, output: out, seed: seed, zeros: zeros) { done, total, name in
                fputs("\r\(done)/\(total) \(name)                    ", stderr)
                if done == total { fputs("\n", stderr) }
            }
        } catch {
            throw RuntimeError(error)
        }
        printError("wrote \(out) in \((clock.now - start).components.seconds) s; peak memory \(fmt(Double(residentMemory().peak) / 1e9)) GB")
    }
}
