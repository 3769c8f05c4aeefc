// `phi4 quantize`: an HF checkpoint to a GGUF file.

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
@preconcurrency import Glibc  // stdout and stderr: C globals (FILE streams lock themselves)
#endif

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write an HF Phi-4 checkpoint as a GGUF file (f32, f16, q8_0, q4_0, q4_0-mixed, q4_k_m, q5_k_m or q6_k).")

    @Option(help: "An HF Phi-4 directory.")
    var model: String

    @Option(help: "f32, f16, q8_0, q4_0, q4_0-mixed (q4_0 with down_proj and lm_head in q8_0), or llama.cpp's K-quant mixes q4_k_m, q5_k_m, q6_k.")
    var type: String

    @Option(help: "The GGUF file to write.")
    var out: String

    func run() throws {
        guard let t = GGUFExport.FileType(rawValue: type) else {
            throw ValidationError("--type must be one of \(GGUFExport.FileType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let clock = ContinuousClock()
        let start = clock.now
        do {
            try GGUFExport.write(hfDirectory: model, type: t, output: out) { done, total, name, kind in
                let width = 30
                let filled = total > 0 ? width * done / total : width
                let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                fputs("\r[\(bar)] \(done)/\(total) \(name) \(kind)                    ", stderr)
                if done == total { fputs("\n", stderr) }
            }
        } catch {
            throw RuntimeError(error)
        }
        let d = clock.now - start
        let mem = residentMemory()
        printError("wrote \(out) in \(d.components.seconds) s; peak memory \(fmt(Double(mem.peak) / 1e9)) GB")
    }
}
