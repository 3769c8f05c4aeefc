import CPhi4Kernels

/// Writes an HF Phi-4 checkpoint as a GGUF file in the layout llama.cpp's converter uses
/// (architecture `phi3`, its tensor names and tokenizer metadata), quantizing tensor by tensor
/// from the memory-mapped shards: peak memory stays a few row slices, whatever the model size.
public enum GGUFExport {
    /// Output tensor types: one type for every matrix, or one of llama.cpp's mixes.
    public enum FileType: String, Sendable, CaseIterable {
        case f32, f16, q8_0, q4_0
        case q4_0Mixed = "q4_0-mixed"
        /// llama.cpp's Q4_K_M recipe: Q4_K, with the output matrix and, in half of the layers
        /// (``WeightType/usesMoreBits(layer:of:)``), attn_qkv and ffn_down in Q6_K.
        case q4_K_M = "q4_k_m"
        /// llama.cpp's Q5_K_M recipe: the same with Q5_K as the base type.
        case q5_K_M = "q5_k_m"
        /// Every matrix Q6_K.
        case q6_K = "q6_k"
        /// llama.cpp's low-bit mixes, as its `llama-quantize` (the pinned build) lays them out
        /// without an importance matrix. libphi4 reads and runs them; it does not quantize to them
        /// yet (``writable``): `phi4 dev random-model` writes them with random blocks.
        case q2_K = "q2_k", q3_K_M = "q3_k_m", iq4_XS = "iq4_xs", iq4_NL = "iq4_nl", q4_1 = "q4_1", q5_0 = "q5_0", q5_1 = "q5_1"

        /// Whether `phi4 quantize` can write this type (it has a quantizer for every tensor type).
        public var writable: Bool { ![.q2_K, .q3_K_M, .iq4_XS, .iq4_NL, .q4_1, .q5_0, .q5_1].contains(self) }

        /// llama.cpp's `general.file_type` code.
        var code: UInt32 {
            switch self {
            case .f32: return 0
            case .f16: return 1
            case .q4_0, .q4_0Mixed: return 2
            case .q8_0: return 7
            case .q4_K_M: return 15
            case .q5_K_M: return 17
            case .q6_K: return 18
            case .q2_K: return 10
            case .q3_K_M: return 12
            case .iq4_XS: return 30
            case .iq4_NL: return 25
            case .q4_1: return 3
            case .q5_0: return 8
            case .q5_1: return 9
            }
        }

        /// The GGML type of the matrix `name` (a GGUF tensor name) of `cols` columns in `role`,
        /// in layer `layer` of `layers`.
        func type(for role: WeightType.Role, cols: Int, layer: Int, layers: Int, gqa: Int = 4) -> GGMLType {
            let q: GGMLType
            // llama.cpp counts the fused attn_qkv as its attn_v: both it and ffn_down get Q6_K
            // in the layers that use more bits.
            let moreBits = (role == .down || role == .qkv) && WeightType.usesMoreBits(layer: layer, of: layers)
            switch self {
            case .f32: return .f32
            case .f16: return .f16
            case .q8_0: q = .q8_0
            case .q4_0: q = .q4_0
            case .q4_0Mixed: q = role == .down || role == .lmHead ? .q8_0 : .q4_0
            case .q4_K_M: q = role == .lmHead || moreBits ? .q6_K : .q4_K
            case .q5_K_M: q = role == .lmHead || moreBits ? .q6_K : .q5_K
            case .q6_K: q = .q6_K
            // llama-quantize's choices for Phi-4 (fused attn_qkv counts as attn_v; n_gqa ≥ 4 where
            // heads / KV heads ≥ 4, as in Phi-4 and Phi-4-mini), no importance matrix.
            case .q2_K:
                switch role {
                case .lmHead: q = .q6_K
                case .qkv: q = gqa >= 4 ? .q4_K : .q3_K
                case .down, .attention: q = .q3_K
                default: q = .q2_K
                }
            case .q3_K_M:
                switch role {
                case .lmHead: q = .q6_K
                case .qkv: q = layer < 2 ? .q5_K : .q4_K
                case .attention: q = .q4_K
                case .down: q = layer < layers / 16 ? .q5_K : .q4_K
                default: q = .q3_K
                }
            case .iq4_XS, .iq4_NL:
                let base: GGMLType = self == .iq4_XS ? .iq4_XS : .iq4_NL
                switch role {
                case .lmHead: q = .q6_K
                case .qkv: q = gqa >= 4 ? .q5_K : base
                case .down: q = layer < layers / 8 ? .q5_K : base
                default: q = base
                }
            case .q4_1, .q5_0, .q5_1:
                q = role == .lmHead ? .q6_K : (self == .q4_1 ? .q4_1 : self == .q5_0 ? .q5_0 : .q5_1)
            }
            if q.block.elements == 256 && cols % 256 != 0 {
                // llama.cpp's fallbacks for rows that are not whole super-blocks.
                let fallback: GGMLType
                switch q {
                case .q4_K: fallback = .q5_0
                case .q5_K: fallback = .q5_1
                case .q2_K, .q3_K: fallback = .q4_0
                case .iq4_XS: fallback = .iq4_NL
                default: fallback = .q8_0
                }
                return cols % 32 == 0 ? fallback : .f16
            }
            return cols % 32 == 0 ? q : .f16  // rows that are not whole blocks stay f16, as in llama.cpp
        }
    }

