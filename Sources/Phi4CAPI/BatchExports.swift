// The phi4_batch_* functions: a Scheduler behind a handle, and the updates of its last step.

import CPhi4ABI
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

final class BatchBox {
    let modelBox: ModelBox
    let scheduler: Scheduler
    /// The last step's updates, and their text as C bytes (valid until the next step).
    var updates: [SchedulerUpdate] = []
    var texts: [UnsafeMutablePointer<CChar>] = []
    var busy = p4k_flag(value: 0)

    init(_ modelBox: ModelBox, _ scheduler: Scheduler) {
        self.modelBox = modelBox
        self.scheduler = scheduler
    }

    deinit { for t in texts { t.deallocate() } }

    /// Runs `body` while holding the batch's step state; a concurrent caller gets PHI4_ERR_BUSY.
    func exclusive<R>(_ body: () throws -> R) throws -> R {
        if p4k_flag_exchange(&busy, 1) != 0 {
            throw ABIError(status: phi4_status(PHI4_ERR_BUSY.rawValue), message: "another thread is stepping this batch")
        }
        defer { p4k_flag_store(&busy, 0) }
        return try body()
    }

    func keep(_ new: [SchedulerUpdate]) {
        for t in texts { t.deallocate() }
        updates = new
        texts = new.map { u in
            let bytes = Array(u.text.utf8)
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, bytes.count))
            bytes.withUnsafeBufferPointer { b in
                b.withMemoryRebound(to: CChar.self) { p.update(from: $0.baseAddress!, count: bytes.count) }
            }
            return p
        }
    }

    func update(_ i: Int) throws -> SchedulerUpdate {
        guard i >= 0 && i < updates.count else {
            throw ABIError.invalid("update index \(i) is out of range (the last step made \(updates.count))")
        }
        return updates[i]
    }
}

func batch(_ p: OpaquePointer?) throws -> BatchBox { try Handles.get(UnsafeRawPointer(p), [.batch], as: BatchBox.self) }

/// The defaults of phi4_batch_params (those of SchedulerOptions).
func batchParamsDefaults() -> phi4_batch_params {
    let o = SchedulerOptions()
    return phi4_batch_params(struct_size: MemoryLayout<phi4_batch_params>.size, n_slots: Int32(o.slots), n_ctx: 0,
                             n_threads: 0, kv_type: Int32(PHI4_KV_DEFAULT.rawValue),
                             prefill_chunk: Int32(o.prefillChunk), max_queue: Int32(o.maxQueue))
}

@_cdecl("phi4_batch_params_init")
public func phi4_batch_params_init(_ p: UnsafeMutablePointer<phi4_batch_params>?, _ size: Int) -> phi4_status {
    initParams(p, size, "phi4_batch_params", defaults: batchParamsDefaults())
}

@_cdecl("phi4_batch_create")
public func phi4_batch_create(_ m: OpaquePointer?, _ p: UnsafePointer<phi4_batch_params>?,
                              _ out: UnsafeMutablePointer<OpaquePointer?>?) -> phi4_status {
    out?.pointee = nil
    return guarded {
        let box = try model(m)
        guard let out else { throw ABIError.invalid("out_batch is NULL") }
        let prm = try readParams(p, "phi4_batch_params", defaults: batchParamsDefaults())
        guard prm.n_ctx >= 0, prm.n_threads >= 0 else { throw ABIError.invalid("n_ctx and n_threads must not be negative") }
        var o = SchedulerOptions()
        o.slots = Int(prm.n_slots)
        o.contextLength = prm.n_ctx == 0 ? nil : Int(prm.n_ctx)
        o.threads = prm.n_threads == 0 ? nil : Int(prm.n_threads)
        o.cacheType = try kvType(prm.kv_type)
        o.prefillChunk = Int(prm.prefill_chunk)
        o.maxQueue = Int(prm.max_queue)
        let scheduler = try Scheduler(model: box.model, options: o)
        out.pointee = OpaquePointer(Handles.register(BatchBox(box, scheduler), .batch))
    }
}

