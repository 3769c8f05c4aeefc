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

    /// The number of weights (parameters) of a model of this shape.
    public var parameterCount: Int {
        let d = hiddenSize
        let perLayer = d * (qDim + 2 * kvDim) + qDim * d + d * 2 * intermediateSize + intermediateSize * d + 2 * d
        return vocabSize * d * (tieWordEmbeddings ? 1 : 2) + layerCount * perLayer + d
    }

    /// Creates a configuration; see ``validate()``.
    public init(hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int, kvHeadCount: Int,
                headDim: Int, vocabSize: Int, maxPositions: Int, rmsNormEps: Float, ropeTheta: Float,
                tieWordEmbeddings: Bool = false, storedDType: String? = nil, bosTokenID: Int? = nil,
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
    }

    /// Reads an HF `config.json` (a `Phi3ForCausalLM`).
    ///
    /// Both key spellings are accepted: Phi-4's published file (`rope_theta`, `torch_dtype`) and
    /// newer transformers versions (`rope_parameters: {rope_theta, rope_type: "default"}`, `dtype`).
    /// Other architectures, rope scaling (LongRoPE …), a partial rotary factor ≠ 1, sliding-window
    /// attention and Phi-4-mini are refused with a message that says why.
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
        if partial != 1.0 {
            let hint = vocab == 200064 ? " — this looks like Phi-4-mini (partial rotary, o200k tokenizer), which libphi4 does not run" : ""
            throw .unsupported("partial_rotary_factor \(partial) (only full rotary embeddings are implemented)\(hint)")
        }
        if let window = json["sliding_window"], !window.isNull {
            let maxPos = try optionalInt("max_position_embeddings") ?? 0
            if let w = window.intValue, w > 0 && w < maxPos {
                throw .unsupported("sliding_window \(w) (only full causal attention is implemented)")
            }
        }

        var theta: Double? = json["rope_theta"]?.doubleValue
        if let params = json["rope_parameters"], !params.isNull {
            let type = params["rope_type"]?.stringValue ?? "default"
            guard type == "default" else { throw .unsupported("rope_parameters.rope_type \(type) (only default RoPE is implemented)") }
            if let t = params["rope_theta"]?.doubleValue { theta = t }
        }
        if let scaling = json["rope_scaling"], !scaling.isNull {
            let type = scaling["rope_type"]?.stringValue ?? scaling["type"]?.stringValue ?? "?"
            if type != "default" {
                throw .unsupported("rope_scaling \(type) (LongRoPE and other scaled RoPE variants are not implemented)")
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
        let config = ModelConfig(
            hiddenSize: hidden,
            intermediateSize: try int("intermediate_size"),
            layerCount: try int("num_hidden_layers"),
            headCount: heads,
            kvHeadCount: kvHeads,
            headDim: headDim,
            vocabSize: vocab,
            maxPositions: try optionalInt("max_position_embeddings") ?? 4096,
            rmsNormEps: Float(json["rms_norm_eps"]?.doubleValue ?? 1e-5),
            ropeTheta: Float(theta ?? 10000),
            tieWordEmbeddings: json["tie_word_embeddings"]?.boolValue ?? false,
            storedDType: json["torch_dtype"]?.stringValue ?? json["dtype"]?.stringValue,
            bosTokenID: try optionalInt("bos_token_id"),
            eosTokenIDs: try ids("eos_token_id"),
            padTokenID: try optionalInt("pad_token_id"))
        try config.validate()
        return config
    }
}