    /// Refuses the types `phi4 quantize` cannot write yet.
    static func requireWritable(_ type: FileType) throws(ModelError) {
        guard type.writable else {
            throw .unsupported("phi4 quantize cannot write \(type.rawValue) files yet (libphi4 reads and runs them; llama-quantize writes them)")
        }
    }

    /// Converts `directory` to `output`. `progress(done, total, tensorName, typeName)` is called
    /// before each tensor. Returns the tensors written with their types.
    @discardableResult
    public static func write(hfDirectory directory: String, type: FileType, output: String,
                             progress: @escaping (Int, Int, String, String) -> Void = { _, _, _, _ in }) throws -> [(String, String)] {
        try requireWritable(type)
        let configJSON = try JSONParser.parse(try FileIO.readAll(FileIO.join(directory, "config.json"), limit: 1 << 24))
        let c = try ModelConfig.parse(configJSON)
        let tok = try Tokenizer.load(path: directory)
        let checkpoint = try SafeTensorsCheckpoint(directory: directory)
        var w = GGUFWriter()
        addPhi3Metadata(c, name: directory.split(separator: "/").last.map(String.init) ?? "phi-4", fileType: type, to: &w)
        try addTokenizer(tok, vocabSize: c.vocabSize, directory: directory, to: &w)

        // Tensors in llama.cpp's order. A tied output projection is not written: llama.cpp then
        // uses token_embd, and its quantizer gives token_embd the output's type.
        let tied = c.tieWordEmbeddings && checkpoint.tensors["lm_head.weight"] == nil
        let plan = ModelTensor.all(c, tied: tied).map { t in
            let s = t.shape(c)
            return (hf: t.hfName, gguf: t.ggufName, rows: s.count == 2 ? s[0] : 1, cols: s.last!, role: t.role(tied: tied), layer: t.layer)
        }
        var written: [(String, String)] = c.longRoPE == nil ? [] : [("rope_factors_long.weight", "\(GGMLType.f32)"),
                                                                     ("rope_factors_short.weight", "\(GGMLType.f32)")]
        addRopeFactors(c, to: &w)
        for (index, item) in plan.enumerated() {
            guard let t = checkpoint.tensors[item.hf] else { throw ModelError.missingTensor(item.hf) }
            let shape = item.role == nil ? [item.cols] : [item.rows, item.cols]
            guard t.shape == shape else { throw ModelError.shapeMismatch("\(item.hf) has shape \(t.shape), the config implies \(shape)") }
            let name = item.gguf
            let ggml = item.role.map { type.type(for: $0, cols: item.cols, layer: item.layer, layers: c.layerCount, gqa: c.headCount / c.kvHeadCount) } ?? .f32
            written.append((name, "\(ggml)"))
            let dims = item.role == nil ? [item.cols] : [item.cols, item.rows]
            let total = plan.count
            w.tensors.append(GGUFWriter.Tensor(name: name, dims: dims, type: ggml) { sink in
                progress(index, total, name, "\(ggml)")
                try writeRows(t, rows: item.rows, cols: item.cols, type: ggml, sink: sink)
            })
        }
        try w.write(path: output)
        progress(plan.count, plan.count, "", "")
        return written
    }

