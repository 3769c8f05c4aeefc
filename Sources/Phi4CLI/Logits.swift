// `phi4 logits`: the logits of a token sequence as a .npy array.

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

struct Logits: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the logits of a token sequence as a float32 .npy array [n, vocab].")

    @OptionGroup var common: ModelOptions

    @Option(help: "Comma-separated token ids.")
    var ids: String

    @Flag(help: "Every position (shape [n, vocab]); otherwise only the last ([1, vocab]).")
    var all = false

    @Option(help: "The .npy file to write.")
    var out: String

    @Option(name: .customLong("batch-size"), help: "Most tokens per forward chunk.")
    var batchSize = 512

    func run() throws {
        let m = try common.loadModel()
        let list = try parseIDs(ids)
        if list.isEmpty { throw ValidationError("no ids") }
        do {
            let session = try common.session(m, defaultCapacity: max(list.count, 16), batchSize: batchSize)
            let logits = try session.evaluate(list, allLogits: all)
            let rows = all ? list.count : 1
            try NPY.write(path: out, shape: [rows, m.config.vocabSize], values: logits)
        } catch let e as ModelError {
            throw RuntimeError(e)
        } catch let e as FileError {
            throw RuntimeError(e)
        }
    }
}
