// The C ABI of include/phi4.h: one @_cdecl function per declaration, each a thin shell over
// the Swift API. Every entry point validates its pointers and handles, converts Swift errors
// to status codes and records the message for phi4_last_error(); nothing here may trap.

import CPhi4ABI
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Errors

/// An error to report through the ABI: a status and a message.
struct ABIError: Error {
    let status: phi4_status
    let message: String

    static func invalid(_ m: String) -> ABIError { ABIError(status: phi4_status(PHI4_ERR_INVALID_ARGUMENT), message: m) }
    static func handle(_ m: String) -> ABIError { ABIError(status: phi4_status(PHI4_ERR_INVALID_HANDLE), message: m) }
    static func tooSmall(_ m: String) -> ABIError { ABIError(status: phi4_status(PHI4_ERR_BUFFER_TOO_SMALL), message: m) }
}

/// The status for an engine error.
func status(of error: Error) -> ABIError {
    if let e = error as? ABIError { return e }
    if let e = error as? ModelError {
        let code: Int32
        switch e {
        case .io: code = Int32(PHI4_ERR_IO)
        case .invalidConfig, .invalidWeights, .missingTensor, .shapeMismatch: code = Int32(PHI4_ERR_INVALID_MODEL)
        case .unsupported: code = Int32(PHI4_ERR_UNSUPPORTED)
        case .insufficientMemory: code = Int32(PHI4_ERR_OUT_OF_MEMORY)
        case .invalidRequest: code = Int32(PHI4_ERR_INVALID_ARGUMENT)
        case .contextFull: code = Int32(PHI4_ERR_CONTEXT_FULL)
        case .cancelled: code = Int32(PHI4_ERR_CANCELLED)
        case .tokenizer(let t): return status(of: t)
        }
        return ABIError(status: code, message: e.description)
    }
    if let e = error as? TokenizerError {
        let code: Int32
        switch e {
        case .io: code = Int32(PHI4_ERR_IO)
        case .malformedJSON, .invalidFormat, .missingSpecialToken: code = Int32(PHI4_ERR_INVALID_MODEL)
        case .unsupported: code = Int32(PHI4_ERR_UNSUPPORTED)
        case .invalidUTF8, .unknownTokenID, .invalidMessage: code = Int32(PHI4_ERR_INVALID_ARGUMENT)
        }
        return ABIError(status: code, message: e.description)
    }
    return ABIError(status: phi4_status(PHI4_ERR_INTERNAL), message: "\(error)")
}

/// The calling thread's last error message, in thread-local storage.
enum LastError {
    static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { p in free(p) }
        return k
    }()
    static let empty: UnsafePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        p.pointee = 0
        return UnsafePointer(p)
    }()

    static func set(_ message: String) {
        if let old = pthread_getspecific(key) { free(old) }
        let copy = message.withCString { strdup($0) }
        pthread_setspecific(key, copy)
        Log.write(Int32(PHI4_LOG_DEBUG), message)
    }

    static var current: UnsafePointer<CChar> {
        guard let p = pthread_getspecific(key) else { return empty }
        return UnsafePointer(p.assumingMemoryBound(to: CChar.self))
    }
}

/// Runs `body`, turning a thrown error into its status (and the thread's last error).
@inline(__always)
func guarded(_ body: () throws -> Void) -> phi4_status {
    do {
        try body()
        return phi4_status(PHI4_OK)
    } catch {
        let e = status(of: error)
        LastError.set(e.message)
        return e.status
    }
}

// MARK: - Logging

/// The process-wide log callback.
enum Log {
    nonisolated(unsafe) static var callback: phi4_log_callback?
    nonisolated(unsafe) static var userData: UnsafeMutableRawPointer?
    nonisolated(unsafe) static var lock = pthread_mutex_t()
    static let initialized: Void = {
        pthread_mutex_init(&lock, nil)
        pthread_atfork({ pthread_mutex_lock(&Log.lock) },
                       { pthread_mutex_unlock(&Log.lock) },
                       { pthread_mutex_unlock(&Log.lock) })
    }()

    static func write(_ level: Int32, _ message: String) {
        _ = initialized
        pthread_mutex_lock(&lock)
        let cb = callback, ud = userData
        pthread_mutex_unlock(&lock)
        guard let cb else { return }
        message.withCString { cb(level, $0, ud) }
    }
}

// MARK: - Handles

/// Live handles, so that a freed or foreign pointer is an error instead of a crash.
enum Handles {
    enum Kind { case model, tokenizer, borrowedTokenizer, context, sampler }
    nonisolated(unsafe) static var live: [UnsafeMutableRawPointer: Kind] = [:]
    nonisolated(unsafe) static var lock = pthread_mutex_t()
    /// The lock is held across fork() (pthread_atfork), so a child process never inherits it
    /// locked by a thread that does not exist there.
    static let initialized: Void = {
        pthread_mutex_init(&lock, nil)
        pthread_atfork({ pthread_mutex_lock(&Handles.lock) },
                       { pthread_mutex_unlock(&Handles.lock) },
                       { pthread_mutex_unlock(&Handles.lock) })
    }()

    /// Registers a new handle for `object` (retained until ``release(_:kind:)``).
    static func register(_ object: AnyObject, _ kind: Kind) -> UnsafeMutableRawPointer {
        _ = initialized
        let p = Unmanaged.passRetained(object).toOpaque()
        pthread_mutex_lock(&lock)
        live[p] = kind
        pthread_mutex_unlock(&lock)
        return p
    }

