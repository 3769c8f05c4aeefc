// Handles: every object the C ABI hands out is registered here, so that a freed or foreign pointer
// is an error instead of a crash; the boxes hold what each handle owns.

import CPhi4ABI
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

/// Live handles, so that a freed or foreign pointer is an error instead of a crash.
enum Handles {
    enum Kind { case model, tokenizer, borrowedTokenizer, context, sampler, batch }
    // nonisolated(unsafe): `live` and `lock` are only touched with `lock` held (and `lock` is
    // initialised once, through `initialized`).
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
    /// The OpenAI-shaped request in progress (phi4_openai_start / phi4_openai_next).
    var openai: OpenAIRun?

    /// The result so far of the current generation, else of the last one (nil: none yet).
    var generated: GenerationResult? { generation?.result ?? lastResult }

    /// Forgets the current generation, keeping what it produced for the query functions.
    func endGeneration() {
        if let g = generation { lastResult = g.result }
        generation = nil
        pending = nil
        openai = nil
    }

    /// The context's tokens changed (reset, truncated, restored): the current generation ends
    /// and the last logits no longer belong to its last position.
    func forgetOutputs() {
        endGeneration()
        rows = 0
    }

    /// A new generation begins: nothing of the previous one stays queryable.
    func beginGeneration() {
        forgetOutputs()
        lastResult = nil
    }
    var busy = p4k_flag(value: 0)

    init(_ modelBox: ModelBox, _ session: Session) {
        self.modelBox = modelBox
        self.session = session
    }

    /// Runs `body` while holding the context; a concurrent caller gets PHI4_ERR_BUSY.
    func exclusive<R>(_ body: () throws -> R) throws -> R {
        if p4k_flag_exchange(&busy, 1) != 0 {
            throw ABIError(status: phi4_status(PHI4_ERR_BUSY.rawValue), message: "another thread is using this context")
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
