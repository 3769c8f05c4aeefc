#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a model could not be loaded or run.
public enum ModelError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A file could not be read.
    case io(String)
    /// `config.json` is missing a field, has an invalid value, or describes another architecture.
    case invalidConfig(String)
    /// A configuration feature libphi4 does not implement (rope scaling, partial rotary, …).
    case unsupported(String)
    /// A weights file is malformed (bad header, offsets outside the file, wrong sizes, …).
    case invalidWeights(String)
    /// A tensor the architecture needs is absent.
    case missingTensor(String)
    /// A tensor's shape disagrees with the configuration.
    case shapeMismatch(String)
    /// The model would not fit in the memory this process can use.
    case insufficientMemory(String)
    /// A request that cannot be served (bad token id, too many tokens for the context, …).
    case invalidRequest(String)
    /// The tokens do not fit in the context.
    case contextFull(String)
    /// ``Session/cancel()`` stopped the call.
    case cancelled
    /// A queue is full (``Scheduler/submit(_:options:)``); try again later.
    case busy(String)
    /// The tokenizer failed.
    case tokenizer(TokenizerError)

    /// A one-line description.
    public var description: String {
        switch self {
        case .io(let m): return "cannot read model: \(m)"
        case .invalidConfig(let m): return "invalid config: \(m)"
        case .unsupported(let m): return "unsupported model: \(m)"
        case .invalidWeights(let m): return "invalid weights: \(m)"
        case .missingTensor(let m): return "missing tensor: \(m)"
        case .shapeMismatch(let m): return "shape mismatch: \(m)"
        case .insufficientMemory(let m): return "not enough memory: \(m)"
        case .invalidRequest(let m): return "invalid request: \(m)"
        case .contextFull(let m): return "context full: \(m)"
        case .cancelled: return "cancelled"
        case .busy(let m): return "busy: \(m)"
        case .tokenizer(let e): return e.description
        }
    }
}

/// The hyper-parameters of a Phi-4 (HF `Phi3ForCausalLM`) model, read from `config.json`.
///
/// Phi-4's values: hidden 5120, FFN 17920, 40 layers, 40 query / 10 key-value heads of 128,
/// vocabulary 100352, RoPE θ 250000 over the full head, RMSNorm ε 1e-5, untied `lm_head`.
/// Phi-4-mini (3.8B): 3072 wide, 32 layers, 24 / 8 heads of 128, vocabulary 200064, RoPE over
/// the first 96 dimensions of each head with LongRoPE factors, `lm_head` tied to the embedding.
/// Any smaller consistent shape is accepted too (test models are tiny).
public struct ModelConfig: Sendable, Equatable {
    /// Width of the residual stream.
    public var hiddenSize: Int
    /// Width of the MLP's hidden layer (gate and up each have this many rows).
    public var intermediateSize: Int
    /// Number of decoder layers.
    public var layerCount: Int
    /// Number of query heads.
    public var headCount: Int
    /// Number of key/value heads (grouped-query attention: `headCount % kvHeadCount == 0`).
    public var kvHeadCount: Int
    /// Width of one head (`hiddenSize / headCount`).
    public var headDim: Int
    /// Number of rows of the embedding and `lm_head` matrices.
    public var vocabSize: Int
    /// The longest context the model was trained for.
    public var maxPositions: Int
    /// RMSNorm epsilon.
    public var rmsNormEps: Float
    /// RoPE base frequency θ.
    public var ropeTheta: Float
    /// Dimensions of each head that RoPE rotates, from the first (`head_dim ×
    /// partial_rotary_factor`): all of them for Phi-4, 96 of 128 for Phi-4-mini.
    public var rotaryDim: Int
    /// LongRoPE scaling (Phi-4-mini), or nil for plain RoPE.
    public var longRoPE: LongRoPE?
    /// Whether `lm_head` reuses the embedding matrix.
    public var tieWordEmbeddings: Bool
    /// The dtype the checkpoint says it is stored in (`torch_dtype` / `dtype`), e.g. "bfloat16".
    public var storedDType: String?
    /// Token ids named in config.json.
    public var bosTokenID: Int?
    /// End-of-sequence ids named in config.json (an int or a list there).
    public var eosTokenIDs: [Int]
    /// Padding id named in config.json.
    public var padTokenID: Int?