    /// The object behind a live handle of one of `kinds`.
    static func get<T: AnyObject>(_ p: UnsafeRawPointer?, _ kinds: [Kind], as: T.Type) throws -> T {
        _ = initialized
        guard let p else { throw ABIError.invalid("the handle is NULL") }
        let key = UnsafeMutableRawPointer(mutating: p)
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        guard let kind = live[key], kinds.contains(kind) else {
            throw ABIError.handle("\(p) is not a live \(kinds.first.map { "\($0)" } ?? "") handle")
        }
        return Unmanaged<T>.fromOpaque(p).takeUnretainedValue()
    }

    /// Unregisters a handle and drops the reference it held. Returns false if it was not live.
    @discardableResult
    static func release(_ p: UnsafeRawPointer?, _ kind: Kind) -> Bool {
        _ = initialized
        guard let p else { return true }
        let key = UnsafeMutableRawPointer(mutating: p)
        pthread_mutex_lock(&lock)
        let ok = live[key] == kind
        if ok { live[key] = nil }
        pthread_mutex_unlock(&lock)
        if ok { Unmanaged<AnyObject>.fromOpaque(p).release() }
        return ok
    }
}

final class ModelBox {
    let model: Model
    var tokenizerHandle: UnsafeMutableRawPointer?

    init(_ model: Model) {
        self.model = model
        tokenizerHandle = Handles.register(TokenizerBox(model.tokenizer), .borrowedTokenizer)
    }

    deinit { Handles.release(tokenizerHandle, .borrowedTokenizer) }
}

final class TokenizerBox {
    let tokenizer: Tokenizer
    init(_ t: Tokenizer) { tokenizer = t }
}

final class SamplerBox {
    var sampler: Sampler
    init(_ s: Sampler) { sampler = s }
}

final class ContextBox {
    let modelBox: ModelBox
    let session: Session
    var logits: [Float] = []
    var rows = 0
    var generation: Generation?
    var pending: ([UInt8], TokenID)?
    /// What the last finished generation produced (tokens, log-probabilities, lookup counts).
    var lastResult: GenerationResult?

    /// The result so far of the current generation, else of the last one (nil: none yet).
    var generated: GenerationResult? { generation?.result ?? lastResult }

    /// Forgets the current generation, keeping what it produced for the query functions.
    func endGeneration() {
        if let g = generation { lastResult = g.result }
        generation = nil
        pending = nil
    }
    var busy = p4k_flag(value: 0)

    init(_ modelBox: ModelBox, _ session: Session) {
        self.modelBox = modelBox
        self.session = session
    }

    /// Runs `body` while holding the context; a concurrent caller gets PHI4_ERR_BUSY.
    func exclusive<R>(_ body: () throws -> R) throws -> R {
        if p4k_flag_exchange(&busy, 1) != 0 {
            throw ABIError(status: phi4_status(PHI4_ERR_BUSY), message: "another thread is using this context")
        }
        defer { p4k_flag_store(&busy, 0) }
        return try body()
    }
}

func model(_ p: OpaquePointer?) throws -> ModelBox { try Handles.get(UnsafeRawPointer(p), [.model], as: ModelBox.self) }
func tokenizer(_ p: OpaquePointer?) throws -> Tokenizer {
    try Handles.get(UnsafeRawPointer(p), [.tokenizer, .borrowedTokenizer], as: TokenizerBox.self).tokenizer
}
func context(_ p: OpaquePointer?) throws -> ContextBox { try Handles.get(UnsafeRawPointer(p), [.context], as: ContextBox.self) }

// MARK: - Argument helpers

/// The largest count accepted for any array argument (guards against garbage sizes).
let maxCount = 1 << 28

func count(_ n: Int, _ what: String) throws -> Int {
    guard n >= 0 && n <= maxCount else { throw ABIError.invalid("\(what) \(n) is out of range") }
    return n
}

/// A NUL-terminated UTF-8 string argument.
func string(_ p: UnsafePointer<CChar>?, _ what: String) throws -> String {
    guard let p else { throw ABIError.invalid("\(what) is NULL") }
    guard let s = String(validatingCString: p) else { throw ABIError.invalid("\(what) is not valid UTF-8") }
    return s
}

/// `n` token ids from a caller's array.
func ids(_ p: UnsafePointer<Int32>?, _ n: Int, _ what: String) throws -> [TokenID] {
    let n = try count(n, what)
    if n == 0 { return [] }
    guard let p else { throw ABIError.invalid("\(what) is NULL") }
    return Array(UnsafeBufferPointer(start: p, count: n))
}

/// Copies a params struct that begins with `struct_size`, keeping defaults for fields the
/// caller's (older) struct does not have.
func params<T>(_ p: UnsafePointer<T>?, defaults: T) throws -> T {
    guard let p else { return defaults }
    let size = UnsafeRawPointer(p).loadUnaligned(as: Int.self)
    guard size >= MemoryLayout<Int>.size && size <= 1 << 16 else {
        throw ABIError.invalid("params struct_size \(size) is invalid (initialize params with the *_default_params() function)")
    }
    var out = defaults
    withUnsafeMutableBytes(of: &out) { dst in
        _ = memcpy(dst.baseAddress!, UnsafeRawPointer(p), min(size, MemoryLayout<T>.size))
        dst.storeBytes(of: MemoryLayout<T>.size, as: Int.self)
    }
    return out
}