    /// Converts the GGUF file `input` (a Phi-4 family file whose matrices are F32, F16 or BF16,
    /// such as Microsoft's `phi-4-fp16.gguf`) to `output` with `type`'s tensor types, tensor by
    /// tensor from the mapping: every metadata entry is kept (`general.file_type` updated), norms
    /// and LongRoPE factors stay as stored, and each source tensor's pages leave the resident set
    /// once converted, so peak memory stays a few row slices whatever the file's size. Matrices
    /// already quantized are refused unless `allowRequantize` (quantizing twice loses precision:
    /// convert from the float file); with it they are dequantized and written in the new type.
    /// `progress(done, total, tensorName, typeName)` is called before each tensor.
    @discardableResult
    public static func write(ggufFile input: String, type: FileType, output: String, allowRequantize: Bool = false,
                             progress: @escaping (Int, Int, String, String) -> Void = { _, _, _, _ in }) throws -> [(String, String)] {
        try requireWritable(type)
        let g = try GGUFFile(path: input)
        let c = try GGUFModel.config(g, path: input)
        guard !FileIO.sameFile(input, output) else {
            throw ModelError.io("\(output): the output would overwrite the input")
        }
        var w = GGUFWriter()
        for key in g.metadataOrder {
            var value = g.metadata[key]!
            if key == "general.file_type" { value = .uint32(type.code) }
            if key == "general.alignment" { continue }  // the writer's own alignment
            w.metadata.append((key, value))
        }
        if g.metadata["general.file_type"] == nil { w.metadata.append(("general.file_type", .uint32(type.code))) }
        let tied = g.tensors["output.weight"] == nil
        var written: [(String, String)] = []
        let total = g.tensorOrder.count
        for (index, name) in g.tensorOrder.enumerated() {
            let t = g.tensors[name]!
            let role = ggufRole(name, tied: tied)
            let layer = name.hasPrefix("blk.") ? Int(name.split(separator: ".")[1]) ?? 0 : 0
            var target = t.type
            if let role, t.dims.count == 2 {
                target = type.type(for: role, cols: t.dims[0], layer: layer, layers: c.layerCount, gqa: c.headCount / c.kvHeadCount)
                guard [.f32, .f16, .bf16].contains(t.type) || target == t.type || allowRequantize else {
                    throw ModelError.unsupported("\(input): \(name) is already \(t.type.displayName); quantize from a float (F32, F16, BF16) file, or allow requantizing")
                }
            }
            written.append((name, "\(target)"))
            let rows = t.dims.dropFirst().reduce(1, *)
            let cols = t.dims[0]
            let ggml = target
            w.tensors.append(GGUFWriter.Tensor(name: name, dims: t.dims, type: ggml) { sink in
                progress(index, total, name, "\(ggml)")
                if ggml == t.type {
                    try sink(t.data)
                    if let base = t.data.baseAddress { p4k_advise_done(base, t.data.count) }
                } else if ![.f32, .f16, .bf16].contains(t.type) {
                    try requantizeRows(t, rows: rows, cols: cols, type: ggml, sink: sink)
                } else {
                    let info = TensorInfo(name: name, dtype: t.type == .f32 ? .f32 : (t.type == .f16 ? .f16 : .bf16),
                                          shape: [rows, cols], data: t.data, file: t.file)
                    try writeRows(info, rows: rows, cols: cols, type: ggml, sink: sink)
                }
            })
        }
        try w.write(path: output)
        progress(total, total, "", "")
        return written
    }

    /// Dequantizes a quantized GGUF tensor a slice of rows at a time and hands the rows encoded
    /// as `type` to `sink`.
    static func requantizeRows(_ t: GGUFTensor, rows: Int, cols: Int, type: GGMLType,
                               sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let base = t.data.baseAddress else { return }
        let slice = max(1, min(rows, (1 << 22) / max(cols, 1)))
        let f = UnsafeMutablePointer<Float>.allocate(capacity: slice * cols)
        defer { f.deallocate() }
        let srcRow = cols / t.type.block.elements * t.type.block.bytes
        let rowBytes = cols / type.block.elements * type.block.bytes
        let out = UnsafeMutableRawPointer.allocate(byteCount: slice * rowBytes, alignment: 64)
        defer { out.deallocate() }
        var r = 0
        while r < rows {
            let n = min(slice, rows - r)
            let src = base + r * srcRow
            guard let dequantize = t.type.info.dequantize else { throw ModelError.unsupported("requantizing a float tensor") }
            dequantize(src, f, n * cols)
            try encodeRows(f, rows: n, cols: cols, type: type, into: out)
            try sink(UnsafeRawBufferPointer(start: out, count: n * rowBytes))
            p4k_advise_done(src, n * srcRow)
            r += n
        }
    }

    /// The role of a Phi-4 GGUF matrix by its name (nil for norms, rotary factors and anything
    /// else that stays as stored); with `tied`, token_embd is also the output projection.
    static func ggufRole(_ name: String, tied: Bool) -> WeightType.Role? {
        if name == "token_embd.weight" { return tied ? .lmHead : .embedding }
        if name == "output.weight" { return .lmHead }
        guard name.hasPrefix("blk.") else { return nil }
        if name.hasSuffix(".attn_qkv.weight") { return .qkv }
        if name.hasSuffix(".attn_output.weight") { return .attention }
        if name.hasSuffix(".ffn_up.weight") { return .gateUp }
        if name.hasSuffix(".ffn_down.weight") { return .down }
        return nil
    }

