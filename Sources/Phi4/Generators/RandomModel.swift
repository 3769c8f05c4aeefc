import CPhi4Kernels

/// Writes GGUF files of Phi-4's shape (or a smaller one) with random weights, streaming row
/// slices straight to disk: a full 14B file takes minutes and little memory. For speed and
/// memory measurements only — the weights mean nothing. The tokenizer metadata comes from a real
/// tokenizer (so prompts tokenize as for Phi-4).
public enum RandomModel {
    /// Writes the model. `layers` overrides the depth (Phi-4: 40). With `zeros`, every matrix is
    /// zero and the file is sparse: any size, no disk space (for load, mapping and limit tests).
    /// `tensorTypes` overrides the recipe of `type` per tensor name (e.g. the choices that
    /// `llama-quantize --dry-run` prints for a mix the recipes do not know).
    public static func write(config base: ModelConfig, layers: Int? = nil, type: GGUFExport.FileType,
                             tokenizer: Tokenizer, tokenizerDirectory: String, output: String, seed: UInt64 = 1,
                             zeros: Bool = false, tensorTypes: [String: GGMLType] = [:],
                             progress: @escaping (Int, Int, String) -> Void = { _, _, _ in }) throws {
        var c = base
        if let layers { c.layerCount = layers }
        try c.validate()
        var w = GGUFWriter()
        GGUFExport.addPhi3Metadata(c, name: "phi-4-shaped-random", fileType: type, to: &w)
        try GGUFExport.addTokenizer(tokenizer, vocabSize: c.vocabSize, directory: tokenizerDirectory, to: &w)

        var plan: [(String, Int, Int, WeightType.Role?, Float)] = [("token_embd.weight", c.vocabSize, c.hiddenSize, c.tieWordEmbeddings ? .lmHead : .embedding, 1)]
        var layerOf: [String: Int] = [:]
        let d = Float(c.hiddenSize)
        for i in 0..<c.layerCount {
            let p = "blk.\(i)."
            for n in ["attn_qkv.weight", "attn_output.weight", "ffn_up.weight", "ffn_down.weight"] { layerOf[p + n] = i }
            plan.append((p + "attn_norm.weight", 1, c.hiddenSize, nil, 0))
            plan.append((p + "attn_qkv.weight", c.qDim + 2 * c.kvDim, c.hiddenSize, .qkv, 1 / d.squareRoot()))
            plan.append((p + "attn_output.weight", c.hiddenSize, c.qDim, .attention, 1 / Float(c.qDim).squareRoot()))
            plan.append((p + "ffn_norm.weight", 1, c.hiddenSize, nil, 0))
            plan.append((p + "ffn_up.weight", 2 * c.intermediateSize, c.hiddenSize, .gateUp, 1 / d.squareRoot()))
            plan.append((p + "ffn_down.weight", c.hiddenSize, c.intermediateSize, .down, 1 / Float(c.intermediateSize).squareRoot()))
        }
        plan.append(("output_norm.weight", 1, c.hiddenSize, nil, 0))
        if !c.tieWordEmbeddings { plan.append(("output.weight", c.vocabSize, c.hiddenSize, .lmHead, 1 / d.squareRoot())) }
        GGUFExport.addRopeFactors(c, to: &w)
        for (index, (name, rows, cols, role, scale)) in plan.enumerated() {
            let ggml = tensorTypes[name] ?? role.map { type.type(for: $0, cols: cols, layer: layerOf[name] ?? 0, layers: c.layerCount, gqa: c.headCount / c.kvHeadCount) } ?? .f32
            if tensorTypes[name] != nil {  // an override: a matrix type the kernels run, in whole blocks
                guard role != nil, ggml.info.in_place != 0, cols % ggml.block.elements == 0 else {
                    throw ModelError.unsupported("tensor \(name) cannot be written as \(ggml.displayName)")
                }
            }
            let dims = role == nil ? [cols] : [cols, rows]
            let total = plan.count
            w.tensors.append(GGUFWriter.Tensor(name: name, dims: dims, type: ggml) { sink in
                progress(index, total, name)
                var state = seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15
                let slice = max(1, min(rows, (1 << 22) / cols))
                let f = UnsafeMutablePointer<Float>.allocate(capacity: slice * cols)
                defer { f.deallocate() }
                let rowBytes = cols / ggml.block.elements * ggml.block.bytes
                let out = UnsafeMutableRawPointer.allocate(byteCount: slice * rowBytes, alignment: 64)
                defer { out.deallocate() }
                var r = 0
                if zeros && role != nil { // all-zero blocks (scale 0): the writer leaves holes
                    out.initializeMemory(as: UInt8.self, repeating: 0, count: slice * rowBytes)
                }
                while r < rows {
                    let n = min(slice, rows - r)
                    if zeros && role != nil {
                        try sink(UnsafeRawBufferPointer(start: out, count: n * rowBytes))
                        r += n
                        continue
                    }
                    if ggml.isQuantized && (ggml.block.elements == 256 || ggml.info.quantize == nil || ggml == .q4_1 || ggml == .iq4_NL) {
                        // Quantized types whose quantizers search (slow at full size) or that have
                        // none: random bits, with the fp16 scales set so that the values have about
                        // the standard deviation `scale`. Float tensors (norms = 1) are written below.
                        randomBlocks(out, count: n * cols / ggml.block.elements, type: ggml, scale: scale, state: &state)
                        try sink(UnsafeRawBufferPointer(start: out, count: n * rowBytes))
                        r += n
                        continue
                    }
                    for i in 0..<(n * cols) {
                        if role == nil { f[i] = 1; continue }
                        // xorshift64*: a uniform value scaled to the standard deviation `scale`.
                        state ^= state >> 12
                        state ^= state << 25
                        state ^= state >> 27
                        let u = Float((state &* 0x2545_F491_4F6C_DD1D) >> 40) / Float(1 << 24)
                        f[i] = (u * 2 - 1) * scale * 1.732
                    }
                    try GGUFExport.encodeRows(f, rows: n, cols: cols, type: ggml, into: out)
                    try sink(UnsafeRawBufferPointer(start: out, count: n * rowBytes))
                    r += n
                }
            })
        }
        try w.write(path: output)
        progress(plan.count, plan.count, "")
    }