/// Writes ids to a caller's buffer, reporting the needed count.
func writeIDs(_ list: [TokenID], _ out: UnsafeMutablePointer<Int32>?, _ capacity: Int, _ n: UnsafeMutablePointer<Int>?) throws {
    guard let n else { throw ABIError.invalid("the count pointer is NULL") }
    n.pointee = list.count
    if list.count > capacity { throw ABIError.tooSmall("\(list.count) ids do not fit in a buffer of \(capacity)") }
    if list.isEmpty { return }
    guard let out else { throw ABIError.invalid("the output buffer is NULL") }
    list.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: list.count) }
}

/// Writes bytes to a caller's buffer (NUL-terminated when there is room, if asked).
func writeBytes(_ bytes: [UInt8], _ out: UnsafeMutablePointer<CChar>?, _ capacity: Int, _ n: UnsafeMutablePointer<Int>?, nul: Bool) throws {
    guard let n else { throw ABIError.invalid("the length pointer is NULL") }
    n.pointee = bytes.count
    if bytes.count > capacity { throw ABIError.tooSmall("\(bytes.count) bytes do not fit in a buffer of \(capacity)") }
    guard let out else {
        if bytes.isEmpty && capacity == 0 { return }
        throw ABIError.invalid("the output buffer is NULL")
    }
    bytes.withUnsafeBytes { src in
        if !bytes.isEmpty { UnsafeMutableRawPointer(out).copyMemory(from: src.baseAddress!, byteCount: bytes.count) }
    }
    if nul && bytes.count < capacity { out[bytes.count] = 0 }
}

// MARK: - Versions and errors

@_cdecl("phi4_version")
public func phi4_version() -> UnsafePointer<CChar> { versionCString }

private let versionCString: UnsafePointer<CChar> = {
    let bytes = Array(Phi4Version.string.utf8CString)
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
    p.initialize(from: bytes, count: bytes.count)
    return UnsafePointer(p)
}()

@_cdecl("phi4_abi_version")
public func phi4_abi_version() -> Int32 { Int32(PHI4_ABI_VERSION) }

@_cdecl("phi4_last_error")
public func phi4_last_error() -> UnsafePointer<CChar> { LastError.current }

private let statusNames: [UnsafePointer<CChar>] = [
    "PHI4_OK", "PHI4_ERR_INVALID_ARGUMENT", "PHI4_ERR_INVALID_HANDLE", "PHI4_ERR_IO", "PHI4_ERR_INVALID_MODEL",
    "PHI4_ERR_UNSUPPORTED", "PHI4_ERR_OUT_OF_MEMORY", "PHI4_ERR_BUFFER_TOO_SMALL", "PHI4_ERR_CONTEXT_FULL",
    "PHI4_ERR_CANCELLED", "PHI4_ERR_BUSY", "PHI4_ERR_INTERNAL", "unknown status",
].map { name in
    let bytes = Array(name.utf8CString)
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
    p.initialize(from: bytes, count: bytes.count)
    return UnsafePointer(p)
}

@_cdecl("phi4_status_name")
public func phi4_status_name(_ s: phi4_status) -> UnsafePointer<CChar> {
    statusNames[s >= 0 && Int(s) < statusNames.count - 1 ? Int(s) : statusNames.count - 1]
}

@_cdecl("phi4_set_log_callback")
public func phi4_set_log_callback(_ cb: phi4_log_callback?, _ userData: UnsafeMutableRawPointer?) {
    _ = Log.initialized
    pthread_mutex_lock(&Log.lock)
    Log.callback = cb
    Log.userData = userData
    pthread_mutex_unlock(&Log.lock)
}

@_cdecl("phi4_default_thread_count")
public func phi4_default_thread_count() -> Int32 { Int32(ThreadPool.availableCPUs()) }

// MARK: - Models

@_cdecl("phi4_model_default_params")
public func phi4_model_default_params() -> phi4_model_params {
    phi4_model_params(struct_size: MemoryLayout<phi4_model_params>.size, weight_format: Int32(PHI4_WEIGHTS_F32), check_memory: 1)
}

@_cdecl("phi4_model_load")
public func phi4_model_load(_ path: UnsafePointer<CChar>?, _ p: UnsafePointer<phi4_model_params>?,
                            _ out: UnsafeMutablePointer<OpaquePointer?>?) -> phi4_status {
    out?.pointee = nil
    return guarded {
        guard let out else { throw ABIError.invalid("out_model is NULL") }
        let path = try string(path, "path")
        let prm = try params(p, defaults: phi4_model_default_params())
        let types: [WeightType] = [.f32, .q8_0, .q4_0, .q4_0Mixed]
        guard prm.weight_format >= 0 && Int(prm.weight_format) < types.count else {
            throw ABIError.invalid("unknown weight format \(prm.weight_format)")
        }
        var options = ModelLoadOptions()
        options.weightType = types[Int(prm.weight_format)]
        options.checkMemory = prm.check_memory != 0
        let m = try Model.load(path: path, options: options)
        Log.write(Int32(PHI4_LOG_INFO), "loaded \(path): \(m.config.layerCount) layers, vocabulary \(m.config.vocabSize)")
        out.pointee = OpaquePointer(Handles.register(ModelBox(m), .model))
    }
}