    /// Query width: `headCount × headDim`.
    public var qDim: Int { headCount * headDim }
    /// Key (and value) width: `kvHeadCount × headDim`.
    public var kvDim: Int { kvHeadCount * headDim }

    /// Phi-4 (14B)'s published configuration.
    public static let phi4 = ModelConfig(
        hiddenSize: 5120, intermediateSize: 17920, layerCount: 40, headCount: 40, kvHeadCount: 10,
        headDim: 128, vocabSize: 100352, maxPositions: 16384, rmsNormEps: 1e-5, ropeTheta: 250000,
        tieWordEmbeddings: false, storedDType: "bfloat16", bosTokenID: 100257, eosTokenIDs: [100265],
        padTokenID: 100349)

    /// Which member of the Phi-4 family this configuration describes, from its shape and rotary
    /// facts: "Phi-4" (14B, context 16,384, θ 250,000), "Phi-4-reasoning" (the same shape with
    /// context 32,768 and θ 500,000: -reasoning and -reasoning-plus share it), "Phi-4-mini" (3.8B:
    /// vocabulary 200,064, partial rotary, LongRoPE); other shapes are named by the architecture
    /// they follow.
    public var familyName: String {
        let mini = rotaryDim < headDim || longRoPE != nil || vocabSize == 200_064
        if mini {
            return hiddenSize == 3072 && layerCount == 32 && vocabSize == 200_064 ? "Phi-4-mini" : "Phi-4-mini architecture (other shape)"
        }
        let shape14B = hiddenSize == 5120 && layerCount == 40 && headCount == 40 && kvHeadCount == 10
            && intermediateSize == 17920 && vocabSize == 100_352
        guard shape14B else { return "Phi-4 architecture (other shape)" }
        return maxPositions >= 32768 && ropeTheta >= 500_000 ? "Phi-4-reasoning" : "Phi-4"
    }

    /// The number of weights (parameters) of a model of this shape.
    public var parameterCount: Int {
        let d = hiddenSize
        let perLayer = d * (qDim + 2 * kvDim) + qDim * d + d * 2 * intermediateSize + intermediateSize * d + 2 * d
        return vocabSize * d * (tieWordEmbeddings ? 1 : 2) + layerCount * perLayer + d
    }

    /// Creates a configuration; see ``validate()``.
    public init(hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int, kvHeadCount: Int,
                headDim: Int, vocabSize: Int, maxPositions: Int, rmsNormEps: Float, ropeTheta: Float,
                rotaryDim: Int? = nil, longRoPE: LongRoPE? = nil, tieWordEmbeddings: Bool = false, storedDType: String? = nil, bosTokenID: Int? = nil,
                eosTokenIDs: [Int] = [], padTokenID: Int? = nil) {
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim
        self.vocabSize = vocabSize
        self.maxPositions = maxPositions
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.rotaryDim = rotaryDim ?? headDim
        self.longRoPE = longRoPE
        self.tieWordEmbeddings = tieWordEmbeddings
        self.storedDType = storedDType
        self.bosTokenID = bosTokenID
        self.eosTokenIDs = eosTokenIDs
        self.padTokenID = padTokenID
    }

