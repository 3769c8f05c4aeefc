// `phi4 info`: a model's architecture, tensors, tokenizer, memory and the kernels chosen.

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a model: architecture, shape, tensor types and sizes, tokenizer.")

    @Argument(help: "A GGUF file, an HF Phi-4 directory, or a Hub model OWNER/NAME[:QUANT][@REVISION] (from the Hugging Face cache, downloaded when missing).")
    var model: String

    @Option(name: .customLong("ctx"), help: "Context length to account the KV cache for (default: min(model context, 4096)).")
    var contextLength: Int?

    func run() throws {
        let path = try resolveModel(model)
        defer { printMemory(path) }
        if path.hasSuffix(".gguf") {
            let g: GGUFFile
            do { g = try GGUFFile(path: path) } catch { throw RuntimeError(error) }
            print("format: GGUF v\(g.version), \(g.tensors.count) tensors, \(g.metadata.count) metadata entries")
            if g.files.count > 1 {
                print("split: \(g.files.count) shards, \(g.files.map { String($0.path.split(separator: "/").last ?? "") }.joined(separator: ", "))")
            }
            print("architecture: \(g.metadata["general.architecture"]?.stringValue ?? "?")")
            if let c = try? Model.config(path: path) { print("model: \(c.familyName)\(rotaryText(c))") }
            for key in ["context_length", "embedding_length", "feed_forward_length", "block_count", "attention.head_count",
                        "attention.head_count_kv", "rope.freq_base", "rope.dimension_count"] {
                if let v = g.metadata["phi3." + key] { print("  \(key): \(v.doubleValue.map { String($0) } ?? "?")") }
            }
            var byType: [String: (Int, Int)] = [:]
            var bytes = 0, elements = 0
            for t in g.tensors.values {
                let k = t.type.displayName.lowercased()
                byType[k, default: (0, 0)].0 += 1
                byType[k, default: (0, 0)].1 += t.data.count
                bytes += t.data.count
                elements += t.count
            }
            for (k, v) in byType.sorted(by: { $0.key < $1.key }) {
                print("tensors \(k): \(v.0), \(fmt(Double(v.1) / 1e6)) MB")
            }
            print("effective bits per weight: \(fmt(Double(bytes * 8) / Double(max(1, elements)))) (\(fmt(Double(bytes) / 1e9)) GB of tensors, \(elements) values)")
            let inPlace = Set(g.tensors.values.compactMap { WeightFormat(ggmlType: $0.type) }.filter { $0 != .f32 })
            if !inPlace.isEmpty { print("run as: \(inPlace.map(\.rawValue).sorted().joined(separator: "/")) used in place from the mapping") }
            let fileType = g.metadata["general.file_type"]?.intValue ?? 0
            let keptF16 = g.tensorOrder.filter { g.tensors[$0]?.type == .f16 && ($0.hasSuffix(".weight")) && g.tensors[$0]!.dims.count == 2 }
            if fileType > 1 && !keptF16.isEmpty {
                print("kept in f16 (rows not whole 32-value blocks): \(keptF16.count) tensors, e.g. \(keptF16.prefix(3).joined(separator: ", "))")
            }
            for name in g.tensorOrder.prefix(9) + (g.tensorOrder.count > 9 ? ["…"] : []) {
                if let t = g.tensors[name] { print("  \(name) \(t.dims) \(t.type)") } else { print("  …") }
            }
            let tokens = g.metadata["tokenizer.ggml.tokens"]?.arrayValue?.count ?? 0
            print("tokenizer: \(g.metadata["tokenizer.ggml.model"]?.stringValue ?? "?") (pre \(g.metadata["tokenizer.ggml.pre"]?.stringValue ?? "?")), \(tokens) tokens, \(g.metadata["tokenizer.ggml.merges"]?.arrayValue?.count ?? 0) merges, bos \(g.metadata["tokenizer.ggml.bos_token_id"]?.intValue ?? -1), eos \(g.metadata["tokenizer.ggml.eos_token_id"]?.intValue ?? -1), chat template: \(g.metadata["tokenizer.chat_template"] != nil ? "yes" : "no")")
            let runFormats = Array(Set(g.tensors.values.filter { $0.dims.count == 2 }.compactMap { WeightFormat(ggmlType: $0.type) }))
            Kernels.calibrate(runFormats)
            print("cpu: \(Kernels.cpuModel) [\(Kernels.cpuFlags)]")
            for line in Kernels.summary(runFormats.sorted { $0.rawValue < $1.rawValue }) { print("kernels \(line)") }
        } else {
            var options = ModelLoadOptions()
            options.checkMemory = false
            do {
                let c = try Model.config(path: path)
                print("format: HF safetensors directory")
                print("model: \(c.familyName)\(rotaryText(c))")
                print("architecture: Phi3ForCausalLM, \(c.layerCount) layers, hidden \(c.hiddenSize), FFN \(c.intermediateSize), heads \(c.headCount)/\(c.kvHeadCount) of \(c.headDim), vocabulary \(c.vocabSize), context \(c.maxPositions), rope θ \(c.ropeTheta), stored \(c.storedDType ?? "?")")
                print("parameters: \(c.parameterCount)")
                let ckpt = try SafeTensorsCheckpoint(directory: path)
                var byType: [String: Int] = [:]
                for t in ckpt.tensors.values { byType[t.dtype.rawValue, default: 0] += 1 }
                print("tensors: \(ckpt.tensors.count) (\(byType.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", ")))")
                for w in WeightType.allCases {
                    let e = MemoryEstimate(config: c, weights: w, contextLength: min(4096, c.maxPositions))
                    print("  as \(w.rawValue): \(fmt(Double(e.weightBytes) / 1e9)) GB of weights")
                }
                let tok = try Tokenizer.load(path: path)
                print("tokenizer: \(tok.bpeTokenCount) BPE tokens, \(tok.specialTokens.count) special, eos \(tok.eosTokenID.map(String.init) ?? "-"), end of generation \(tok.endOfGenerationIDs.sorted())")
            } catch {
                throw RuntimeError(error)
            }
        }
    }

    /// KV cache and scratch memory for the chosen context, next to what this machine has free.
    func printMemory(_ path: String) {
        guard let c = try? Model.config(path: path) else { return }
        let n = contextLength ?? min(4096, c.maxPositions)
        let perToken = MemoryEstimate.cacheBytes(config: c, contextLength: 1, type: .f16)
        let f16 = MemoryEstimate.cacheBytes(config: c, contextLength: n, type: .f16)
        let f32 = MemoryEstimate.cacheBytes(config: c, contextLength: n, type: .f32)
        let q8 = MemoryEstimate.cacheBytes(config: c, contextLength: n, type: .q8_0)
        let scratch = MemoryEstimate(config: c, weights: .q4_0, contextLength: 0).scratchBytes
        let limit = n > c.maxPositions ? " (more than the model's \(c.maxPositions): a context cannot be created)" : ""
        print("KV cache at \(n) positions\(limit): f16 \(fmt(Double(f16) / 1e9)) GB, f32 \(fmt(Double(f32) / 1e9)) GB, q8_0 \(fmt(Double(q8) / 1e9)) GB (\(perToken / 1024) KiB per token in f16); scratch \(fmt(Double(scratch) / 1e6)) MB")
        if let free = MemoryEstimate.availableBytes() { print("memory available now: \(fmt(Double(free) / 1e9)) GB") }
    }
}

/// The rotary facts of a configuration for `phi4 info`: partial rotary and LongRoPE when present.
private func rotaryText(_ c: ModelConfig) -> String {
    var parts: [String] = []
    if c.rotaryDim < c.headDim { parts.append("rotary over \(c.rotaryDim) of \(c.headDim) dimensions") }
    if let r = c.longRoPE { parts.append("LongRoPE from \(r.originalMaxPositions) positions, attention factor \(r.attentionFactor)") }
    if c.tieWordEmbeddings { parts.append("lm_head tied to the embedding") }
    return parts.isEmpty ? "" : " (" + parts.joined(separator: "; ") + ")"
}