    /// Fills `count` blocks of `type` with random bits and sane fp16 scales: each scale field set so
    /// that the largest value the block's integers can make is about √3 · `scale`.
    static func randomBlocks(_ out: UnsafeMutableRawPointer, count: Int, type: GGMLType, scale: Float, state: inout UInt64) {
        let bytes = type.block.bytes
        let raw = out.bindMemory(to: UInt8.self, capacity: count * bytes)
        for i in 0..<(count * bytes) {
            if i % 8 == 0 {
                state ^= state >> 12
                state ^= state << 25
                state ^= state >> 27
            }
            raw[i] = UInt8(truncatingIfNeeded: (state &* 0x2545_F491_4F6C_DD1D) >> (8 * UInt64(i % 8)))
        }
        let top = scale * 1.732
        // (offset, value) of each fp16 field: the largest |integer product| the block's values reach.
        let fields: [(Int, Float)]
        switch type {
        case .q6_K: fields = [(208, top / (64 * 32))]                    // d · scale₁₆ · (q − 32)
        case .q4_K: fields = [(0, top / (32 * 15)), (2, top / (32 * 15))] // d · sc · q − dmin · m
        case .q5_K: fields = [(0, top / (32 * 31)), (2, top / (32 * 31))]
        case .q2_K: fields = [(80, top / (15 * 3)), (82, top / (15 * 3))]
        case .q3_K: fields = [(108, top / (32 * 4))]                      // d · (sc − 32) · q, |q| ≤ 4
        case .iq4_XS: fields = [(0, top / (32 * 127))]                    // d · (sc − 32) · kv
        case .iq4_NL: fields = [(0, top / 127)]                           // d · kv
        case .iq2_XXS, .iq2_XS, .iq2_S: fields = [(0, top / (4 * 43))]    // d · (2s + 1) / 8 · grid (≤ 43)
        case .iq3_XXS: fields = [(0, top / (8 * 62))]                     // d · (2s + 1) / 4 · grid (≤ 62)
        case .iq3_S: fields = [(0, top / (31 * 15))]                      // d · (2s + 1) · grid (≤ 15)
        case .iq1_S: fields = [(0, top / 15)]                             // d · (2s + 1) · (grid ± 1/8)
        case .iq1_M: fields = []                                          // d spread over the scales: below
        case .q4_1: fields = [(0, 2 * top / 15), (2, -top)]               // d · q + m
        case .q5_1: fields = [(0, 2 * top / 31), (2, -top)]
        default: fields = [(0, top / 16)]                                 // Q5_0, Q4_0, Q8_0: d · (q − offset)
        }
        if type == .iq1_M {  // d's fp16 bits in the top nibbles of the four uint16 scale words at 48
            let h = p4k_f32_to_fp16(top / 15)
            for b in 0..<count {
                for k in 0..<4 {
                    let at = b * bytes + 49 + 2 * k
                    raw[at] = (raw[at] & 0x0F) | UInt8((h >> (4 * UInt16(k))) & 0xF) << 4
                }
            }
        }
        for b in 0..<count {
            for (offset, value) in fields {
                let h = p4k_f32_to_fp16(value)
                raw[b * bytes + offset] = UInt8(h & 0xFF)
                raw[b * bytes + offset + 1] = UInt8(h >> 8)
            }
        }
    }
}
