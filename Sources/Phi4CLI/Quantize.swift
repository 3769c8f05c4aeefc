// `phi4 quantize`: an HF checkpoint to a GGUF file.

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
@preconcurrency import Glibc  // stdout and stderr: C globals (FILE streams lock themselves)
#endif

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write an HF Phi-4 checkpoint or a float GGUF file as a GGUF file of any of llama.cpp's types, as llama-quantize writes it.",
        discussion: """
        The tensor types, their order, the metadata and the bytes are those llama-quantize (the pinned build) writes from \
        the same float GGUF file, with or without an importance matrix (make one with `phi4 imatrix`). Types: \
        \(GGUFExport.FileType.allCases.filter(\.writable).map(\.rawValue).joined(separator: ", ")).
        """)

    @Option(help: "An HF Phi-4 directory, or a GGUF file whose matrices are F32, F16 or BF16 (such as Microsoft's phi-4-fp16.gguf); either may be a Hub model, OWNER/NAME[:QUANT][@REVISION].")
    var model: String

    @Option(help: "A file type as llama-quantize names it (any case): f32, f16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q2_k_s, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k, iq4_nl, iq4_xs, iq3_xxs, iq3_xs, iq3_s, iq3_m, iq2_xxs, iq2_xs, iq2_s, iq2_m, iq1_s, iq1_m; or q4_0-mixed (q4_0 with down_proj and lm_head in q8_0).")
    var type: String

    @Option(help: "An importance matrix (llama.cpp's GGUF or .dat format, from `phi4 imatrix` or llama-imatrix) to weigh rounding errors by; q2_k_s, iq3_xxs, iq3_xs and the iq2 and iq1 types need one.")
    var imatrix: String?

    @Option(name: .customLong("token-embedding-type"), help: "The token embedding's GGML type (e.g. q8_0), instead of the mix's.")
    var tokenEmbeddingType: String?

    @Option(name: .customLong("output-tensor-type"), help: "The output projection's GGML type (e.g. q8_0), instead of the mix's.")
    var outputTensorType: String?

    @Option(help: "The GGUF file to write.")
    var out: String

    @Flag(name: .customLong("allow-requantize"), help: "Accept a GGUF input whose matrices are already quantized (they are dequantized first; precision is lost twice).")
    var allowRequantize = false

    func run() throws {
        guard let t = GGUFExport.FileType(name: type), t.writable else {
            throw ValidationError("--type must be one of \(GGUFExport.FileType.allCases.filter(\.writable).map(\.rawValue).joined(separator: ", "))")
        }
        var options = GGUFExport.Options()
        options.allowRequantize = allowRequantize
        for (flag, value) in [("--token-embedding-type", tokenEmbeddingType), ("--output-tensor-type", outputTensorType)] {
            guard let value else { continue }
            guard let g = GGMLType(name: value), g.isWritable else {
                throw ValidationError("\(flag): unknown or unwritable GGML type \(value)")
            }
            if flag == "--token-embedding-type" { options.choices.tokenEmbedding = g } else { options.choices.output = g }
        }
        if let imatrix {
            do { options.importance = try ImportanceMatrix.load(path: imatrix) } catch { throw RuntimeError(error) }
            options.importancePath = imatrix
            options.choices.hasImportance = true
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
                try GGUFExport.write(ggufFile: model, type: t, output: out, options: options, progress: progress)
            } else {
                try GGUFExport.write(hfDirectory: model, type: t, output: out, options: options, progress: progress)
            }
        } catch {
            throw RuntimeError(error)
        }
        let d = clock.now - start
        let mem = residentMemory()
        printError("wrote \(out) in \(d.components.seconds) s; peak memory \(fmt(Double(mem.peak) / 1e9)) GB")
    }
}