    /// LongRoPE's factors as llama.cpp's converter writes them: the f32 tensors
    /// `rope_factors_long.weight` and `rope_factors_short.weight` (nothing without LongRoPE).
    static func addRopeFactors(_ c: ModelConfig, to w: inout GGUFWriter) {
        guard let r = c.longRoPE else { return }
        for (name, values) in [("rope_factors_long.weight", r.longFactors), ("rope_factors_short.weight", r.shortFactors)] {
            w.tensors.append(GGUFWriter.Tensor(name: name, dims: [values.count], type: .f32) { sink in
                try values.withUnsafeBytes { try sink($0) }
            })
        }
    }

    /// Converts a tensor a slice of rows at a time and hands the bytes to `sink`.
    static func writeRows(_ t: TensorInfo, rows: Int, cols: Int, type: GGMLType,
                          sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let slice = max(1, min(rows, (1 << 22) / max(cols, 1)))
        let f = UnsafeMutablePointer<Float>.allocate(capacity: slice * cols)
        defer { f.deallocate() }
        let rowBytes = cols / type.block.elements * type.block.bytes
        let out = UnsafeMutableRawPointer.allocate(byteCount: slice * rowBytes, alignment: 64)
        defer { out.deallocate() }
        var r = 0
        while r < rows {
            let n = min(slice, rows - r)
            convertToFloatRows(t, cols: cols, rows: r..<(r + n), into: f)
            try encodeRows(f, rows: n, cols: cols, type: type, into: out)
            try sink(UnsafeRawBufferPointer(start: out, count: n * rowBytes))
            // The source rows are done: let them leave the resident set.
            if let base = t.data.baseAddress {
                let bytesPerElement = t.dtype.size
                p4k_advise_done(base + r * cols * bytesPerElement, n * cols * bytesPerElement)
            }
            r += n
        }
    }

    /// Adds the `general.*` and `phi3.*` metadata llama.cpp's converter writes for a Phi-4 shape.
    static func addPhi3Metadata(_ c: ModelConfig, name: String, fileType: FileType, to w: inout GGUFWriter) {
        func meta(_ k: String, _ v: GGUFValue) { w.metadata.append((k, v)) }
        meta("general.architecture", .string("phi3"))
        meta("general.name", .string(name))
        meta("general.file_type", .uint32(fileType.code))
        meta("general.quantization_version", .uint32(2))
        meta("phi3.context_length", .uint32(UInt32(c.maxPositions)))
        meta("phi3.rope.scaling.original_context_length", .uint32(UInt32(c.longRoPE?.originalMaxPositions ?? c.maxPositions)))
        if let r = c.longRoPE { meta("phi3.rope.scaling.attn_factor", .float32(r.attentionFactor)) }
        meta("phi3.embedding_length", .uint32(UInt32(c.hiddenSize)))
        meta("phi3.feed_forward_length", .uint32(UInt32(c.intermediateSize)))
        meta("phi3.block_count", .uint32(UInt32(c.layerCount)))
        meta("phi3.attention.head_count", .uint32(UInt32(c.headCount)))
        meta("phi3.attention.head_count_kv", .uint32(UInt32(c.kvHeadCount)))
        meta("phi3.attention.layer_norm_rms_epsilon", .float32(c.rmsNormEps))
        meta("phi3.rope.dimension_count", .uint32(UInt32(c.rotaryDim)))
        meta("phi3.rope.freq_base", .float32(c.ropeTheta))
        meta("phi3.attention.sliding_window", .uint32(0))
    }

    /// Encodes `rows` f32 rows of `cols` values as GGML `type` into `out`.
    static func encodeRows(_ f: UnsafePointer<Float>, rows n: Int, cols: Int, type: GGMLType,
                           into out: UnsafeMutableRawPointer) throws {
        let rowBytes = cols / type.block.elements * type.block.bytes
        switch type {
        case .f32: out.copyMemory(from: f, byteCount: n * cols * 4)
        case .f16: p4k_f32_to_f16(f, out.assumingMemoryBound(to: UInt16.self), n * cols)
        case _ where type.info.quantize != nil && type.block.elements == 256:
            // llama.cpp's search per sub-block is slow (~0.1 µs a value): rows go to the pool.
            let quantize = type.info.quantize!
            let dst = UnsafeMutableRawPointer(out)
            ThreadPool.shared.parallelFor(n, threads: ThreadPool.shared.threadCount) { r in
                for i in r { quantize(f + i * cols, dst + i * rowBytes, cols) }
            }
        case _ where type.info.quantize != nil:
            let quantize = type.info.quantize!
            for i in 0..<n { quantize(f + i * cols, out + i * rowBytes, cols) }
        default: throw ModelError.unsupported("writing \(type.displayName) tensors")
        }
    }

