import CPhi4Kernels

/// Writes an HF Phi-4 checkpoint as a GGUF file in the layout llama.cpp's converter uses
/// (architecture `phi3`, its tensor names and tokenizer metadata), quantizing tensor by tensor
/// from the memory-mapped shards: peak memory stays a few row slices, whatever the model size.
public enum GGUFExport {
    /// Refuses the types `phi4 quantize` cannot write yet.
    static func requireWritable(_ type: FileType) throws(ModelError) {
        guard type.writable else {
            throw .unsupported("phi4 quantize cannot write \(type.rawValue) files yet (libphi4 reads and runs them; llama-quantize writes them)")
        }
    }

    /// What `phi4 quantize` may be told beside the file type, as `llama-quantize` is.
    public struct Options: Sendable {
        /// The token embedding's and output projection's types, when not the mix's.
        public var choices = TypeChoices()
        /// An importance matrix (``ImportanceMatrix``) to weigh the rounding errors with.
        public var importance: ImportanceMatrix?
        /// The importance matrix's path as given, recorded in the file (`quantize.imatrix.file`).
        public var importancePath = ""
        /// Accept GGUF input whose matrices are already quantized (they are dequantized first).
        public var allowRequantize = false

        /// The mix's choices, no importance matrix.
        public init() {}
    }

    /// Converts `directory` to `output`. `progress(done, total, tensorName, typeName)` is called
    /// before each tensor. Returns the tensors written with their types. F32 and F16 files are
    /// laid out as llama.cpp's converter writes them; quantized ones as `llama-quantize` writes
    /// its output from that converter's file (tensors outside the layers first, then layer by
    /// layer by name; `general.quantization_version` and `general.file_type` last), so that the
    /// two files can be compared byte for byte.
    @discardableResult
    public static func write(hfDirectory directory: String, type: FileType, output: String, options: Options = Options(),
                             progress: @escaping (Int, Int, String, String) -> Void = { _, _, _, _ in }) throws -> [(String, String)] {
        try requireWritable(type)
        let configJSON = try JSONParser.parse(try FileIO.readAll(FileIO.join(directory, "config.json"), limit: 1 << 24))
        let c = try ModelConfig.parse(configJSON)
        let tok = try Tokenizer.load(path: directory)
        let checkpoint = try SafeTensorsCheckpoint(directory: directory)
        var w = GGUFWriter()
        addPhi3Metadata(c, name: directory.split(separator: "/").last.map(String.init) ?? "phi-4", fileType: type, to: &w)
        try addTokenizer(tok, vocabSize: c.vocabSize, directory: directory, to: &w)
        let quantizeLayout = type != .f32 && type != .f16
        if quantizeLayout {
            w.metadata.removeAll { $0.0 == "general.file_type" || $0.0 == "general.quantization_version" }
            w.metadata += [("general.quantization_version", .uint32(2)), ("general.file_type", .uint32(type.code))]
            addImportanceMetadata(options, to: &w)
        }

        // A tied output projection is not written: llama.cpp then uses token_embd, and its
        // quantizer gives token_embd the output's type.
        let tied = c.tieWordEmbeddings && checkpoint.tensors["lm_head.weight"] == nil
        var plan = ModelTensor.all(c, tied: tied).map { t in
            let s = t.shape(c)
            return (hf: t.hfName, gguf: t.ggufName, rows: s.count == 2 ? s[0] : 1, cols: s.last!, isMatrix: t.role(tied: tied) != nil, layer: t.layer)
        }
        addRopeFactors(c, to: &w)
        if quantizeLayout { plan.sort { llamaOrder($0.gguf, $1.gguf) } }
        var written: [(String, String)] = w.tensors.map { ($0.name, "\(GGMLType.f32)") }
        for (index, item) in plan.enumerated() {
            guard let t = checkpoint.tensors[item.hf] else { throw ModelError.missingTensor(item.hf) }
            let shape = item.isMatrix ? [item.rows, item.cols] : [item.cols]
            guard t.shape == shape else { throw ModelError.shapeMismatch("\(item.hf) has shape \(t.shape), the config implies \(shape)") }
            let name = item.gguf
            let dims = item.isMatrix ? [item.cols, item.rows] : [item.cols]
            let ggml = item.isMatrix
                ? try targetType(name: name, dims: dims, type: type, layers: c.layerCount, gqa: c.headCount / c.kvHeadCount,
                                 tied: tied, options: options)
                : .f32
            let weights = try importanceWeights(name: name, cols: item.cols, target: ggml, type: type, options: options)
            written.append((name, "\(ggml)"))
            let total = plan.count
            w.tensors.append(GGUFWriter.Tensor(name: name, dims: dims, type: ggml) { sink in
                progress(index, total, name, "\(ggml)")
                try writeRows(t, rows: item.rows, cols: item.cols, type: ggml, importance: weights, sink: sink)
            })
        }
        if quantizeLayout { w.tensors.sort { llamaOrder($0.name, $1.name) } }
        try w.write(path: output)
        progress(plan.count, plan.count, "", "")
        return written
    }

