/// Phi-4 in GGUF, as llama.cpp's converter writes it (architecture `phi3`): reading a model and
/// its tokenizer, and writing one from an HF checkpoint (``GGUFExport``).
enum GGUFModel {
    /// The configuration from `phi3.*` metadata.
    static func config(_ g: GGUFFile, path: String) throws(ModelError) -> ModelConfig {
        let m = g.metadata
        let arch = m["general.architecture"]?.stringValue ?? "?"
        guard arch == "phi3" else { throw .unsupported("\(path): architecture \(arch) (only phi3, i.e. Phi-4, is implemented)") }
        func int(_ key: String) throws(ModelError) -> Int {
            guard let v = m["phi3." + key]?.intValue else { throw .invalidConfig("\(path): no integer phi3.\(key)") }
            return v
        }
        let hidden = try int("embedding_length")
        let heads = try int("attention.head_count")
        guard heads > 0, hidden % heads == 0 else { throw .invalidConfig("\(path): embedding_length is not a multiple of head_count") }
        let headDim = hidden / heads
        // Phi-4-mini: RoPE over the first rope.dimension_count dimensions, LongRoPE factors as
        // the tensors rope_factors_short/long (llama.cpp's converter).
        let rotaryDim = m["phi3.rope.dimension_count"]?.intValue ?? headDim
        var longRoPE: LongRoPE?
        let short = g.tensors["rope_factors_short.weight"], long = g.tensors["rope_factors_long.weight"]
        if short != nil || long != nil {
            func factors(_ t: GGUFTensor?, _ name: String) throws(ModelError) -> [Float] {
                guard let t, t.type == .f32, t.dims.count == 1, t.count == rotaryDim / 2, t.data.count == t.count * 4 else {
                    throw .invalidWeights("\(path): \(name) must be \(rotaryDim / 2) f32 values")
                }
                return (0..<t.count).map { Float(bitPattern: UInt32(littleEndian: t.data.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
            let context = try int("context_length")
            let original = m["phi3.rope.scaling.original_context_length"]?.intValue ?? context
            let scale = Double(context) / Double(max(1, original))
            let attention = m["phi3.rope.scaling.attn_factor"]?.doubleValue.map { Float($0) }
                ?? LongRoPE.defaultAttentionFactor(scale: scale, originalMaxPositions: original)
            longRoPE = LongRoPE(shortFactors: try factors(short, "rope_factors_short.weight"),
                                longFactors: try factors(long, "rope_factors_long.weight"),
                                originalMaxPositions: original, attentionFactor: attention)
        }
        if let w = m["phi3.attention.sliding_window"]?.intValue, w > 0, w < (m["phi3.context_length"]?.intValue ?? 0) {
            throw .unsupported("\(path): sliding window \(w) (only full causal attention is implemented)")
        }
        guard let embd = g.tensors["token_embd.weight"], embd.dims.count == 2 else { throw .missingTensor("token_embd.weight") }
        let config = ModelConfig(
            hiddenSize: hidden, intermediateSize: try int("feed_forward_length"), layerCount: try int("block_count"),
            headCount: heads, kvHeadCount: m["phi3.attention.head_count_kv"]?.intValue ?? heads, headDim: headDim,
            vocabSize: embd.dims[1], maxPositions: try int("context_length"),
            rmsNormEps: Float(m["phi3.attention.layer_norm_rms_epsilon"]?.doubleValue ?? 1e-5),
            ropeTheta: Float(m["phi3.rope.freq_base"]?.doubleValue ?? 10000),
            rotaryDim: rotaryDim, longRoPE: longRoPE,
            tieWordEmbeddings: g.tensors["output.weight"] == nil, storedDType: "gguf",
            bosTokenID: m["tokenizer.ggml.bos_token_id"]?.intValue,
            eosTokenIDs: m["tokenizer.ggml.eos_token_id"]?.intValue.map { [$0] } ?? [],
            padTokenID: m["tokenizer.ggml.padding_token_id"]?.intValue)
        try config.validate()
        return config
    }

    /// The tokenizer from `tokenizer.ggml.*` metadata: tokens (GPT-2 byte-level text), token
    /// types (1 normal; 3 control tokens are special, 4 user-defined ones are added tokens matched
    /// in every mode, as llama.cpp does), special ids.
    static func tokenizer(_ g: GGUFFile, path: String) throws(ModelError) -> Tokenizer {
        let m = g.metadata
        let model = m["tokenizer.ggml.model"]?.stringValue ?? "?"
        guard model == "gpt2" else { throw .unsupported("\(path): tokenizer model \(model) (Phi-4 uses gpt2-style BPE)") }
        let pre = m["tokenizer.ggml.pre"]?.stringValue ?? "dbrx"
        let pattern: SplitPattern
        if ["dbrx", "phi-4", "default", "gpt-4"].contains(pre) || pre.isEmpty {
            pattern = .cl100k
        } else if pre == "gpt-4o" {
            pattern = .o200k  // Phi-4-mini
        } else {
            throw .unsupported("\(path): pre-tokenizer \(pre) is neither cl100k's (Phi-4) nor o200k's (gpt-4o, Phi-4-mini)")
        }
        guard let tokens = m["tokenizer.ggml.tokens"]?.arrayValue else { throw .invalidConfig("\(path): no tokenizer.ggml.tokens") }
        let types = m["tokenizer.ggml.token_type"]?.arrayValue
        guard types == nil || types!.count == tokens.count else { throw .invalidConfig("\(path): token_type and tokens differ in length") }
        let byteOf = ByteLevelAlphabet.byteForScalar
        var ranks: [([UInt8], Int)] = []
        var specials: [SpecialToken] = []
        for (id, t) in tokens.enumerated() {
            guard let text = t.stringValue else { throw .invalidConfig("\(path): token \(id) is not a string") }
            let type = types?[id].intValue ?? 1
            if type == 3 || type == 4 {
                guard !text.isEmpty else { throw .invalidConfig("\(path): token \(id) is empty") }
                specials.append(SpecialToken(text: text, id: TokenID(id), isSpecial: type == 3))
                continue
            }
            if type == 2 || type == 5 { continue }  // unknown / unused rows ("[PAD200000]"): no token
            var bytes: [UInt8] = []
            var ok = true
            for u in text.unicodeScalars {
                guard u.value < 0x200, let b = byteOf[Int(u.value)] else { ok = false; break }
                bytes.append(b)
            }
            guard ok, !bytes.isEmpty else {
                if type == 1 { throw .invalidConfig("\(path): token \(id) is not byte-level text") }
                continue  // unused / unknown entries
            }
            ranks.append((bytes, id))
        }
        func id(_ key: String) -> TokenID? { m["tokenizer.ggml." + key]?.intValue.map { TokenID($0) } }
        do {
            return try Tokenizer(ranks: ranks, specialTokens: specials, bosTokenID: id("bos_token_id"),
                                 addsBOS: m["tokenizer.ggml.add_bos_token"]?.boolValue ?? false,
                                 eosTokenID: id("eos_token_id"), padTokenID: id("padding_token_id"), pattern: pattern)
        } catch {
            throw .tokenizer(error)
        }
    }

    /// Loads a Phi-4 GGUF: tensors of every quantized type the kernels run (``WeightFormat``: Q8_0,
    /// Q4_0, Q4_1, Q5_0, Q5_1, Q2_K … Q6_K, IQ4_NL, IQ4_XS) are used in place from the mapping, F32
    /// too when aligned; F16 / BF16 are widened to f32 (or quantized to `type`).
    static func load(path: String, options: ModelLoadOptions) throws(ModelError) -> Model {
        let g = try GGUFFile(path: path)
        let c = try config(g, path: path)
        if options.checkMemory {
            // Q8_0 / Q4_0 tensors stay in the file mapping (page cache the kernel can evict and
            // re-read: a file larger than RAM still loads); only converted tensors take memory.
            var converted = 0
            for t in g.tensors.values where WeightFormat(ggmlType: t.type) == nil {
                let n = t.dims.reduce(1, *)
                converted += options.weightType == .f32 || t.dims.count < 2 ? n * 4 : WeightFormat.q8_0.rowBytes(n)
            }
            let plan = MemoryEstimate(config: c, weights: .q4_0, contextLength: min(options.plannedContextLength, c.maxPositions))
            try MemoryEstimate(weightBytes: converted, cacheBytes: plan.cacheBytes, scratchBytes: plan.scratchBytes,
                               weightType: options.weightType).check()
        }
        let tok = try tokenizer(g, path: path)
        func tensor(_ name: String, _ dims: [Int]) throws(ModelError) -> GGUFTensor {
            guard let t = g.tensors[name] else { throw .missingTensor(name) }
            guard t.dims == dims else { throw .shapeMismatch("\(name) has dims \(t.dims), the config implies \(dims)") }
            return t
        }
        func matrix(_ name: String, _ rows: Int, _ cols: Int, _ role: WeightType.Role, layer: Int = 0) throws(ModelError) -> WeightMatrix {
            let t = try tensor(name, [cols, rows])
            if let format = WeightFormat(ggmlType: t.type), format != .f32 {
                return WeightMatrix(rows: rows, cols: cols, format: format, mapped: t.data.baseAddress!, owner: t.file)
            }
            // F32 (unaligned), F16, BF16: widened, or quantized to the asked-for type.
            let info = TensorInfo(name: name, dtype: t.type == .f32 ? .f32 : (t.type == .f16 ? .f16 : .bf16),
                                  shape: [rows, cols], data: t.data, file: t.file)
            let m = try WeightMatrix.load(info, rows: rows, cols: cols, format: options.weightType.format(for: role, layer: layer, of: c.layerCount))
            done += 1
            options.progress?(done, total)
            return m
        }
        func vector(_ name: String, _ n: Int) throws(ModelError) -> [Float] {
            let t = try tensor(name, [n])
            guard t.type == .f32 || t.type == .f16 || t.type == .bf16 else { throw .invalidWeights("\(name) is \(t.type), expected a float type") }
            let info = TensorInfo(name: name, dtype: t.type == .f32 ? .f32 : (t.type == .f16 ? .f16 : .bf16), shape: [n], data: t.data, file: t.file)
            return [Float](unsafeUninitializedCapacity: n) { buf, count in
                convertToFloat(info, buf.baseAddress!, count: n)
                count = n
            }
        }
        var done = 0
        let total = 1 + 4 * c.layerCount + (g.tensors["output.weight"] == nil ? 0 : 1)
        // Without output.weight the output projection is the embedding, stored in lm_head's format.
        let tied = g.tensors["output.weight"] == nil
        let weights = try ModelWeights.build(config: c, tied: tied,
                                             matrix: { (t, rows, cols, role) throws(ModelError) in try matrix(t.ggufName, rows, cols, role, layer: t.layer) },
                                             vector: { (t, n) throws(ModelError) in try vector(t.ggufName, n) })
        var source = FNV1a()
        source.add(Int64(g.files.reduce(0) { $0 + $1.bytes.count }))
        for name in g.tensorOrder {
            let t = g.tensors[name]!
            source.addTensor(name: name, type: t.type.displayName, shape: t.dims, data: t.data)
        }
        return try Model(config: c, tokenizer: tok, weights: weights, source: source.value)
    }
}

import CPhi4Kernels
