// `phi4 bench-tokenizer`: the tokenizer's speed on a text file.

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

struct BenchTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-tokenizer",
        abstract: "Measure encode throughput (one thread) on a text file.")

    @Option(help: "A model directory, a tokenizer.json or a .tiktoken file.")
    var tokenizer: String

    @Option(help: "How many times to encode the file; the best run is reported.")
    var repeats = 3

    @Argument(help: "A UTF-8 text file.")
    var file: String

    func run() throws {
        let tok = try loadTokenizer(tokenizer)
        let bytes = try runtime { try FileIO.readAll(file) }
        let text = String(decoding: bytes, as: UTF8.self)
        var best = Double.infinity
        var count = 0
        for _ in 0..<max(1, repeats) {
            let clock = ContinuousClock()
            let start = clock.now
            count = tok.encode(text).count
            let d = clock.now - start
            let s = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
            best = min(best, s)
        }
        let mb = Double(bytes.count) / 1e6
        print("bytes=\(bytes.count) tokens=\(count) seconds=\(best) MB/s=\(mb / best)")
    }
}