    /// The type `llama-quantize` gives the matrix `name` (GGML `dims`) in a `type` file.
    static func targetType(name: String, dims: [Int], type: FileType, layers: Int, gqa: Int, tied: Bool,
                           options: Options) throws(ModelError) -> GGMLType {
        var category = TensorCategory(name: name)
        if tied && category == .tokenEmbedding {
            if let t = options.choices.tokenEmbedding { return t }
            category = .output  // a tied embedding is also the output projection
        }
        let layer = name.hasPrefix("blk.") ? Int(name.split(separator: ".")[1]) ?? 0 : 0
        let t = type.type(category: category, cols: dims[0], layer: layer, layers: layers, gqa: gqa, choices: options.choices)
        guard t.info.quantize != nil || !t.isQuantized else {
            throw .unsupported("\(name) would be \(t.displayName), which phi4 quantize cannot write yet")
        }
        return t
    }

    /// The importance matrix's weights for `name`, checked as llama.cpp checks them: a type that
    /// needs them and has none is refused, and a size that is not the row's is an error.
    static func importanceWeights(name: String, cols: Int, target: GGMLType, type: FileType,
                                  options: Options) throws(ModelError) -> [Float]? {
        let category = TensorCategory(name: name)
        let weights = options.importance?.weights(for: name)
        if let weights, weights.count != cols {
            if category == .tokenEmbedding { return nil }
            throw .invalidRequest("the importance matrix has \(weights.count) values for \(name), whose rows have \(cols)")
        }
        if weights == nil && type.requiresImportance(category, target) {
            throw .invalidRequest("\(type.rawValue) needs an importance matrix for \(name) (\(target.displayName)): make one with `phi4 imatrix --model M --text FILE --out imatrix.gguf` and pass --imatrix imatrix.gguf")
        }
        return weights
    }

    /// The `quantize.imatrix.*` entries `llama-quantize` records when given an importance matrix.
    static func addImportanceMetadata(_ options: Options, to w: inout GGUFWriter) {
        guard let m = options.importance else { return }
        func cut(_ s: String) -> String { String(decoding: s.utf8.prefix(127), as: UTF8.self) }
        w.metadata.append(("quantize.imatrix.file", .string(cut(options.importancePath))))
        if let d = m.datasets.first { w.metadata.append(("quantize.imatrix.dataset", .string(cut(d)))) }
        w.metadata.append(("quantize.imatrix.entries_count", .uint32(UInt32(m.entries.count))))
        if m.chunkCount > 0 { w.metadata.append(("quantize.imatrix.chunks_count", .uint32(UInt32(m.chunkCount)))) }
    }

