// The phi4_context_* functions, phi4_eval and phi4_get_logits: a context is a Session and what
// the last call left behind (logits, the current generation).

import CPhi4ABI
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

/// The defaults of phi4_context_params.
func contextParamsDefaults() -> phi4_context_params {
    phi4_context_params(struct_size: MemoryLayout<phi4_context_params>.size, n_ctx: 0, n_batch: 512, n_threads: 0,
                        kv_type: Int32(PHI4_KV_DEFAULT.rawValue))
}

@_cdecl("phi4_context_params_init")
public func phi4_context_params_init(_ p: UnsafeMutablePointer<phi4_context_params>?, _ size: Int) -> phi4_status {
    initParams(p, size, "phi4_context_params", defaults: contextParamsDefaults())
}

/// The cache type of a PHI4_KV_* value (nil: the default).
func kvType(_ code: Int32) throws -> KVCacheType? {
    switch code {
    case Int32(PHI4_KV_DEFAULT.rawValue): return nil
    case Int32(PHI4_KV_F32.rawValue): return .f32
    case Int32(PHI4_KV_F16.rawValue): return .f16
    case Int32(PHI4_KV_Q8_0.rawValue): return .q8_0
    default: throw ABIError.invalid("kv_type \(code) is not a PHI4_KV_* value")
    }
}

@_cdecl("phi4_context_create")
public func phi4_context_create(_ m: OpaquePointer?, _ p: UnsafePointer<phi4_context_params>?,
                                _ out: UnsafeMutablePointer<OpaquePointer?>?) -> phi4_status {
    out?.pointee = nil
    return guarded {
        let box = try model(m)
        guard let out else { throw ABIError.invalid("out_context is NULL") }
        let prm = try readParams(p, "phi4_context_params", defaults: contextParamsDefaults())
        guard prm.n_ctx >= 0, prm.n_batch > 0, prm.n_threads >= 0 else {
            throw ABIError.invalid("n_ctx, n_batch and n_threads must not be negative (n_batch > 0)")
        }
        let kv = try kvType(prm.kv_type)
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
            box.forgetOutputs()
            box.session.reset()
        }
    }
}

@_cdecl("phi4_context_truncate")
public func phi4_context_truncate(_ c: OpaquePointer?, _ n: Int32) -> phi4_status {
    guarded {
        let box = try context(c)
        try box.exclusive {
            box.forgetOutputs()
            box.session.truncate(to: Int(n))
        }
    }
}

@_cdecl("phi4_context_token_count")
public func phi4_context_token_count(_ c: OpaquePointer?) -> Int32 {
    guard let box = try? context(c) else { return -1 }
    return Int32(box.session.tokens.count)
}

@_cdecl("phi4_context_tokens")
public func phi4_context_tokens(_ c: OpaquePointer?, _ out: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                                _ n: UnsafeMutablePointer<Int>?) -> phi4_status {
    guarded {
        let box = try context(c)
        try writeIDs(try box.exclusive { box.session.tokens }, out, try count(capacity, "capacity"), n)
    }
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
            box.forgetOutputs()
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
            box.forgetOutputs()
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