@_cdecl("phi4_batch_free")
public func phi4_batch_free(_ b: OpaquePointer?) {
    if !Handles.release(UnsafeRawPointer(b), .batch) { LastError.set("phi4_batch_free: not a live batch handle") }
}

@_cdecl("phi4_batch_submit")
public func phi4_batch_submit(_ b: OpaquePointer?, _ prompt: UnsafePointer<Int32>?, _ n: Int,
                              _ p: UnsafePointer<phi4_generate_params>?, _ out: UnsafeMutablePointer<Int64>?) -> phi4_status {
    guarded {
        let box = try batch(b)
        guard let out else { throw ABIError.invalid("out_request is NULL") }
        let list = try ids(prompt, n, "prompt")
        let (options, _) = try generationOptions(p)
        out.pointee = Int64(try box.scheduler.submit(list, options: options))
    }
}

@_cdecl("phi4_batch_cancel")
public func phi4_batch_cancel(_ b: OpaquePointer?, _ request: Int64) -> phi4_status {
    guarded {
        let box = try batch(b)
        if let id = Int(exactly: request) { box.scheduler.cancel(id) }
    }
}

@_cdecl("phi4_batch_counts")
public func phi4_batch_counts(_ b: OpaquePointer?, _ queued: UnsafeMutablePointer<Int32>?,
                              _ active: UnsafeMutablePointer<Int32>?) -> phi4_status {
    guarded {
        let box = try batch(b)
        queued?.pointee = Int32(box.scheduler.queuedCount)
        active?.pointee = Int32(box.scheduler.activeCount)
    }
}

@_cdecl("phi4_batch_step")
public func phi4_batch_step(_ b: OpaquePointer?, _ n: UnsafeMutablePointer<Int>?) -> phi4_status {
    n?.pointee = 0
    return guarded {
        let box = try batch(b)
        guard let n else { throw ABIError.invalid("n_updates is NULL") }
        try box.exclusive {
            box.keep([])
            box.keep(try box.scheduler.step())
            n.pointee = box.updates.count
        }
    }
}

@_cdecl("phi4_batch_get_update")
public func phi4_batch_get_update(_ b: OpaquePointer?, _ index: Int, _ out: UnsafeMutablePointer<phi4_batch_update>?) -> phi4_status {
    guarded {
        let box = try batch(b)
        try box.exclusive {
            let u = try box.update(index)
            let v = phi4_batch_update(
                struct_size: MemoryLayout<phi4_batch_update>.size, request: Int64(u.request),
                text: UnsafePointer(box.texts[index]), text_len: u.text.utf8.count, token: u.tokens.last ?? -1,
                logprob: u.logprobs.last?.logprob ?? 0, stop_reason: stopCode(u.result?.stopReason),
                n_generated: Int32(u.tokenCount), n_prompt_evaluated: Int32(u.promptTokenCount))
            try writeOutput(v, to: out, "phi4_batch_update")
        }
    }
}

@_cdecl("phi4_batch_get_top_logprobs")
public func phi4_batch_get_top_logprobs(_ b: OpaquePointer?, _ index: Int, _ top: UnsafeMutablePointer<phi4_token_logprob>?,
                                        _ capacity: Int, _ nTop: UnsafeMutablePointer<Int>?) -> phi4_status {
    guarded {
        let box = try batch(b)
        try box.exclusive {
            let u = try box.update(index)
            let alternatives = u.logprobs.last?.top ?? []
            let capacity = try count(capacity, "capacity")
            if capacity > 0 && top == nil { throw ABIError.invalid("top is NULL") }
            let k = min(capacity, alternatives.count)
            for i in 0..<k { top![i] = phi4_token_logprob(token: alternatives[i].token, logprob: alternatives[i].logprob) }
            nTop?.pointee = k
        }
    }
}
