// Errors and logging of the C ABI: engine errors become status codes, each failing call records
// its message for phi4_last_error(), and messages go to the log callback if one is set.

import CPhi4ABI
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

/// An error to report through the ABI: a status and a message.
struct ABIError: Error {
    let status: phi4_status
    let message: String

    static func invalid(_ m: String) -> ABIError { ABIError(status: phi4_status(PHI4_ERR_INVALID_ARGUMENT.rawValue), message: m) }
    static func handle(_ m: String) -> ABIError { ABIError(status: phi4_status(PHI4_ERR_INVALID_HANDLE.rawValue), message: m) }
    static func tooSmall(_ m: String) -> ABIError { ABIError(status: phi4_status(PHI4_ERR_BUFFER_TOO_SMALL.rawValue), message: m) }
}

/// The status for an engine error.
func status(of error: Error) -> ABIError {
    if let e = error as? ABIError { return e }
    if let e = error as? ModelError {
        let code: Int32
        switch e {
        case .io: code = Int32(PHI4_ERR_IO.rawValue)
        case .invalidConfig, .invalidWeights, .missingTensor, .shapeMismatch: code = Int32(PHI4_ERR_INVALID_MODEL.rawValue)
        case .unsupported: code = Int32(PHI4_ERR_UNSUPPORTED.rawValue)
        case .insufficientMemory: code = Int32(PHI4_ERR_OUT_OF_MEMORY.rawValue)
        case .invalidRequest: code = Int32(PHI4_ERR_INVALID_ARGUMENT.rawValue)
        case .contextFull: code = Int32(PHI4_ERR_CONTEXT_FULL.rawValue)
        case .cancelled: code = Int32(PHI4_ERR_CANCELLED.rawValue)
        case .busy: code = Int32(PHI4_ERR_BUSY.rawValue)
        case .tokenizer(let t): return status(of: t)
        }
        return ABIError(status: code, message: e.description)
    }
    if let e = error as? TokenizerError {
        let code: Int32
        switch e {
        case .io: code = Int32(PHI4_ERR_IO.rawValue)
        case .malformedJSON, .invalidFormat, .missingSpecialToken: code = Int32(PHI4_ERR_INVALID_MODEL.rawValue)
        case .unsupported: code = Int32(PHI4_ERR_UNSUPPORTED.rawValue)
        case .invalidUTF8, .unknownTokenID, .invalidMessage: code = Int32(PHI4_ERR_INVALID_ARGUMENT.rawValue)
        }
        return ABIError(status: code, message: e.description)
    }
    return ABIError(status: phi4_status(PHI4_ERR_INTERNAL.rawValue), message: "\(error)")
}

/// The calling thread's last error message, in thread-local storage.
enum LastError {
    static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { p in free(p) }
        return k
    }()
    // nonisolated(unsafe): written once by the lazy initialiser, read-only C memory afterwards.
    nonisolated(unsafe) static let empty: UnsafePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        p.pointee = 0
        return UnsafePointer(p)
    }()

    static func set(_ message: String) {
        if let old = pthread_getspecific(key) { free(old) }
        let copy = message.withCString { strdup($0) }
        pthread_setspecific(key, copy)
        Log.write(Int32(PHI4_LOG_DEBUG.rawValue), message)
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
        return phi4_status(PHI4_OK.rawValue)
    } catch {
        let e = status(of: error)
        LastError.set(e.message)
        return e.status
    }
}

// MARK: - Logging

/// The process-wide log callback.
enum Log {
    // nonisolated(unsafe): `callback` and `userData` are only read or written with `lock` held.
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