    /// Checks that the shape is consistent and small enough to index safely.
    public func validate() throws(ModelError) {
        func positive(_ v: Int, _ name: String, max: Int = 1 << 20) throws(ModelError) {
            guard v > 0 && v <= max else { throw .invalidConfig("\(name) = \(v) is out of range (1…\(max))") }
        }
        try positive(hiddenSize, "hidden_size", max: 1 << 16)
        try positive(intermediateSize, "intermediate_size", max: 1 << 18)
        try positive(layerCount, "num_hidden_layers", max: 1024)
        try positive(headCount, "num_attention_heads", max: 1024)
        try positive(kvHeadCount, "num_key_value_heads", max: 1024)
        try positive(headDim, "head_dim", max: 1024)
        try positive(vocabSize, "vocab_size", max: 1 << 24)
        try positive(maxPositions, "max_position_embeddings", max: 1 << 24)
        guard headCount % kvHeadCount == 0 else {
            throw .invalidConfig("num_attention_heads (\(headCount)) is not a multiple of num_key_value_heads (\(kvHeadCount))")
        }
        guard headDim % 2 == 0 else { throw .invalidConfig("head_dim \(headDim) is odd (RoPE rotates pairs)") }
        guard rmsNormEps > 0 && rmsNormEps.isFinite else { throw .invalidConfig("rms_norm_eps must be positive") }
        guard ropeTheta > 1 && ropeTheta.isFinite else { throw .invalidConfig("rope_theta must be greater than 1") }
        guard rotaryDim >= 2 && rotaryDim <= headDim && rotaryDim % 2 == 0 else {
            throw .invalidConfig("the rotary dimension \(rotaryDim) must be even and in 2…head_dim (\(headDim))")
        }
        if let r = longRoPE {
            for (name, f) in [("short_factor", r.shortFactors), ("long_factor", r.longFactors)] {
                guard f.count == rotaryDim / 2 else {
                    throw .invalidConfig("rope_scaling.\(name) has \(f.count) values; the rotary dimension \(rotaryDim) needs \(rotaryDim / 2)")
                }
                guard f.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw .invalidConfig("rope_scaling.\(name) must be positive numbers") }
            }
            try positive(r.originalMaxPositions, "original_max_position_embeddings", max: 1 << 24)
            guard r.attentionFactor > 0 && r.attentionFactor.isFinite else { throw .invalidConfig("the LongRoPE attention factor must be positive") }
        }
    }

    /// Reads an HF `config.json` (a `Phi3ForCausalLM`).
    ///
    /// Both key spellings are accepted: Phi-4's published file (`rope_theta`, `torch_dtype`) and
    /// newer transformers versions (`rope_parameters: {rope_theta, rope_type: "default"}`, `dtype`).
    /// Partial rotary embeddings and LongRoPE (Phi-4-mini) are read from either spelling; other
    /// architectures, other rope scalings and sliding-window attention are refused with a message
    /// that says why.
    package static func parse(_ json: JSONValue, source: String = "config.json") throws(ModelError) -> ModelConfig {
        guard json.objectValue != nil else { throw .invalidConfig("\(source) is not a JSON object") }
        let architectures = json["architectures"]?.arrayValue?.compactMap { $0.stringValue } ?? []
        let modelType = json["model_type"]?.stringValue
        if !architectures.isEmpty && !architectures.contains("Phi3ForCausalLM") {
            throw .unsupported("architecture \(architectures.joined(separator: ", ")) (only Phi3ForCausalLM, i.e. Phi-4, is implemented)")
        }
        if let modelType, modelType != "phi3" {
            throw .unsupported("model_type \(modelType) (only phi3, i.e. Phi-4, is implemented)")
        }
        if architectures.isEmpty && modelType == nil {
            throw .invalidConfig("\(source) names no architecture (expected Phi3ForCausalLM)")
        }

        func int(_ key: String) throws(ModelError) -> Int {
            guard let v = json[key] else { throw .invalidConfig("\(source) has no \(key)") }
            guard let i = v.intValue else { throw .invalidConfig("\(key) is not an integer") }
            return i
        }
        func optionalInt(_ key: String) throws(ModelError) -> Int? {
            guard let v = json[key], !v.isNull else { return nil }
            guard let i = v.intValue else { throw .invalidConfig("\(key) is not an integer") }
            return i
        }
        func ids(_ key: String) throws(ModelError) -> [Int] {
            guard let v = json[key], !v.isNull else { return [] }
            if let i = v.intValue { return [i] }
            if let a = v.arrayValue {
                var out: [Int] = []
                for x in a {
                    guard let i = x.intValue else { throw .invalidConfig("\(key) has a non-integer id") }
                    out.append(i)
                }
                return out
            }
            throw .invalidConfig("\(key) is neither an id nor a list of ids")
        }

        let vocab = try int("vocab_size")
        let partial = json["partial_rotary_factor"]?.doubleValue
            ?? json["rope_parameters"]?["partial_rotary_factor"]?.doubleValue ?? 1.0
        guard partial > 0 && partial <= 1 else { throw .invalidConfig("partial_rotary_factor \(partial) must be in (0, 1]") }
        if let window = json["sliding_window"], !window.isNull {
            let maxPos = try optionalInt("max_position_embeddings") ?? 0
            if let w = window.intValue, w > 0 && w < maxPos {
                throw .unsupported("sliding_window \(w) (only full causal attention is implemented)")
            }
        }

        // RoPE: `rope_theta` with `rope_scaling` (Phi-4's and Phi-4-mini's published files), or
        // transformers 5's `rope_parameters` holding both.
        var theta: Double? = json["rope_theta"]?.doubleValue
        var scaling: JSONValue?
        if let params = json["rope_parameters"], !params.isNull {
            if let t = params["rope_theta"]?.doubleValue { theta = t }
            if (params["rope_type"]?.stringValue ?? "default") != "default" { scaling = params }
        }
        if let r = json["rope_scaling"], !r.isNull { scaling = r }
        var longRoPE: LongRoPE?
        let maxPositions = try optionalInt("max_position_embeddings") ?? 4096
        if let scaling {
            let type = scaling["rope_type"]?.stringValue ?? scaling["type"]?.stringValue ?? "?"
            switch type {
            case "default": break
            case "longrope", "su":
                longRoPE = try LongRoPE.parse(scaling, config: json, maxPositions: maxPositions)
            default:
                throw .unsupported("rope scaling \(type) (plain RoPE and LongRoPE are implemented)")
            }
        }
        if let act = json["hidden_act"]?.stringValue, act != "silu" {
            throw .unsupported("hidden_act \(act) (Phi-4 uses silu)")
        }

        let hidden = try int("hidden_size")
        let heads = try int("num_attention_heads")
        let kvHeads = try optionalInt("num_key_value_heads") ?? heads
        var headDim = hidden / max(1, heads)
        if let hd = try optionalInt("head_dim") {
            guard hd * heads == hidden else {
                throw .unsupported("head_dim \(hd) × \(heads) heads ≠ hidden_size \(hidden)")
            }
            headDim = hd
        }
        guard heads > 0, hidden % heads == 0 else {
            throw .invalidConfig("hidden_size \(hidden) is not a multiple of num_attention_heads \(heads)")
        }
        let rotaryDim = Int(Double(headDim) * partial)  // transformers: int(head_dim * partial_rotary_factor)
        let config = ModelConfig(
            hiddenSize: hidden,
            intermediateSize: try int("intermediate_size"),
            layerCount: try int("num_hidden_layers"),
            headCount: heads,
            kvHeadCount: kvHeads,
            headDim: headDim,
            vocabSize: vocab,
            maxPositions: maxPositions,
            rmsNormEps: Float(json["rms_norm_eps"]?.doubleValue ?? 1e-5),
            ropeTheta: Float(theta ?? 10000),
            rotaryDim: rotaryDim,
            longRoPE: longRoPE,
            tieWordEmbeddings: json["tie_word_embeddings"]?.boolValue ?? false,
            storedDType: json["torch_dtype"]?.stringValue ?? json["dtype"]?.stringValue,
            bosTokenID: try optionalInt("bos_token_id"),
            eosTokenIDs: try ids("eos_token_id"),
            padTokenID: try optionalInt("pad_token_id"))
        try config.validate()
        return config
    }
}

