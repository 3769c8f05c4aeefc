// `phi4 imatrix`: an importance matrix over calibration text, as llama-imatrix computes it.

import ArgumentParser
import Phi4

#if canImport(Glibc)
@preconcurrency import Glibc  // stdout and stderr: C globals (FILE streams lock themselves)
#endif

struct Imatrix: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute an importance matrix for phi4 quantize (or llama-quantize) over calibration text.",
        discussion: """
        Per weight matrix of the layers, the sum of the squared activations entering each input column over every token \
        of the text, cut into chunks of --ctx tokens, as llama-imatrix computes it. Written in llama.cpp's GGUF format \
        (or its older .dat format when --out ends in .dat); both tools read either.
        """)

    @Option(name: [.customShort("m"), .long], help: "The model: a GGUF file, an HF directory or a Hub model (OWNER/NAME[:QUANT]).")
    var model: String

    @Option(name: [.customShort("f"), .long], help: "The calibration text file.")
    var text: String

    @Option(name: [.customShort("o"), .long], help: "The file to write (.gguf, or .dat for the older format).")
    var out = "imatrix.gguf"

    @Option(name: [.customShort("c"), .long], help: "Tokens per chunk.")
    var ctx = 512

    @Option(help: "Chunks to evaluate at most (default: all whole chunks of the text).")
    var chunks: Int?

    @Flag(name: .customLong("process-output"), help: "Also collect the output projection's inputs.")
    var processOutput = false

    @Option(name: [.customShort("t"), .long], help: "Threads (default: all cores).")
    var threads: Int?

    func run() throws {
        let text = String(decoding: try runtime { try FileIO.readAll(self.text) }, as: UTF8.self)
        let path = try resolveModel(model)
        let m: Model
        do { m = try Model.load(path: path) } catch { throw RuntimeError(error) }
        let collector = ImportanceCollector(model: m, chunkSize: ctx, includeOutput: processOutput)
        let clock = ContinuousClock()
        let start = clock.now
        do {
            let report = try collector.add(text: text, maxChunks: chunks, threads: threads) { done, total, ppl in
                fputs("\r[\(done)/\(total)] perplexity \(fmt(ppl))   ", stderr)
            }
            fputs("\n", stderr)
            let matrix = collector.matrix(datasets: [self.text])
            if out.hasSuffix(".dat") { try matrix.writeLegacy(path: out) } else { try matrix.writeGGUF(path: out) }
            let secs = (clock.now - start).components.seconds
            printError("wrote \(out): \(matrix.entries.count) matrices, \(report.chunks) chunks of \(ctx) tokens in \(secs) s; perplexity \(fmt(report.perplexity))")
        } catch {
            throw RuntimeError(error)
        }
    }
}
