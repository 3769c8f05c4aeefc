/// Which GGML type each tensor of a file gets: llama.cpp's file types ("mixes") and the rules its
/// `llama-quantize` (the pinned build) applies per tensor, written out for the Phi-4 family
/// (architecture `phi3`: fused `attn_qkv`, fused `ffn_up`, no experts).
extension GGUFExport {
    /// Output file types: one type for every matrix, or one of llama.cpp's mixes, named as
    /// `llama-quantize` names them (any case: `Q4_K_M`, `q4_k_m`).
    public enum FileType: String, Sendable, CaseIterable {
        case f32, f16, q8_0, q4_0
        /// libphi4's own mix: Q4_0 with `ffn_down` and the output projection in Q8_0.
        case q4_0Mixed = "q4_0-mixed"
        case q4_1, q5_0, q5_1
        case q2_K = "q2_k", q2_K_S = "q2_k_s"
        case q3_K_S = "q3_k_s", q3_K_M = "q3_k_m", q3_K_L = "q3_k_l"
        case q4_K_S = "q4_k_s", q4_K_M = "q4_k_m", q5_K_S = "q5_k_s", q5_K_M = "q5_k_m", q6_K = "q6_k"
        case iq4_NL = "iq4_nl", iq4_XS = "iq4_xs"
        case iq3_XXS = "iq3_xxs", iq3_XS = "iq3_xs", iq3_S = "iq3_s", iq3_M = "iq3_m"
        case iq2_XXS = "iq2_xxs", iq2_XS = "iq2_xs", iq2_S = "iq2_s", iq2_M = "iq2_m"
        case iq1_S = "iq1_s", iq1_M = "iq1_m"

        /// The file type of a name as `phi4 quantize` or `llama-quantize` spells it (any case).
        public init?(name: String) {
            self.init(rawValue: name.lowercased())
        }

        /// Whether `phi4 quantize` can write this type (every type has its quantizers now).
        public var writable: Bool { true }

        /// llama.cpp's `general.file_type` code (`LLAMA_FTYPE_*`).
        var code: UInt32 {
            switch self {
            case .f32: return 0
            case .f16: return 1
            case .q4_0, .q4_0Mixed: return 2
            case .q4_1: return 3
            case .q8_0: return 7
            case .q5_0: return 8
            case .q5_1: return 9
            case .q2_K: return 10
            case .q3_K_S: return 11
            case .q3_K_M: return 12
            case .q3_K_L: return 13
            case .q4_K_S: return 14
            case .q4_K_M: return 15
            case .q5_K_S: return 16
            case .q5_K_M: return 17
            case .q6_K: return 18
            case .iq2_XXS: return 19
            case .iq2_XS: return 20
            case .q2_K_S: return 21
            case .iq3_XS: return 22
            case .iq3_XXS: return 23
            case .iq1_S: return 24
            case .iq4_NL: return 25
            case .iq3_S: return 26
            case .iq3_M: return 27
            case .iq2_S: return 28
            case .iq2_M: return 29
            case .iq4_XS: return 30
            case .iq1_M: return 31
            }
        }

        /// The type a mix gives a matrix before its per-tensor rules.
        var baseType: GGMLType {
            switch self {
            case .f32: return .f32
            case .f16: return .f16
            case .q8_0: return .q8_0
            case .q4_0, .q4_0Mixed: return .q4_0
            case .q4_1: return .q4_1
            case .q5_0: return .q5_0
            case .q5_1: return .q5_1
            case .q2_K, .q2_K_S: return .q2_K
            case .q3_K_S, .q3_K_M, .q3_K_L: return .q3_K
            case .q4_K_S, .q4_K_M: return .q4_K
            case .q5_K_S, .q5_K_M: return .q5_K
            case .q6_K: return .q6_K
            case .iq4_NL: return .iq4_NL
            case .iq4_XS: return .iq4_XS
            case .iq3_XXS: return .iq3_XXS
            case .iq3_XS, .iq3_S, .iq3_M: return .iq3_S
            case .iq2_XXS: return .iq2_XXS
            case .iq2_XS, .iq2_S: return .iq2_XS
            case .iq2_M: return .iq2_S
            case .iq1_S: return .iq1_S
            case .iq1_M: return .iq1_M
            }
        }