/// LongRoPE, the rotary scaling of Phi-4-mini (transformers' `rope_type: "longrope"`).
///
/// Each rotary frequency is divided by a per-dimension factor: the short factors while a forward
/// call's sequence (its last position + 1) fits in ``originalMaxPositions``, the long ones beyond;
/// cos and sin are multiplied by ``attentionFactor``. This is transformers' rule, decided per
/// forward call: keys already in the cache keep the rotation they were stored with, so when
/// generation crosses the threshold, earlier keys stay rotated by the short factors and later
/// ones by the long factors. (llama.cpp instead picks one set for the whole context from its
/// size, so the two agree only where both use the same set.)
public struct LongRoPE: Sendable, Equatable {
    /// Frequency divisors for sequences up to ``originalMaxPositions`` (rotary dim / 2 values).
    public var shortFactors: [Float]
    /// Frequency divisors for longer sequences.
    public var longFactors: [Float]
    /// The context the model was pre-trained with (4,096 for Phi-4-mini).
    public var originalMaxPositions: Int
    /// The factor on cos and sin: `rope_scaling.attention_factor`, or
    /// `sqrt(1 + ln(s) / ln(originalMaxPositions))` with `s` = `rope_scaling.factor` or else
    /// `max_position_embeddings / originalMaxPositions` (1 when `s ≤ 1`), as transformers computes it.
    public var attentionFactor: Float

