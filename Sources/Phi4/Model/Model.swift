/// The weight precision a model runs in, chosen at load or quantize time.
public enum WeightType: String, Sendable, CaseIterable {
    /// Full precision.
    case f32
    /// Q8_0 everywhere.
    case q8_0
    /// Q4_0 everywhere.
    case q4_0
    /// Q4_0, but `down_proj` and `lm_head` in Q8_0 (int4 hurts Phi models most there).
    case q4_0Mixed = "q4_0-mixed"
    /// llama.cpp's Q4_K_M mix: Q4_K, with `lm_head` and, in the layers that get more bits
    /// (``usesMoreBits(layer:of:)``), `qkv_proj` and `down_proj` in Q6_K.
    case q4_K_M = "q4_k_m"

    /// Which parts of the model a weight belongs to.
    public enum Role: Sendable {
        /// The token embedding (when `lm_head` is tied to it, it is loaded in `lmHead`'s format).
        case embedding
        /// The fused query/key/value projection.
        case qkv
        /// The attention output projection.
        case attention
        /// The fused gate and up projections.
        case gateUp
        /// The down projection.
        case down
        /// The output projection.
        case lmHead
    }

    /// llama.cpp's choice of the layers whose `down_proj` and fused `qkv_proj` get more bits in
    /// its _M mixes: the first and last eighth of the layers and every third layer in between.
    public static func usesMoreBits(layer i: Int, of n: Int) -> Bool {
        i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
    }

    /// The storage format of a weight of this role in layer `layer` of `layers` (the layer
    /// matters only to the Q4_K_M mix).
    public func format(for role: Role, layer: Int = 0, of layers: Int = 1) -> WeightFormat {
        switch self {
        case .f32: return .f32
        case .q8_0: return .q8_0
        case .q4_0: return .q4_0
        case .q4_0Mixed: return role == .down || role == .lmHead ? .q8_0 : .q4_0
        case .q4_K_M:
            if role == .lmHead { return .q6_K }
            if role == .down || role == .qkv { return WeightType.usesMoreBits(layer: layer, of: layers) ? .q6_K : .q4_K }
            return .q4_K
        }
    }
}

/// Options for loading a model.
public struct ModelLoadOptions: Sendable {
    /// The precision weights are kept in while running (quantized at load when needed).
    public var weightType: WeightType = .f32
    /// Refuse to load when the estimate exceeds the memory this process can use.
    public var checkMemory = true
    /// The context length the memory estimate reserves a KV cache for.
    public var plannedContextLength = 4096
    /// Called after each weight matrix that had to be converted — an HF checkpoint's, or a GGUF
    /// file's F16 / BF16 / F32 ones (quantized or widened at load, which takes minutes for a
    /// full-size file) — with the number of matrices done and in all. Not called for weights used
    /// in place.
    public var progress: (@Sendable (_ done: Int, _ total: Int) -> Void)?
    /// For a Hub reference (`OWNER/NAME[:QUANT][@REVISION]`): the GGUF file to run, by its path in
    /// the repository, when the quant tag does not pick one.
    public var hubFile: String?

    /// Default options: f32 weights, memory checked, 4096-token context planned.
    public init() {}
}

/// A loaded Phi-4 model: configuration, tokenizer and weights.
///
/// A model is immutable once loaded and may be shared by any number of threads and
/// ``Session``s at once.
public final class Model: Sendable {
    /// The hyper-parameters.
    public let config: ModelConfig
    /// The tokenizer.
    public let tokenizer: Tokenizer
    /// The weights.
    public let weights: ModelWeights
    /// Ids that end generation: the tokenizer's (files' eos, `<|im_end|>`, `<|endoftext|>`)
    /// plus config.json's `eos_token_id`.
    public let endOfGenerationIDs: Set<TokenID>
    /// Identifies the model for saved context states: a hash of its source's tensor table (names,
    /// types, shapes, sizes, and each tensor's first and last bytes — no gigabytes are read), its
    /// configuration and the formats its weights run in.
    public let fingerprint: UInt64
    /// Rows of the embedding that no token has (Phi-4-mini's 200,064 rows hold 200,029 ids, with
    /// unused ids between o200k's ranks and its special tokens); generation never samples them.
    public let unassignedIDs: [TokenID]

