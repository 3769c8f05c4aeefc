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

    @Option(help: "Shape: phi4 (14B).")
    var shape = "phi4"

    @Option(help: "Number of layers (default: the shape's, 40).")
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
        guard shape == "phi4" else { throw ValidationError("only --shape phi4 is known") }
        guard let t = GGUFExport.FileType(rawValue: type) else { throw ValidationError("unknown --type \(type)") }
        let tok = try loadTokenizer(tokenizer)
        let clock = ContinuousClock()
        let start = clock.now
        do {
            try RandomModel.write(config: .phi4, layers: layers, type: t, tokenizer: tok,
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