@_cdecl("phi4_model_free")
public func phi4_model_free(_ m: OpaquePointer?) {
    if !Handles.release(UnsafeRawPointer(m), .model) { LastError.set("phi4_model_free: not a live model handle") }
}

@_cdecl("phi4_model_get_info")
public func phi4_model_get_info(_ m: OpaquePointer?, _ info: UnsafeMutablePointer<phi4_model_info>?) -> phi4_status {
    guarded {
        let box = try model(m)
        guard let info else { throw ABIError.invalid("info is NULL") }
        let size = UnsafeRawPointer(info).loadUnaligned(as: Int.self)
        guard size >= MemoryLayout<Int>.size && size <= 1 << 16 else { throw ABIError.invalid("info->struct_size \(size) is invalid") }
        let c = box.model.config
        let t = box.model.tokenizer
        var v = phi4_model_info(
            struct_size: MemoryLayout<phi4_model_info>.size, vocab_size: Int32(c.vocabSize),
            context_length: Int32(c.maxPositions), layer_count: Int32(c.layerCount), hidden_size: Int32(c.hiddenSize),
            head_count: Int32(c.headCount), kv_head_count: Int32(c.kvHeadCount), bos_token: t.bosTokenID ?? -1,
            eos_token: t.eosTokenID ?? c.eosTokenIDs.first.map(Int32.init) ?? -1, pad_token: t.padTokenID ?? -1,
            parameter_count: Int64(c.parameterCount), weight_bytes: Int64(box.model.weights.byteCount))
        // Write the fields the caller's struct has room for; leave its struct_size alone.
        let header = MemoryLayout<Int>.size
        withUnsafeBytes(of: &v) { src in
            UnsafeMutableRawPointer(info).advanced(by: header)
                .copyMemory(from: src.baseAddress! + header, byteCount: min(size, MemoryLayout<phi4_model_info>.size) - header)
        }
    }
}

@_cdecl("phi4_model_eog_tokens")
public func phi4_model_eog_tokens(_ m: OpaquePointer?, _ out: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                                  _ n: UnsafeMutablePointer<Int>?) -> phi4_status {
    guarded {
        let box = try model(m)
        try writeIDs(box.model.endOfGenerationIDs.sorted(), out, capacity, n)
    }
}

@_cdecl("phi4_model_tokenizer")
public func phi4_model_tokenizer(_ m: OpaquePointer?) -> OpaquePointer? {
    do {
        return OpaquePointer(try model(m).tokenizerHandle)
    } catch {
        LastError.set(status(of: error).message)
        return nil
    }
}

// MARK: - Tokenizers

