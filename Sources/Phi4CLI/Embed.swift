// `phi4 embed`: embeddings of texts, as JSON.

import ArgumentParser
import Phi4

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the embeddings of texts (final-norm hidden states, pooled) as JSON, one array per text.",
        discussion: """
            Each text is one input (arguments, or with --lines one per line of standard input); all go \
            through the batched forward pass together. Output: a JSON array with one embedding per text \
            (with --pooling none, one array of per-token vectors per text).
            """)

    @OptionGroup var common: ModelOptions

    @Option(help: "Pooling: mean, last, cls (the first token) or none (one vector per token).")
    var pooling = "mean"

    @Flag(help: "Divide each vector by its L2 norm.")
    var normalize = false

    @Flag(help: "Read the texts from standard input, one per line.")
    var lines = false

    @Flag(help: "Parse special-token text (such as <|im_start|>) as the special token.")
    var special = false

    @Argument(help: "The texts.")
    var texts: [String] = []

    func run() throws {
        guard let mode = Pooling(name: pooling) else { throw ValidationError("--pooling must be mean, last, cls or none") }
        var inputs = texts
        if lines {
            while let line = readLine() {
                if !line.isEmpty { inputs.append(line) }
            }
        }
        guard !inputs.isEmpty else { throw ValidationError("give at least one text (or --lines)") }
        let m = try common.loadModel()
        let ids = inputs.map { m.tokenizer.encode($0, allowSpecial: special) }
        if let i = ids.firstIndex(where: \.isEmpty) { throw ValidationError("text \(i + 1) has no tokens") }
        let vectors = try runtime {
            try Embedder(model: m, threads: common.threads).embed(ids, pooling: mode, normalize: normalize)
        }
        let d = m.config.hiddenSize
        var out = "["
        for (i, v) in vectors.enumerated() {
            out += i == 0 ? "\n  " : ",\n  "
            if mode == .none {
                out += "[" + stride(from: 0, to: v.count, by: d).map { row(v[$0..<($0 + d)]) }.joined(separator: ", ") + "]"
            } else {
                out += row(v[...])
            }
        }
        out += "\n]\n"
        fputs(out, stdout)
    }

    private func row(_ v: ArraySlice<Float>) -> String {
        "[" + v.map { $0.description }.joined(separator: ", ") + "]"
    }
}