    /// Assembles a model from parts (the loaders use this; so can tests). `source` is the
    /// loader's hash of the files (0 for a model built in memory).
    public init(config: ModelConfig, tokenizer: Tokenizer, weights: ModelWeights, source: UInt64 = 0) throws(ModelError) {
        try config.validate()
        guard tokenizer.vocabularySize <= config.vocabSize else {
            throw .invalidConfig("the tokenizer has \(tokenizer.vocabularySize) ids but vocab_size is \(config.vocabSize)")
        }
        self.config = config
        self.tokenizer = tokenizer
        self.weights = weights
        var stop = tokenizer.endOfGenerationIDs
        for id in config.eosTokenIDs where id >= 0 && id < config.vocabSize { stop.insert(TokenID(id)) }
        self.endOfGenerationIDs = stop
        self.unassignedIDs = (0..<config.vocabSize).lazy.map { TokenID($0) }.filter { !tokenizer.isValid($0) }
        var h = FNV1a()
        h.add(source)
        h.add("\(config)")
        h.add(tokenizer.vocabularySize)
        for m in [weights.embedding, weights.lmHead] + weights.layers.flatMap({ [$0.qkv, $0.output, $0.gateUp, $0.down] }) {
            h.add(m.format.rawValue)
        }
        fingerprint = h.value
        // Choose the fastest kernel of each format and batch size on this CPU, once per process.
        Kernels.calibrate(([weights.lmHead] + weights.layers.flatMap { [$0.qkv, $0.output, $0.gateUp, $0.down] }).map(\.format))
    }

    /// The formats of the matrices the forward pass multiplies by (every layer's and the output
    /// projection), each once, in order of first use.
    public var matrixFormats: [WeightFormat] {
        var seen = Set<WeightFormat>()
        return (weights.layers.flatMap { [$0.qkv, $0.output, $0.gateUp, $0.down] } + [weights.lmHead]).map(\.format)
            .filter { seen.insert($0).inserted }
    }

    /// The configuration of the model at `path` (a GGUF file or an HF directory), without
    /// loading its weights.
    public static func config(path: String) throws(ModelError) -> ModelConfig {
        if path.hasSuffix(".gguf") { return try GGUFModel.config(try GGUFFile(path: path), path: path) }
        return try hfConfig(FileIO.join(path, "config.json"))
    }

    /// Reads and validates an HF `config.json`.
    static func hfConfig(_ configPath: String) throws(ModelError) -> ModelConfig {
        let json: JSONValue
        do {
            json = try JSONParser.parse(try FileIO.readAll(configPath, limit: 1 << 24))
        } catch let e as FileError {
            throw .io(e.description)
        } catch {
            throw .invalidConfig("\(configPath): \(error)")
        }
        return try ModelConfig.parse(json, source: configPath)
    }