        /// The GGML type of the matrix of `role` with `cols` columns in layer `layer` of `layers`
        /// (models with `heads / kvHeads` = `gqa`), without an importance matrix or overrides.
        func type(for role: WeightType.Role, cols: Int, layer: Int, layers: Int, gqa: Int = 4) -> GGMLType {
            let category: TensorCategory
            switch role {
            case .embedding: category = .tokenEmbedding
            case .lmHead: category = .output
            case .qkv: category = .attentionQKV
            case .attention: category = .attentionOutput
            case .gateUp: category = .ffnUp
            case .down: category = .ffnDown
            }
            return type(category: category, cols: cols, layer: layer, layers: layers, gqa: gqa, choices: TypeChoices())
        }

        /// The GGML type of a quantizable matrix as `llama-quantize` chooses it.
        func type(category: TensorCategory, cols: Int, layer: Int, layers: Int, gqa: Int, choices: TypeChoices) -> GGMLType {
            if category == .tokenEmbedding, let t = choices.tokenEmbedding { return t }
            if category == .output, let t = choices.output { return t }
            let base = baseType
            guard base.isQuantized else { return base }
            if self == .q4_0Mixed {
                return fallback(category == .ffnDown || category == .output ? .q8_0 : .q4_0, cols: cols)
            }
            return fallback(rule(base, category: category, cols: cols, layer: layer, layers: layers, gqa: gqa,
                                 hasImportance: choices.hasImportance), cols: cols)
        }

        /// llama.cpp's per-tensor rules (llama_tensor_get_type_impl) for a model without experts.
        /// Its counters of attn_v-like tensors and ffn_down tensors equal the layer index here:
        /// Phi-4 has one fused attn_qkv and one ffn_down per layer.
        private func rule(_ base: GGMLType, category: TensorCategory, cols: Int, layer i: Int, layers n: Int, gqa: Int,
                          hasImportance: Bool) -> GGMLType {
            let moreBits = WeightType.usesMoreBits(layer: i, of: n)
            let iq2Family: Set<FileType> = [.iq2_XXS, .iq2_XS, .iq1_S, .iq2_S, .iq2_M, .iq1_M]
            switch category {
            case .output:
                if cols % base.block.elements != 0 { return .q8_0 }
                if iq2Family.contains(self) || self == .iq3_XXS { return .q5_K }
                return base == .q8_0 ? base : .q6_K
            case .tokenEmbedding:
                switch self {
                case .iq2_XXS, .iq2_XS, .iq1_S, .iq1_M: return .q2_K
                case .iq2_S, .iq2_M, .iq3_XXS: return .iq3_S
                default: return base
                }
            default: break
            }
            if iq2Family.contains(self) {
                let wide = self == .iq2_S || self == .iq2_M
                switch category {
                case .attentionQKV: return gqa >= 4 ? .q4_K : (wide ? .iq3_S : .q2_K)
                case .ffnDown: return i < n / 8 ? (wide ? .iq3_S : .q2_K) : base
                case .attentionOutput:
                    if self == .iq1_S || self == .iq1_M { return .iq2_XXS }
                    return wide ? .iq3_S : base
                default: return base
                }
            }
            switch category {
            case .attentionQKV:  // llama.cpp counts a fused attn_qkv as attn_v
                switch self {
                case .q2_K: return gqa >= 4 ? .q4_K : .q3_K
                case .q2_K_S where gqa >= 4: return .q4_K
                case .iq3_XXS: return gqa >= 4 ? .q4_K : (hasImportance ? .iq3_XXS : .iq3_S)
                case .iq3_XS where gqa >= 4, .iq3_S where gqa >= 4: return .q4_K
                case .iq3_M: return .q4_K
                case .q3_K_M: return i < 2 ? .q5_K : .q4_K
                case .q3_K_L: return .q5_K
                case .iq4_NL where gqa >= 4, .iq4_XS where gqa >= 4: return .q5_K
                case .q4_K_M where moreBits, .q5_K_M where moreBits: return .q6_K
                case .q4_K_S where i < 4: return .q5_K
                default: return base
                }
            case .ffnDown:
                switch self {
                case .q2_K: return .q3_K
                case .q2_K_S: return i < n / 8 ? .q4_K : base
                case .iq3_XXS where !hasImportance: return i < n / 8 ? .q4_K : .q3_K
                case .q3_K_M: return i < n / 16 ? .q5_K : .q4_K
                case .iq3_M where i < n / 8: return .q4_K
                case .q3_K_L: return .q5_K
                case .q4_K_M: return moreBits ? .q6_K : base
                case .iq4_NL where i < n / 8 && !hasImportance, .iq4_XS where i < n / 8 && !hasImportance: return .q5_K
                case .q5_K_M where moreBits: return .q6_K
                case .q4_K_S where i < n / 8: return .q5_K
                case .q4_0 where hasImportance && i < n / 8: return .q4_1
                case .q5_0 where hasImportance && i < n / 8: return .q5_1
                default: return base
                }
            case .attentionOutput:
                switch self {
                case .q2_K: return .q3_K
                case .iq3_XXS: return .iq3_S
                case .q3_K_M, .iq3_M: return .q4_K
                case .q3_K_L: return .q5_K
                default: return base
                }
            case .ffnUp:
                return self == .iq3_XS && i >= n / 8 && i < 7 * n / 8 ? .iq3_XXS : base
            default:
                return base
            }
        }