    /// Adds `tokenizer.ggml.*` metadata: GPT-2 byte-level token texts, token types, merges
    /// (derived from the ranks), special ids and Phi-4's chat template.
    static func addTokenizer(_ tok: Tokenizer, vocabSize: Int, directory: String, to w: inout GGUFWriter) throws {
        let alphabet = ByteLevelAlphabet.scalarForByte
        func text(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
            var s = String.UnicodeScalarView()
            for b in bytes { s.append(Unicode.Scalar(alphabet[Int(b)])!) }
            return String(s)
        }
        var tokens: [GGUFValue] = []
        var types: [GGUFValue] = []
        var rankBytes: [(Int, [UInt8])] = []
        for id in 0..<vocabSize {
            if let added = tok.addedToken(TokenID(id)) {
                // Control (special) or user-defined (always matched), as llama.cpp's converter writes them.
                tokens.append(.string(added.text))
                types.append(.int32(added.isSpecial ? 3 : 4))
            } else if let b = tok.vocabulary.bytes(of: id) {
                tokens.append(.string(text(b)))
                types.append(.int32(1))
                if b.count > 1 { rankBytes.append((id, Array(b))) }
            } else {
                tokens.append(.string("[PAD\(id)]"))
                types.append(.int32(5))
            }
        }
        // Merges: the pair each multi-byte token is made of under BPE with lower ranks only.
        var merges: [GGUFValue] = []
        for (rank, bytes) in rankBytes {
            guard let (a, b) = tok.vocabulary.lastMerge(bytes, below: Int32(rank)) else { continue }
            merges.append(.string(a.withUnsafeBufferPointer(text) + " " + b.withUnsafeBufferPointer(text)))
        }
        w.metadata.append(("tokenizer.ggml.model", .string("gpt2")))
        w.metadata.append(("tokenizer.ggml.pre", .string(tok.pattern == .o200k ? "gpt-4o" : "dbrx")))
        w.metadata.append(("tokenizer.ggml.tokens", .array(8, tokens)))
        w.metadata.append(("tokenizer.ggml.token_type", .array(5, types)))
        w.metadata.append(("tokenizer.ggml.merges", .array(8, merges)))
        if let b = tok.bosTokenID { w.metadata.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(b)))) }
        if let e = tok.eosTokenID { w.metadata.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(e)))) }
        if let p = tok.padTokenID { w.metadata.append(("tokenizer.ggml.padding_token_id", .uint32(UInt32(p)))) }
        w.metadata.append(("tokenizer.ggml.add_bos_token", .bool(tok.addsBOS)))
        var template = tok.chatFormat == .phi4Mini
            ? "{% for message in messages %}{{'<|' + message['role'] + '|>' + message['content'] + '<|end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
            : "{% for message in messages %}{{'<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + '<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}"
        if let cfg = try? JSONParser.parse(FileIO.readAll(FileIO.join(directory, "tokenizer_config.json"), limit: 1 << 24)),
           let t = cfg["chat_template"]?.stringValue {
            template = t
        }
        w.metadata.append(("tokenizer.chat_template", .string(template)))
    }
}

extension BytePairVocabulary {
    /// The two parts that byte-pair encoding with ranks below `limit` leaves of `bytes` (the
    /// merge that creates the token), or nil when it does not end in exactly two parts.
    func lastMerge(_ bytes: [UInt8], below limit: Int32) -> ([UInt8], [UInt8])? {
        var parts = bytes.map { [$0] }
        while parts.count > 2 {
            var best: (Int32, Int)?
            for i in 0..<(parts.count - 1) {
                let joined = parts[i] + parts[i + 1]
                let r = joined.withUnsafeBufferPointer { rankOf($0.baseAddress!, joined.count) }
                if r >= 0 && r < limit && (best == nil || r < best!.0) { best = (r, i) }
            }
            guard let (_, i) = best else { return nil }
            parts[i] += parts[i + 1]
            parts.remove(at: i + 1)
        }
        return parts.count == 2 ? (parts[0], parts[1]) : nil
    }
}
