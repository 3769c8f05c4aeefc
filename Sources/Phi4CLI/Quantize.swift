// `phi4 quantize`: an HF checkpoint to a GGUF file.

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
@preconcurrency import Glibc  // stdout and stderr: C globals (FILE streams lock themselves)
#endif

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write an HF Phi-4 checkpoint or a float GGUF file as a GGUF file (f32, f16, q8_0, q4_0, q4_0-mixed, q4_k_m, q5_k_m or q6_k).")

    @Option(help: "An HF Phi-4 directory, or a GGUF file whose matrices are F32, F16 or BF16 (such as Microsoft's phi-4-fp16.gguf); either may be a Hub model, OWNER/NAME[:QUANT][@REVISION].")
    var model: String

    @Option(help: "f32, f16, q8_0, q4_0, q4_0-mixed (q4_0 with down_proj and lm_head in q8_0), or llama.cpp's K-quant mixes q4_k_m, q5_k_m, q6_k.")
    var type: String

    @Option(help: "The GGUF file to write.")
    var out: String

    @Flag(name: .customLong("allow-requantize"), help: "Accept a GGUF input whose matrices are already quantized (they are dequantized first; precision is lost twice).")
    var allowRequantize = false

    func run() throws {
        guard let t = GGUFExport.FileType(rawValue: type), t.writable else {
            throw ValidationError("--type must be one of \(GGUFExport.FileType.allCases.filter(\.writable).map(\.rawValue).joined(separator: ", "))")
        }
        let clock = ContinuousClock()
        let start = clock.now
        let model = try resolveModel(self.model)
        do {
            let progress: (Int, Int, String, String) -> Void = { done, total, name, kind in
                let width = 30
                let filled = total > 0 ? width * done / total : width
                let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                fputs("\r[\(bar)] \(done)/\(total) \(name) \(kind)                    ", stderr)
                if done == total { fputs("\n", stderr) }
            }
            if model.hasSuffix(".gguf") {
                try GGUFExport.write(ggufFile: model, type: t, output: out, allowRequantize: allowRequantize, progress: progress)
            } else {
                try GGUFExport.write(hfDirectory: model, type: t, output: out, progress: progress)
            }
        } catch {
            throw RuntimeError(error)
        }
        let d = clock.now - start
        let mem = residentMemory()
        printError("wrote \(out) in \(d.components.seconds) s; peak memory \(fmt(Double(mem.peak) / 1e9)) GB")
    }
}