        /// llama.cpp's fall-backs for rows that are not whole blocks of the chosen type.
        private func fallback(_ t: GGMLType, cols: Int) -> GGMLType {
            guard cols % t.block.elements != 0 else { return t }
            let r: GGMLType
            switch t {
            case .iq1_S, .iq1_M, .iq2_XXS, .iq2_XS, .iq2_S, .iq3_XXS, .iq3_S, .iq4_XS: r = .iq4_NL
            case .q2_K, .q3_K: r = .q4_0
            case .q4_K: r = .q5_0
            case .q5_K: r = .q5_1
            case .q6_K: r = .q8_0
            default: r = t
            }
            return cols % r.block.elements == 0 ? r : .f16
        }

        /// Whether a tensor of `category` in type `t` needs an importance matrix (llama.cpp
        /// refuses to write these without one: the result would be far worse than a bigger type).
        func requiresImportance(_ category: TensorCategory, _ t: GGMLType) -> Bool {
            guard category != .tokenEmbedding && category != .output else { return false }
            switch t {
            case .iq3_XXS, .iq2_XXS, .iq2_XS, .iq2_S, .iq1_M, .iq1_S: return true
            case .q2_K: return self == .q2_K_S
            default: return false
            }
        }
    }

    /// The kinds of tensors the rules tell apart (by name, as llama.cpp does).
    enum TensorCategory: Sendable {
        case output, tokenEmbedding, attentionQKV, attentionOutput, ffnUp, ffnDown, other

        init(name: String) {
            if name == "output.weight" { self = .output }
            else if name == "token_embd.weight" { self = .tokenEmbedding }
            else if name.contains("attn_qkv.weight") { self = .attentionQKV }
            else if name.contains("attn_output.weight") { self = .attentionOutput }
            else if name.contains("ffn_up") { self = .ffnUp }
            else if name.contains("ffn_down") { self = .ffnDown }
            else { self = .other }
        }
    }

    /// Per-file choices beside the file type.
    public struct TypeChoices: Sendable {
        /// The token embedding's type (`--token-embedding-type`), or nil for the mix's.
        public var tokenEmbedding: GGMLType?
        /// The output projection's type (`--output-tensor-type`), or nil for the mix's.
        public var output: GGMLType?
        /// Whether an importance matrix is given (some mixes choose differently with one).
        public var hasImportance = false

        /// The mix's own choices.
        public init(tokenEmbedding: GGMLType? = nil, output: GGMLType? = nil, hasImportance: Bool = false) {
            self.tokenEmbedding = tokenEmbedding
            self.output = output
            self.hasImportance = hasImportance
        }
    }

    /// Whether llama.cpp quantizes a tensor (matrices named `*weight`, not norms).
    static func quantizable(name: String, dims: [Int]) -> Bool {
        dims.dropFirst().contains { $0 > 1 } && name.hasSuffix("weight") && !name.contains("_norm.weight")
    }

    /// llama.cpp's tensor order in the files it writes: tensors outside the layers first, then
    /// layer by layer, by name within each.
    static func llamaOrder(_ a: String, _ b: String) -> Bool {
        func layer(_ s: String) -> Int {
            guard s.hasPrefix("blk.") else { return -1 }
            return Int(s.dropFirst(4).prefix { $0.isNumber }) ?? -1
        }
        let (la, lb) = (layer(a), layer(b))
        return la != lb ? la < lb : Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8))
    }
}

extension GGMLType {
    /// Whether this is a block-quantized type (not F32, F16 or BF16).
    var isQuantized: Bool { ![.f32, .f16, .bf16].contains(self) }

    /// Whether `phi4 quantize` can write tensors of this type.
    public var isWritable: Bool { self == .f32 || self == .f16 || info.quantize != nil }

    /// The type named as llama.cpp names it (any case), e.g. `q8_0`, `Q6_K`, `iq4_xs`.
    public init?(name: String) {
        guard let t = GGMLType.allCases.first(where: { $0.displayName.lowercased() == name.lowercased() }) else { return nil }
        self = t
    }
}