    /// Creates the scaling from its parts.
    public init(shortFactors: [Float], longFactors: [Float], originalMaxPositions: Int, attentionFactor: Float) {
        self.shortFactors = shortFactors
        self.longFactors = longFactors
        self.originalMaxPositions = originalMaxPositions
        self.attentionFactor = attentionFactor
    }

    /// transformers' attention factor when the file names none: `sqrt(1 + ln(scale) /
    /// ln(originalMaxPositions))` for a context `scale` times the original, 1 when `scale ≤ 1`.
    public static func defaultAttentionFactor(scale: Double, originalMaxPositions: Int) -> Float {
        scale <= 1 ? 1 : Float((1 + log(scale) / log(Double(originalMaxPositions))).squareRoot())
    }

    /// Whether a forward call whose sequence ends at `length` positions uses the long factors.
    public func usesLongFactors(length: Int) -> Bool { length > originalMaxPositions }

    /// Reads the scaling from `rope_scaling` / `rope_parameters` and the top level of config.json.
    static func parse(_ r: JSONValue, config json: JSONValue, maxPositions: Int) throws(ModelError) -> LongRoPE {
        func factors(_ key: String) throws(ModelError) -> [Float] {
            guard let a = r[key]?.arrayValue else { throw .invalidConfig("rope scaling longrope has no \(key) list") }
            var out: [Float] = []
            for v in a {
                guard let d = v.doubleValue else { throw .invalidConfig("rope scaling \(key) has a value that is not a number") }
                out.append(Float(d))
            }
            return out
        }
        let original = json["original_max_position_embeddings"]?.intValue
            ?? r["original_max_position_embeddings"]?.intValue ?? maxPositions
        guard original > 0 else { throw .invalidConfig("original_max_position_embeddings must be positive") }
        var attention: Double
        if let a = r["attention_factor"]?.doubleValue {
            attention = a
        } else {
            let scale = r["factor"]?.doubleValue ?? Double(maxPositions) / Double(original)
            attention = Double(defaultAttentionFactor(scale: scale, originalMaxPositions: original))
        }
        return LongRoPE(shortFactors: try factors("short_factor"), longFactors: try factors("long_factor"),
                        originalMaxPositions: original, attentionFactor: Float(attention))
    }
}
