// Versions, error messages, the log callback and the default thread count.

import CPhi4ABI
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

@_cdecl("phi4_version")
public func phi4_version() -> UnsafePointer<CChar> { versionCString }

// nonisolated(unsafe): written once by the lazy initialiser, read-only C memory afterwards.
nonisolated(unsafe) private let versionCString: UnsafePointer<CChar> = {
    let bytes = Array(Phi4Version.string.utf8CString)
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
    p.initialize(from: bytes, count: bytes.count)
    return UnsafePointer(p)
}()

@_cdecl("phi4_abi_version")
public func phi4_abi_version() -> Int32 { Int32(PHI4_ABI_VERSION) }

@_cdecl("phi4_last_error")
public func phi4_last_error() -> UnsafePointer<CChar> { LastError.current }

// nonisolated(unsafe): immutable pointers to static string literals.
nonisolated(unsafe) private let statusNames: [UnsafePointer<CChar>] = [
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

// nonisolated(unsafe): written once by the lazy initialiser, read-only C memory afterwards.
nonisolated(unsafe) private let reasoningPrompt: UnsafePointer<CChar> = {
    let bytes = Array(ChatMessage.phi4ReasoningSystemPrompt.utf8CString)
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
    p.initialize(from: bytes, count: bytes.count)
    return UnsafePointer(p)
}()

@_cdecl("phi4_reasoning_system_prompt")
public func phi4_reasoning_system_prompt() -> UnsafePointer<CChar> { reasoningPrompt }

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