    /// Loads a model: an HF checkpoint directory (`config.json`, safetensors weights in one file or
    /// shards, the tokenizer files, `generation_config.json` when present) or a GGUF file
    /// (`*.gguf`, architecture `phi3`, with its tokenizer in the metadata).
    ///
    /// Before reading any weight the memory the model needs is estimated and compared with what
    /// the system can give (MemAvailable and the cgroup limit); a model that would not fit is
    /// refused with ``ModelError/insufficientMemory(_:)``, which says how much is needed.
    ///
    /// `path` may also name a model on the Hugging Face Hub, `OWNER/NAME[:QUANT][@REVISION]` (an
    /// existing path always wins; `hf://…` forces the Hub): it is run from the Hugging Face cache
    /// shared with huggingface_hub and llama.cpp (``HubCache``) when the cache holds it — the
    /// library itself never downloads; `phi4 pull` or huggingface_hub does.
    public static func load(path: String, options: ModelLoadOptions = ModelLoadOptions()) throws(ModelError) -> Model {
        if let ref = ModelReference(parsing: path), ref.forced || !FileIO.exists(path) {
            let cache = HubCache.fromEnvironment()
            guard let local = cache.localModel(for: ref, explicitFile: options.hubFile) else {
                throw .io("\(ref) is not in the Hugging Face cache (\(cache.root)); download it with `phi4 pull \(ref)` or huggingface_hub")
            }
            return try load(path: local, options: options)
        }
        if path.hasSuffix(".gguf") && !FileIO.isDirectory(path) {
            guard FileIO.exists(path) else { throw .io("\(path): no such file") }
            return try GGUFModel.load(path: path, options: options)
        }
        guard FileIO.isDirectory(path) else { throw .io("\(path): not a model directory or .gguf file") }
        let configPath = FileIO.join(path, "config.json")
        guard FileIO.exists(configPath) else { throw .io("\(path): no config.json") }
        let config = try hfConfig(configPath)

        if options.checkMemory {
            let need = MemoryEstimate(config: config, weights: options.weightType,
                                      contextLength: min(options.plannedContextLength, config.maxPositions))
            try need.check()
        }
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer.load(path: path) } catch { throw .tokenizer(error) }
        let checkpoint = try SafeTensorsCheckpoint(directory: path)
        let weights = try loadWeights(checkpoint.tensors, config: config, type: options.weightType, progress: options.progress)
        var source = FNV1a()
        for name in checkpoint.tensors.keys.sorted() {
            let t = checkpoint.tensors[name]!
            source.addTensor(name: name, type: t.dtype.rawValue, shape: t.shape, data: t.data)
        }
        return try Model(config: config, tokenizer: tokenizer, weights: weights, source: source.value)
    }

    /// Binds HF tensor names to the decoder's weights, checking every shape against the config.
    static func loadWeights(_ tensors: [String: TensorInfo], config c: ModelConfig, type: WeightType = .f32,
                            progress: (@Sendable (_ done: Int, _ total: Int) -> Void)? = nil) throws(ModelError) -> ModelWeights {
        let total = 4 * c.layerCount + (c.tieWordEmbeddings && tensors["lm_head.weight"] == nil ? 0 : 1)
        var done = 0
        func tensor(_ name: String, _ shape: [Int]) throws(ModelError) -> TensorInfo {
            guard let t = tensors[name] else { throw .missingTensor(name) }
            guard t.shape == shape else {
                throw .shapeMismatch("\(name) has shape \(t.shape), the config implies \(shape)")
            }
            return t
        }
        func matrix(_ name: String, _ rows: Int, _ cols: Int, _ role: WeightType.Role, layer: Int = 0) throws(ModelError) -> WeightMatrix {
            let m = try WeightMatrix.load(try tensor(name, [rows, cols]), rows: rows, cols: cols,
                                          format: type.format(for: role, layer: layer, of: c.layerCount))
            if role != .embedding {
                done += 1
                progress?(min(done, total), total)
            }
            return m
        }
        func vector(_ name: String, _ n: Int) throws(ModelError) -> [Float] {
            let t = try tensor(name, [n])
            return [Float](unsafeUninitializedCapacity: n) { buf, count in
                convertToFloat(t, buf.baseAddress!, count: n)
                count = n
            }
        }
        // A tied output projection is the embedding matrix itself, stored in lm_head's format.
        let tied = c.tieWordEmbeddings && tensors["lm_head.weight"] == nil
        return try ModelWeights.build(config: c, tied: tied,
                                      matrix: { (t, rows, cols, role) throws(ModelError) in try matrix(t.hfName, rows, cols, role, layer: t.layer) },
                                      vector: { (t, n) throws(ModelError) in try vector(t.hfName, n) })
    }
}

/// How much memory a model needs, and whether the system can give it.
public struct MemoryEstimate: Sendable {
    /// Bytes of weights in the run format.
    public let weightBytes: Int
    /// Bytes of KV cache for the planned context.
    public let cacheBytes: Int
    /// Bytes of scratch buffers (activations of one prefill chunk, logits).
    public let scratchBytes: Int

    /// The weight type estimated.
    public let weightType: WeightType

    /// Total bytes needed.
    public var total: Int { weightBytes + cacheBytes + scratchBytes }

