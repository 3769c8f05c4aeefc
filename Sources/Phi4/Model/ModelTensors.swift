/// One tensor of a Phi-4 model: its name in an HF checkpoint and in a GGUF file (llama.cpp's `phi3`
/// architecture, as the `gguf` package writes it), its shape and its role. The one table both
/// loaders and the GGUF writer use.
enum ModelTensor: Hashable, Sendable {
    case embedding, finalNorm, lmHead
    case attentionNorm(Int), qkv(Int), output(Int), mlpNorm(Int), gateUp(Int), down(Int)

    /// The name in an HF checkpoint (`model.layers.3.self_attn.qkv_proj.weight`).
    var hfName: String {
        switch self {
        case .embedding: return "model.embed_tokens.weight"
        case .finalNorm: return "model.norm.weight"
        case .lmHead: return "lm_head.weight"
        case .attentionNorm(let i): return "model.layers.\(i).input_layernorm.weight"
        case .qkv(let i): return "model.layers.\(i).self_attn.qkv_proj.weight"
        case .output(let i): return "model.layers.\(i).self_attn.o_proj.weight"
        case .mlpNorm(let i): return "model.layers.\(i).post_attention_layernorm.weight"
        case .gateUp(let i): return "model.layers.\(i).mlp.gate_up_proj.weight"
        case .down(let i): return "model.layers.\(i).mlp.down_proj.weight"
        }
    }

    /// The name in a GGUF file (`blk.3.attn_qkv.weight`).
    var ggufName: String {
        switch self {
        case .embedding: return "token_embd.weight"
        case .finalNorm: return "output_norm.weight"
        case .lmHead: return "output.weight"
        case .attentionNorm(let i): return "blk.\(i).attn_norm.weight"
        case .qkv(let i): return "blk.\(i).attn_qkv.weight"
        case .output(let i): return "blk.\(i).attn_output.weight"
        case .mlpNorm(let i): return "blk.\(i).ffn_norm.weight"
        case .gateUp(let i): return "blk.\(i).ffn_up.weight"
        case .down(let i): return "blk.\(i).ffn_down.weight"
        }
    }

    /// The layer it belongs to (0 for the tensors outside the layers).
    var layer: Int {
        switch self {
        case .embedding, .finalNorm, .lmHead: return 0
        case .attentionNorm(let i), .qkv(let i), .output(let i), .mlpNorm(let i), .gateUp(let i), .down(let i): return i
        }
    }

    /// The role of a matrix, which picks its storage format (nil for the norm vectors). The
    /// embedding has `lmHead`'s role when the output projection is tied to it.
    func role(tied: Bool) -> WeightType.Role? {
        switch self {
        case .embedding: return tied ? .lmHead : .embedding
        case .lmHead: return .lmHead
        case .qkv: return .qkv
        case .output: return .attention
        case .gateUp: return .gateUp
        case .down: return .down
        case .finalNorm, .attentionNorm, .mlpNorm: return nil
        }
    }

    /// `[rows, cols]` of a matrix (`[out, in]`), or `[n]` of a vector, as the configuration implies.
    func shape(_ c: ModelConfig) -> [Int] {
        switch self {
        case .embedding, .lmHead: return [c.vocabSize, c.hiddenSize]
        case .finalNorm, .attentionNorm, .mlpNorm: return [c.hiddenSize]
        case .qkv: return [c.qDim + 2 * c.kvDim, c.hiddenSize]
        case .output: return [c.hiddenSize, c.qDim]
        case .gateUp: return [2 * c.intermediateSize, c.hiddenSize]
        case .down: return [c.hiddenSize, c.intermediateSize]
        }
    }

    /// Every tensor of a model in llama.cpp's file order (no `lmHead` when it is tied).
    static func all(_ c: ModelConfig, tied: Bool) -> [ModelTensor] {
        var out: [ModelTensor] = [.embedding]
        for i in 0..<c.layerCount { out += [.attentionNorm(i), .qkv(i), .output(i), .mlpNorm(i), .gateUp(i), .down(i)] }
        out.append(.finalNorm)
        if !tied { out.append(.lmHead) }
        return out
    }
}

extension ModelWeights {
    /// Builds the weights from a source of matrices and vectors: the one layer-building path of
    /// the HF and the GGUF loaders. `matrix(tensor, rows, cols, role)` loads a matrix in the format
    /// its role asks for; `vector(tensor, n)` a norm's floats. A tied `lm_head` is the embedding.
    static func build(config c: ModelConfig, tied: Bool,
                      matrix: (ModelTensor, Int, Int, WeightType.Role) throws(ModelError) -> WeightMatrix,
                      vector: (ModelTensor, Int) throws(ModelError) -> [Float]) throws(ModelError) -> ModelWeights {
        func load(_ t: ModelTensor) throws(ModelError) -> WeightMatrix {
            let s = t.shape(c)
            return try matrix(t, s[0], s[1], t.role(tied: tied)!)
        }
        let d = c.hiddenSize
        let embedding = try load(.embedding)
        var layers: [LayerWeights] = []
        for i in 0..<c.layerCount {
            layers.append(LayerWeights(
                attentionNorm: try vector(.attentionNorm(i), d),
                qkv: try load(.qkv(i)),
                output: try load(.output(i)),
                mlpNorm: try vector(.mlpNorm(i), d),
                gateUp: try load(.gateUp(i)),
                down: try load(.down(i))))
        }
        let finalNorm = try vector(.finalNorm, d)
        let lmHead = tied ? embedding : try load(.lmHead)
        return ModelWeights(embedding: embedding, layers: layers, finalNorm: finalNorm, lmHead: lmHead)
    }
}