@_cdecl("phi4_tokenizer_load")
public func phi4_tokenizer_load(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> phi4_status {
    out?.pointee = nil
    return guarded {
        guard let out else { throw ABIError.invalid("out_tokenizer is NULL") }
        let t = try Tokenizer.load(path: try string(path, "path"))
        out.pointee = OpaquePointer(Handles.register(TokenizerBox(t), .tokenizer))
    }
}

@_cdecl("phi4_tokenizer_free")
public func phi4_tokenizer_free(_ t: OpaquePointer?) {
    if !Handles.release(UnsafeRawPointer(t), .tokenizer) {
        LastError.set("phi4_tokenizer_free: not a tokenizer from phi4_tokenizer_load")
    }
}

@_cdecl("phi4_tokenize")
public func phi4_tokenize(_ t: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ length: Int, _ special: Int32,
                          _ out: UnsafeMutablePointer<Int32>?, _ capacity: Int, _ n: UnsafeMutablePointer<Int>?) -> phi4_status {
    guarded {
        let tok = try tokenizer(t)
        let length = try count(length, "text_len")
        var bytes: [UInt8] = []
        if length > 0 {
            guard let text else { throw ABIError.invalid("text is NULL") }
            bytes = Array(UnsafeRawBufferPointer(start: text, count: length))
        }
        let list = try tok.encode(utf8: bytes, allowSpecial: special != 0)
        try writeIDs(list, out, capacity, n)
    }
}

@_cdecl("phi4_detokenize")
public func phi4_detokenize(_ t: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ nTokens: Int,
                            _ out: UnsafeMutablePointer<CChar>?, _ capacity: Int, _ n: UnsafeMutablePointer<Int>?) -> phi4_status {
    guarded {
        let tok = try tokenizer(t)
        let text = try tok.decodeText(try ids(tokens, nTokens, "tokens"))
        try writeBytes(Array(text.utf8), out, capacity, n, nul: true)
    }
}

@_cdecl("phi4_token_to_piece")
public func phi4_token_to_piece(_ t: OpaquePointer?, _ token: Int32, _ out: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                                _ n: UnsafeMutablePointer<Int>?) -> phi4_status {
    guarded {
        let tok = try tokenizer(t)
        try writeBytes(try tok.tokenBytes(token), out, capacity, n, nul: false)
    }
}

@_cdecl("phi4_token_lookup")
public func phi4_token_lookup(_ t: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<Int32>?) -> phi4_status {
    guarded {
        let tok = try tokenizer(t)
        let s = try string(text, "special_text")
        guard let out else { throw ABIError.invalid("token is NULL") }
        guard let id = tok.specialTokenID(s) else { throw ABIError.invalid("\(s) is not a special token") }
        out.pointee = id
    }
}

/// The C chat messages as Swift ones (every role and content checked as UTF-8).
func chatMessages(_ messages: UnsafePointer<phi4_chat_message>?, _ n: Int) throws -> [ChatMessage] {
    let total = try count(n, "n_messages")
    guard total > 0 else { return [] }
    guard let messages else { throw ABIError.invalid("messages is NULL") }
    return try (0..<total).map { i in
        ChatMessage(role: try string(messages[i].role, "messages[\(i)].role"),
                    content: try string(messages[i].content, "messages[\(i)].content"))
    }
}

@_cdecl("phi4_chat_template")
public func phi4_chat_template(_ t: OpaquePointer?, _ messages: UnsafePointer<phi4_chat_message>?, _ nMessages: Int,
                               _ addPrompt: Int32, _ out: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                               _ n: UnsafeMutablePointer<Int>?) -> phi4_status {
    guarded {
        let tok = try tokenizer(t)
        let list = try chatMessages(messages, nMessages)
        try writeIDs(try tok.applyChatTemplate(list, addGenerationPrompt: addPrompt != 0), out, capacity, n)
    }
}

@_cdecl("phi4_chat_template_fit")
public func phi4_chat_template_fit(_ t: OpaquePointer?, _ messages: UnsafePointer<phi4_chat_message>?, _ nMessages: Int,
                                   _ addPrompt: Int32, _ budget: Int, _ out: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                                   _ n: UnsafeMutablePointer<Int>?, _ dropped: UnsafeMutablePointer<Int>?) -> phi4_status {
    guarded {
        let tok = try tokenizer(t)
        let limit = try count(budget, "budget")
        guard let dropped else { throw ABIError.invalid("n_dropped is NULL") }
        let list = try chatMessages(messages, nMessages)
        let (ids, k) = try tok.applyChatTemplate(list, fitting: limit, addGenerationPrompt: addPrompt != 0)
        dropped.pointee = k
        try writeIDs(ids, out, capacity, n)
    }
}

// MARK: - Contexts

@_cdecl("phi4_context_default_params")
public func phi4_context_default_params() -> phi4_context_params {
    phi4_context_params(struct_size: MemoryLayout<phi4_context_params>.size, n_ctx: 0, n_batch: 512, n_threads: 0, kv_type: 0)
}

@_cdecl("phi4_context_create")
public func phi4_context_create(_ m: OpaquePointer?, _ p: UnsafePointer<phi4_context_params>?,
                                _ out: UnsafeMutablePointer<OpaquePointer?>?) -> phi4_status {
    out?.pointee = nil
    return guarded {
        let box = try model(m)
        guard let out else { throw ABIError.invalid("out_context is NULL") }
        let prm = try params(p, defaults: phi4_context_default_params())
        guard prm.n_ctx >= 0, prm.n_batch > 0, prm.n_threads >= 0 else {
            throw ABIError.invalid("n_ctx, n_batch and n_threads must not be negative (n_batch > 0)")
        }
        let kv: KVCacheType?
        switch prm.kv_type {
        case 0: kv = nil
        case 1: kv = .f32
        case 2: kv = .f16
        case 3: kv = .q8_0
        default: throw ABIError.invalid("kv_type \(prm.kv_type) is not a PHI4_KV_* value")
        }
        let session = try Session(model: box.model, contextLength: prm.n_ctx == 0 ? nil : Int(prm.n_ctx),
                                  batchSize: Int(prm.n_batch), threads: prm.n_threads == 0 ? nil : Int(prm.n_threads),
                                  cacheType: kv)
        out.pointee = OpaquePointer(Handles.register(ContextBox(box, session), .context))
    }
}

@_cdecl("phi4_context_free")
public func phi4_context_free(_ c: OpaquePointer?) {
    if !Handles.release(UnsafeRawPointer(c), .context) { LastError.set("phi4_context_free: not a live context handle") }
}

@_cdecl("phi4_context_reset")
public func phi4_context_reset(_ c: OpaquePointer?) -> phi4_status {
    guarded {
        let box = try context(c)
        try box.exclusive {
            box.endGeneration()
            box.session.reset()
            box.rows = 0
        }
    }
}

@_cdecl("phi4_context_truncate")
public func phi4_context_truncate(_ c: OpaquePointer?, _ n: Int32) -> phi4_status {
    guarded {
        let box = try context(c)
        try box.exclusive {
            box.endGeneration()
            box.session.truncate(to: Int(n))
            box.rows = 0
        }
    }
}

@_cdecl("phi4_context_length")
public func phi4_context_length(_ c: OpaquePointer?) -> Int32 {
    guard let box = try? context(c) else { return -1 }
    return Int32(box.session.tokens.count)
}

@_cdecl("phi4_context_capacity")
public func phi4_context_capacity(_ c: OpaquePointer?) -> Int32 {
    guard let box = try? context(c) else { return -1 }
    return Int32(box.session.contextLength)
}

@_cdecl("phi4_eval")
public func phi4_eval(_ c: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ n: Int, _ all: Int32) -> phi4_status {
    guarded {
        let box = try context(c)
        let list = try ids(tokens, n, "tokens")
        try box.exclusive {
            box.endGeneration()
            let logits: [Float]
            do {
                logits = try box.session.evaluate(list, allLogits: all != 0)
            } catch ModelError.cancelled {
                box.rows = 0 // finished chunks were added: the old logits no longer belong to the last position
                throw ModelError.cancelled
            }
            box.logits = logits
            box.rows = all != 0 ? list.count : 1
        }
    }
}

@_cdecl("phi4_get_logits")
public func phi4_get_logits(_ c: OpaquePointer?, _ row: Int32, _ out: UnsafeMutablePointer<Float>?, _ capacity: Int,
                            _ rows: UnsafeMutablePointer<Int>?) -> phi4_status {
    guarded {
        let box = try context(c)
        try box.exclusive {
            rows?.pointee = box.rows
            guard box.rows > 0 else { throw ABIError.invalid("no logits: call phi4_eval first") }
            let r = row < 0 ? box.rows + Int(row) : Int(row)
            guard r >= 0 && r < box.rows else { throw ABIError.invalid("row \(row) is outside 0..<\(box.rows)") }
            let vocab = box.session.model.config.vocabSize
            guard capacity >= vocab else { throw ABIError.tooSmall("logits need \(vocab) floats, the buffer holds \(capacity)") }
            guard let out else { throw ABIError.invalid("logits is NULL") }
            box.logits.withUnsafeBufferPointer { out.update(from: $0.baseAddress! + r * vocab, count: vocab) }
        }
    }
}

// MARK: - Sampling

@_cdecl("phi4_sampling_default_params")
public func phi4_sampling_default_params() -> phi4_sampling_params {
    let d = SamplingParameters()
    return phi4_sampling_params(
        struct_size: MemoryLayout<phi4_sampling_params>.size, temperature: d.temperature, top_k: Int32(d.topK),
        top_p: d.topP, min_p: d.minP, repetition_penalty: d.repetitionPenalty, presence_penalty: d.presencePenalty,
        frequency_penalty: d.frequencyPenalty, penalty_window: Int32(d.penaltyWindow), use_seed: 0, seed: 0,
        logit_bias_tokens: nil, logit_bias_values: nil, n_logit_bias: 0)
}

/// Converts C sampling params to the Swift ones (validated).
func sampling(_ p: phi4_sampling_params) throws -> SamplingParameters {
    var s = SamplingParameters()
    s.temperature = p.temperature
    s.topK = Int(p.top_k)
    s.topP = p.top_p
    s.minP = p.min_p
    s.repetitionPenalty = p.repetition_penalty
    s.presencePenalty = p.presence_penalty
    s.frequencyPenalty = p.frequency_penalty
    s.penaltyWindow = Int(p.penalty_window)
    s.seed = p.use_seed != 0 ? p.seed : nil
    let n = try count(p.n_logit_bias, "n_logit_bias")
    if n > 0 {
        guard let ids = p.logit_bias_tokens, let values = p.logit_bias_values else {
            throw ABIError.invalid("logit bias arrays are NULL")
        }
        for i in 0..<n { s.logitBias[ids[i]] = values[i] }
    }
    try s.validate()
    return s
}

@_cdecl("phi4_sampler_create")
public func phi4_sampler_create(_ p: UnsafePointer<phi4_sampling_params>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> phi4_status {
    out?.pointee = nil
    return guarded {
        guard let out else { throw ABIError.invalid("out_sampler is NULL") }
        let prm = try params(p, defaults: phi4_sampling_default_params())
        out.pointee = OpaquePointer(Handles.register(SamplerBox(Sampler(try sampling(prm))), .sampler))
    }
}

@_cdecl("phi4_sampler_free")
public func phi4_sampler_free(_ s: OpaquePointer?) {
    if !Handles.release(UnsafeRawPointer(s), .sampler) { LastError.set("phi4_sampler_free: not a live sampler handle") }
}

@_cdecl("phi4_sample")
public func phi4_sample(_ c: OpaquePointer?, _ s: OpaquePointer?, _ out: UnsafeMutablePointer<Int32>?) -> phi4_status {
    guarded {
        let box = try context(c)
        let sbox = try Handles.get(UnsafeRawPointer(s), [.sampler], as: SamplerBox.self)
        guard let out else { throw ABIError.invalid("token is NULL") }
        try box.exclusive {
            guard box.rows > 0 else { throw ABIError.invalid("no logits: call phi4_eval first") }
            let vocab = box.session.model.config.vocabSize
            var row = Array(box.logits[((box.rows - 1) * vocab)..<(box.rows * vocab)])
            out.pointee = sbox.sampler.sample(&row, history: box.session.tokens[...])
        }
    }
}

// MARK: - Generation

@_cdecl("phi4_generate_default_params")
public func phi4_generate_default_params() -> phi4_generate_params {
    phi4_generate_params(struct_size: MemoryLayout<phi4_generate_params>.size, max_tokens: 256,
                         sampling: phi4_sampling_default_params(), stop_strings: nil, n_stop_strings: 0, parse_special: 0,
                         top_logprobs: -1, lookup: 0)
}

/// Converts C generation params to the Swift options.
func generationOptions(_ p: UnsafePointer<phi4_generate_params>?) throws -> (GenerationOptions, Bool) {
    let prm = try params(p, defaults: phi4_generate_default_params())
    var o = GenerationOptions()
    guard prm.max_tokens >= 0 else { throw ABIError.invalid("max_tokens must not be negative") }
    o.maxTokens = Int(prm.max_tokens)
    var s = prm.sampling
    if s.struct_size == 0 { s = phi4_sampling_default_params() }
    o.sampling = try sampling(s)
    let n = try count(prm.n_stop_strings, "n_stop_strings")
    if n > 0 {
        guard let list = prm.stop_strings else { throw ABIError.invalid("stop_strings is NULL") }
        for i in 0..<n { o.stopStrings.append(try string(list[i], "stop_strings[\(i)]")) }
    }
    guard prm.top_logprobs >= -1 && prm.top_logprobs <= 20 else { throw ABIError.invalid("top_logprobs must be -1 or 0…20") }
    o.topLogprobs = prm.top_logprobs >= 0 ? Int(prm.top_logprobs) : nil
    guard prm.lookup >= 0 && prm.lookup <= 64 else { throw ABIError.invalid("lookup must be in 0…64") }
    o.lookup = Int(prm.lookup)
    return (o, prm.parse_special != 0)
}

func stopCode(_ r: StopReason?) -> phi4_stop_reason {
    switch r {
    case nil: return phi4_stop_reason(PHI4_STOP_NONE)
    case .endOfSequence: return phi4_stop_reason(PHI4_STOP_EOS)
    case .stopString: return phi4_stop_reason(PHI4_STOP_STRING)
    case .maxTokens: return phi4_stop_reason(PHI4_STOP_MAX_TOKENS)
    case .contextFull: return phi4_stop_reason(PHI4_STOP_CONTEXT_FULL)
    case .cancelled: return phi4_stop_reason(PHI4_STOP_CANCELLED)
    }
}

func runGeneration(_ box: ContextBox, _ prompt: [TokenID], _ options: GenerationOptions, _ cb: phi4_piece_callback?,
                   _ userData: UnsafeMutableRawPointer?, _ reason: UnsafeMutablePointer<phi4_stop_reason>?) throws {
    reason?.pointee = phi4_stop_reason(PHI4_STOP_NONE)
    try box.exclusive {
        box.endGeneration()
        box.lastResult = nil
        box.rows = 0
        let result = try box.session.generate(prompt, options: options) { text, token in
            guard let cb else { return true }
            var t = text
            return t.withUTF8 { buf in
                buf.withMemoryRebound(to: CChar.self) { cb($0.baseAddress, buf.count, token, userData) != 0 }
            }
        }
        box.lastResult = result
        reason?.pointee = stopCode(result.stopReason)
    }
}

@_cdecl("phi4_generate")
public func phi4_generate(_ c: OpaquePointer?, _ prompt: UnsafePointer<Int32>?, _ n: Int,
                          _ p: UnsafePointer<phi4_generate_params>?, _ cb: phi4_piece_callback?,
                          _ userData: UnsafeMutableRawPointer?, _ reason: UnsafeMutablePointer<phi4_stop_reason>?) -> phi4_status {
    guarded {
        let box = try context(c)
        let list = try ids(prompt, n, "prompt")
        let (options, _) = try generationOptions(p)
        try runGeneration(box, list, options, cb, userData, reason)
    }
}

@_cdecl("phi4_generate_text")
public func phi4_generate_text(_ c: OpaquePointer?, _ prompt: UnsafePointer<CChar>?, _ p: UnsafePointer<phi4_generate_params>?,
                               _ cb: phi4_piece_callback?, _ userData: UnsafeMutableRawPointer?,
                               _ reason: UnsafeMutablePointer<phi4_stop_reason>?) -> phi4_status {
    guarded {
        let box = try context(c)
        let text = try string(prompt, "prompt")
        let (options, special) = try generationOptions(p)
        let list = box.session.model.tokenizer.encode(text, allowSpecial: special, addBOS: true)
        try runGeneration(box, list, options, cb, userData, reason)
    }
}

@_cdecl("phi4_generation_start")
public func phi4_generation_start(_ c: OpaquePointer?, _ prompt: UnsafePointer<Int32>?, _ n: Int,
                                  _ p: UnsafePointer<phi4_generate_params>?) -> phi4_status {
    guarded {
        let box = try context(c)
        let list = try ids(prompt, n, "prompt")
        let (options, _) = try generationOptions(p)
        try box.exclusive {
            box.endGeneration()
            box.lastResult = nil
            box.rows = 0
            box.generation = try box.session.startGeneration(list, options: options)
        }
    }
}

@_cdecl("phi4_generation_next")
public func phi4_generation_next(_ c: OpaquePointer?, _ out: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                                 _ len: UnsafeMutablePointer<Int>?, _ token: UnsafeMutablePointer<Int32>?,
                                 _ reason: UnsafeMutablePointer<phi4_stop_reason>?) -> phi4_status {
    guarded {
        let box = try context(c)
        guard let len else { throw ABIError.invalid("len is NULL") }
        try box.exclusive {
            guard let g = box.generation else { throw ABIError.invalid("no generation: call phi4_generation_start first") }
            if box.pending == nil, let piece = try g.next() {
                box.pending = (Array(piece.text.utf8), piece.token)
            }
            reason?.pointee = stopCode(box.pending == nil ? g.stopReason : nil)
            guard let (bytes, id) = box.pending else {
                len.pointee = 0
                token?.pointee = -1
                return
            }
            token?.pointee = id
            try writeBytes(bytes, out, capacity, len, nul: false)
            box.pending = nil
        }
    }
}

@_cdecl("phi4_generation_finish")
public func phi4_generation_finish(_ c: OpaquePointer?) -> phi4_status {
    guarded {
        let box = try context(c)
        try box.exclusive {
            box.generation?.stop()
            box.endGeneration()
        }
    }
}

@_cdecl("phi4_context_save_state")
public func phi4_context_save_state(_ c: OpaquePointer?, _ buffer: UnsafeMutableRawPointer?, _ capacity: Int,
                                    _ size: UnsafeMutablePointer<Int>?) -> phi4_status {
    guarded {
        let box = try context(c)
        guard let size else { throw ABIError.invalid("size is NULL") }
        guard capacity >= 0 else { throw ABIError.invalid("capacity \(capacity) is out of range") }
        let cap = capacity
        try box.exclusive {
            let state = box.session.saveState()
            try writeBytes(state, buffer?.assumingMemoryBound(to: CChar.self), cap, size, nul: false)
        }
    }
}

@_cdecl("phi4_context_load_state")
public func phi4_context_load_state(_ c: OpaquePointer?, _ buffer: UnsafeRawPointer?, _ size: Int) -> phi4_status {
    guarded {
        let box = try context(c)
        guard size >= 0 else { throw ABIError.invalid("size \(size) is out of range") }
        let n = size
        guard let buffer else { throw ABIError.invalid("buffer is NULL") }
        let bytes = [UInt8](UnsafeRawBufferPointer(start: buffer, count: n))
        try box.exclusive {
            try box.session.restoreState(bytes)
            box.endGeneration()
            box.rows = 0
        }
    }
}

@_cdecl("phi4_context_save_file")
public func phi4_context_save_file(_ c: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> phi4_status {
    guarded {
        let box = try context(c)
        let p = try string(path, "path")
        try box.exclusive { try box.session.saveState(path: p) }
    }
}

@_cdecl("phi4_context_load_file")
public func phi4_context_load_file(_ c: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> phi4_status {
    guarded {
        let box = try context(c)
        let p = try string(path, "path")
        try box.exclusive {
            try box.session.restoreState(path: p)
            box.endGeneration()
            box.rows = 0
        }
    }
}

@_cdecl("phi4_context_reuse_prefix")
public func phi4_context_reuse_prefix(_ c: OpaquePointer?, _ prompt: UnsafePointer<Int32>?, _ n: Int,
                                      _ kept: UnsafeMutablePointer<Int>?) -> phi4_status {
    guarded {
        let box = try context(c)
        let list = try ids(prompt, n, "prompt")
        guard let kept else { throw ABIError.invalid("n_kept is NULL") }
        guard !list.isEmpty else { throw ABIError.invalid("the prompt is empty") }
        try box.exclusive {
            box.endGeneration()
            let before = box.session.tokens.count
            let rest = box.session.reusePrefix(of: list)
            if box.session.tokens.count != before { box.rows = 0 }
            kept.pointee = list.count - rest.count
        }
    }
}

@_cdecl("phi4_generation_token_count")
public func phi4_generation_token_count(_ c: OpaquePointer?) -> Int32 {
    var n: Int32 = -1
    _ = guarded {
        let box = try context(c)
        try box.exclusive { n = Int32(box.generated?.tokens.count ?? 0) }
    }
    return n
}

@_cdecl("phi4_generation_lookup_counts")
public func phi4_generation_lookup_counts(_ c: OpaquePointer?, _ proposed: UnsafeMutablePointer<Int32>?,
                                          _ accepted: UnsafeMutablePointer<Int32>?) -> phi4_status {
    guarded {
        let box = try context(c)
        guard let proposed, let accepted else { throw ABIError.invalid("proposed or accepted is NULL") }
        try box.exclusive {
            proposed.pointee = Int32(clamping: box.generated?.draftTokens ?? 0)
            accepted.pointee = Int32(clamping: box.generated?.acceptedDraftTokens ?? 0)
        }
    }
}

@_cdecl("phi4_generation_logprob")
public func phi4_generation_logprob(_ c: OpaquePointer?, _ index: Int, _ out: UnsafeMutablePointer<phi4_token_logprob>?,
                                    _ top: UnsafeMutablePointer<phi4_token_logprob>?, _ capacity: Int,
                                    _ nTop: UnsafeMutablePointer<Int>?) -> phi4_status {
    guarded {
        let box = try context(c)
        guard let out else { throw ABIError.invalid("out is NULL") }
        let cap = try count(capacity, "capacity")
        if cap > 0 && top == nil { throw ABIError.invalid("top is NULL but capacity is \(cap)") }
        try box.exclusive {
            let records = box.generated?.logprobs ?? []
            if records.isEmpty { throw ABIError.invalid("no log-probabilities: generate with top_logprobs ≥ 0") }
            guard index >= 0 && index < records.count else {
                throw ABIError.invalid("index \(index) is outside 0..<\(records.count)")
            }
            let r = records[index]
            out.pointee = phi4_token_logprob(token: r.token, logprob: r.logprob)
            let n = min(cap, r.top.count)
            for i in 0..<n { top![i] = phi4_token_logprob(token: r.top[i].token, logprob: r.top[i].logprob) }
            nTop?.pointee = n
        }
    }
}

@_cdecl("phi4_cancel")
public func phi4_cancel(_ c: OpaquePointer?) -> phi4_status {
    guarded { try context(c).session.cancel() }
}
