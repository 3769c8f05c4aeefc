// The `phi4` command: one file per subcommand in this folder; shared options and helpers in
// Options.swift.

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

@main
struct Phi4Command: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "phi4",
        abstract: "Run Microsoft's Phi-4 on the CPU: tokenize, generate, benchmark.",
        version: Phi4Version.string,
        subcommands: [Demo.self, Generate.self, Chat.self, Perplexity.self, Bench.self, Quantize.self, Imatrix.self, Info.self, Pull.self, List.self, Remove.self, Dev.self, Logits.self, Embed.self, Tokenize.self, Detokenize.self, ChatPrompt.self, BenchTokenizer.self])

    /// Parses the arguments with llama.cpp's `-hf REF` spelled as `--model hf://REF`, then runs.
    static func main() {
        main(rewriteHubArguments(Array(CommandLine.arguments.dropFirst())))
    }
}
