// `phi4 perplexity`: perplexity on a text file.

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
@preconcurrency import Glibc  // stdout and stderr: C globals (FILE streams lock themselves)
#endif

struct Perplexity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Perplexity of a model on a text file, in windows of --ctx tokens (default 512).")

    @OptionGroup var common: ModelOptions

    @Option(help: "A UTF-8 text file.")
    var file: String

    @Option(name: .customLong("max-windows"), help: "Evaluate at most this many windows.")
    var maxWindows = 1_000_000

    func run() throws {
        let m = try common.loadModel()
        let ctx = common.ctx ?? 512  // the window: each is evaluated from an empty context
        let ids = m.tokenizer.encode(String(decoding: try runtime { try FileIO.readAll(file) }, as: UTF8.self))
        guard ids.count > ctx else { throw RuntimeError("the file has \(ids.count) tokens; need more than --ctx \(ctx)") }
        let vocab = m.config.vocabSize
        var nll = 0.0
        var count = 0
        var windows = 0
        do {
            let session = try common.session(m, defaultCapacity: ctx)
            var start = 0
            while start + ctx <= ids.count && windows < maxWindows {
                session.reset()
                let window = Array(ids[start..<(start + ctx)])
                let logits = try session.evaluate(window, allLogits: true)
                // Score every position after the first half (each prediction sees at least ctx/2 tokens).
                for i in (ctx / 2)..<(ctx - 1) {
                    let row = logits[(i * vocab)..<((i + 1) * vocab)]
                    let maxv = Double(row.max()!)
                    var sum = 0.0
                    for v in row { sum += exp(Double(v) - maxv) }
                    nll += (log(sum) + maxv) - Double(row[row.startIndex + Int(window[i + 1])])
                    count += 1
                }
                windows += 1
                start += ctx
                fputs("\rwindow \(windows): perplexity \(fmt(exp(nll / Double(count))))   ", stderr)
            }
            fputs("\n", stderr)
        } catch {
            throw RuntimeError(error)
        }
        print("perplexity: \(fmt(exp(nll / Double(count)))) over \(count) predictions in \(windows) windows of \(ctx) tokens (\(common.model), \(m.weights.layers.first?.gateUp.format.rawValue ?? common.weightsName))")
    }
}