    /// Converts the GGUF file `input` (a Phi-4 family file whose matrices are F32, F16 or BF16,
    /// such as Microsoft's `phi-4-fp16.gguf`) to `output` with `type`'s tensor types, as
    /// `llama-quantize` does — the same tensor types, order, metadata and (for every type
    /// `phi4 quantize` writes) the same bytes — tensor by tensor from the mapping: norms and
    /// LongRoPE factors stay as stored, and each source tensor's pages leave the resident set once
    /// converted, so peak memory stays a few row slices whatever the file's size. Matrices already
    /// quantized are refused unless `options.allowRequantize` (quantizing twice loses precision:
    /// convert from the float file); with it they are dequantized and written in the new type.
    /// `progress(done, total, tensorName, typeName)` is called before each tensor.
    @discardableResult
    public static func write(ggufFile input: String, type: FileType, output: String, options: Options = Options(),
                             progress: @escaping (Int, Int, String, String) -> Void = { _, _, _, _ in }) throws -> [(String, String)] {
        try requireWritable(type)
        let g = try GGUFFile(path: input)
        let c = try GGUFModel.config(g, path: input)
        guard !FileIO.sameFile(input, output) else {
            throw ModelError.io("\(output): the output would overwrite the input")
        }
        var w = GGUFWriter()
        let dropped: Set<String> = ["general.file_type", "general.quantization_version", "split.no", "split.count", "split.tensors.count"]
        for key in g.metadataOrder where !dropped.contains(key) {
            // The writer aligns to 32 bytes, the default; another alignment is not kept.
            if key == "general.alignment" && g.metadata[key] != .uint32(32) { continue }
            w.metadata.append((key, g.metadata[key]!))
        }
        w.metadata += [("general.quantization_version", .uint32(2)), ("general.file_type", .uint32(type.code))]
        addImportanceMetadata(options, to: &w)
        let tied = g.tensors["output.weight"] == nil
        var written: [(String, String)] = []
        let order = g.tensorOrder.sorted(by: llamaOrder)
        let total = order.count
        for (index, name) in order.enumerated() {
            let t = g.tensors[name]!
            var target = t.type
            var weights: [Float]?
            if quantizable(name: name, dims: t.dims) {
                target = try targetType(name: name, dims: t.dims, type: type, layers: c.layerCount, gqa: c.headCount / c.kvHeadCount,
                                        tied: tied, options: options)
                if target != t.type {
                    weights = try importanceWeights(name: name, cols: t.dims[0], target: target, type: type, options: options)
                    guard !t.type.isQuantized || options.allowRequantize else {
                        throw ModelError.unsupported("\(input): \(name) is already \(t.type.displayName); quantize from a float (F32, F16, BF16) file, or allow requantizing")
                    }
                }
            }
            written.append((name, "\(target)"))
            let rows = t.dims.dropFirst().reduce(1, *)
            let cols = t.dims[0]
            let ggml = target
            let importance = weights
            w.tensors.append(GGUFWriter.Tensor(name: name, dims: t.dims, type: ggml) { sink in
                progress(index, total, name, "\(ggml)")
                if ggml == t.type {
                    try sink(t.data)
                    if let base = t.data.baseAddress { p4k_advise_done(base, t.data.count) }
                } else if t.type.isQuantized {
                    try requantizeRows(t, rows: rows, cols: cols, type: ggml, importance: importance, sink: sink)
                } else {
                    let info = TensorInfo(name: name, dtype: t.type == .f32 ? .f32 : (t.type == .f16 ? .f16 : .bf16),
                                          shape: [rows, cols], data: t.data, file: t.file)
                    try writeRows(info, rows: rows, cols: cols, type: ggml, importance: importance, sink: sink)
                }
            })
        }
        try w.write(path: output)
        progress(total, total, "", "")
        return written
    }

    /// ``write(ggufFile:type:output:options:progress:)`` with the mix's choices and no importance
    /// matrix.
    @discardableResult
    public static func write(ggufFile input: String, type: FileType, output: String, allowRequantize: Bool,
                             progress: @escaping (Int, Int, String, String) -> Void = { _, _, _, _ in }) throws -> [(String, String)] {
        var options = Options()
        options.allowRequantize = allowRequantize
        return try write(ggufFile: input, type: type, output: output, options: options, progress: progress)
    }

    /// Dequantizes a quantized GGUF tensor a slice of rows at a time and hands the rows encoded
    /// as `type` to `sink`.
    static func requantizeRows(_ t: GGUFTensor, rows: Int, cols: Int, type: GGMLType, importance: [Float]? = nil,
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
            try encodeRows(f, rows: n, cols: cols, type: type, importance: importance, into: out)
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
    static func writeRows(_ t: TensorInfo, rows: Int, cols: Int, type: GGMLType, importance: [Float]? = nil,
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
            try encodeRows(f, rows: n, cols: cols, type: type, importance: importance, into: out)
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

    /// Encodes `rows` f32 rows of `cols` values as GGML `type` into `out`, weighing rounding
    /// errors by `importance` (one value per column) where given.
    static func encodeRows(_ f: UnsafePointer<Float>, rows n: Int, cols: Int, type: GGMLType, importance: [Float]? = nil,
                           into out: UnsafeMutableRawPointer) throws {
        let rowBytes = cols / type.block.elements * type.block.bytes
        switch type {
        case .f32: out.copyMemory(from: f, byteCount: n * cols * 4)
        case .f16: p4k_f32_to_f16(f, out.assumingMemoryBound(to: UInt16.self), n * cols)
        case _ where type.info.quantize != nil:
            // The searches cost up to ~1 µs a value: rows go to the pool.
            let dst = UnsafeMutableRawPointer(out)
            let format = Int32(type.rawValue)
            // The one way p4k_quantize_rows fails: rows that are not whole blocks.
            guard cols % type.block.elements == 0 else { throw ModelError.unsupported("writing \(type.displayName) rows of \(cols) values") }
            withOptionalBuffer(importance) { weights in
                ThreadPool.shared.parallelFor(n, threads: ThreadPool.shared.threadCount) { r in
                    _ = p4k_quantize_rows(format, f + r.lowerBound * cols, dst + r.lowerBound * rowBytes, r.count, cols, weights)
                }
            }
        default: throw ModelError.unsupported("writing \(type.displayName) tensors")
        }
    }

    private static func withOptionalBuffer(_ a: [Float]?, _ body: (UnsafePointer<Float>?) throws -> Void) rethrows {
        if let a { try a.withUnsafeBufferPointer { try body($0.baseAddress) } } else { try body(nil) }
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