    /// Estimates the memory of `config` with weights of `weights` type and a cache of
    /// `contextLength` positions (f32 for f32 weights, f16 otherwise: the sessions' defaults).
    public init(config c: ModelConfig, weights: WeightType, contextLength: Int) {
        let d = c.hiddenSize
        func bytes(_ rows: Int, _ cols: Int, _ role: WeightType.Role, _ layer: Int = 0) -> Int {
            let f = weights.format(for: role, layer: layer, of: c.layerCount)
            return rows * WeightMatrix.storedFormat(f, cols: cols).rowBytes(cols)
        }
        var layerBytes = 0
        for i in 0..<c.layerCount {
            layerBytes += bytes(c.qDim + 2 * c.kvDim, d, .qkv, i) + bytes(d, c.qDim, .attention, i)
                + bytes(2 * c.intermediateSize, d, .gateUp, i) + bytes(d, c.intermediateSize, .down, i) + 2 * d * 4
        }
        let tied = c.tieWordEmbeddings
        weightBytes = (tied ? 0 : bytes(c.vocabSize, d, .embedding)) + bytes(c.vocabSize, d, .lmHead) + layerBytes + d * 4
        weightType = weights
        cacheBytes = c.layerCount * contextLength * c.kvDim * 2 * (weights == .f32 ? 4 : 2)  // f16 cache when quantized
        let batch = 512
        scratchBytes = batch * (c.hiddenSize * 4 + c.qDim + 2 * c.kvDim + 3 * c.intermediateSize) * 4 + c.vocabSize * 4 * 2
    }

    /// An estimate from its parts (for files whose weights are partly used in place).
    public init(weightBytes: Int, cacheBytes: Int, scratchBytes: Int, weightType: WeightType) {
        self.weightBytes = weightBytes
        self.cacheBytes = cacheBytes
        self.scratchBytes = scratchBytes
        self.weightType = weightType
    }

    /// Bytes of the KV cache of `contextLength` positions of `config` with `type` elements.
    public static func cacheBytes(config c: ModelConfig, contextLength: Int, type: KVCacheType) -> Int {
        2 * c.layerCount * contextLength * type.rowBytes(c.kvDim)
    }

    /// Bytes this process can still allocate: the lower of /proc/meminfo's MemAvailable and the
    /// cgroup v2 limit minus current usage (nil when neither can be read).
    public static func availableBytes() -> Int? {
        var best: Int?
        if let text = try? FileIO.readAll("/proc/meminfo", limit: 1 << 16) {
            for line in String(decoding: text, as: UTF8.self).split(separator: "\n") where line.hasPrefix("MemAvailable:") {
                let digits = line.filter { $0.isNumber }
                if let kb = Int(digits) { best = kb * 1024 }
            }
        }
        if let limitText = try? FileIO.readAll("/sys/fs/cgroup/memory.max", limit: 4096),
           let usageText = try? FileIO.readAll("/sys/fs/cgroup/memory.current", limit: 4096),
           let limit = Int(String(decoding: limitText, as: UTF8.self).filter { $0.isNumber }),
           let usage = Int(String(decoding: usageText, as: UTF8.self).filter { $0.isNumber }),
           !String(decoding: limitText, as: UTF8.self).hasPrefix("max") {
            let free = max(0, limit - usage)
            best = best.map { min($0, free) } ?? free
        }
        return best
    }

    /// Throws ``ModelError/insufficientMemory(_:)`` when ``total`` exceeds ``availableBytes()``.
    public func check() throws(ModelError) {
        guard let available = MemoryEstimate.availableBytes() else { return }
        if total > available {
            func gb(_ b: Int) -> String {
                let v = Double(b) / 1e9
                return String(Int(v * 10) / 10) + "." + String(Int(v * 10) % 10) + " GB"
            }
            if weightBytes == 0 {
                throw .insufficientMemory("the context needs about \(gb(total)) (\(gb(cacheBytes)) of KV cache, \(gb(scratchBytes)) of scratch) but only \(gb(available)) is available; use a shorter context")
            }
            throw .insufficientMemory("the model needs about \(gb(total)) (\(gb(weightBytes)) of \(weightType.rawValue) weights, \(gb(cacheBytes)) of KV cache, \(gb(scratchBytes)) of scratch) but only \(gb(available)) is available; use a smaller weight type (q8_0 needs about 8.5/32 of the f32 weights, q4_0 about 4.5/32) or a shorter context")
        }
    }
}
