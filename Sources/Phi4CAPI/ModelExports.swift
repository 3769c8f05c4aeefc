// The phi4_model_* functions.

import CPhi4ABI
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

/// The defaults of phi4_model_params.
func modelParamsDefaults() -> phi4_model_params {
    phi4_model_params(struct_size: MemoryLayout<phi4_model_params>.size, weight_format: Int32(PHI4_WEIGHTS_F32.rawValue),
                      check_memory: 1, progress: nil, progress_user_data: nil)
}

@_cdecl("phi4_model_params_init")
public func phi4_model_params_init(_ p: UnsafeMutablePointer<phi4_model_params>?, _ size: Int) -> phi4_status {
    initParams(p, size, "phi4_model_params", defaults: modelParamsDefaults())
}

@_cdecl("phi4_model_load")
public func phi4_model_load(_ path: UnsafePointer<CChar>?, _ p: UnsafePointer<phi4_model_params>?,
                            _ out: UnsafeMutablePointer<OpaquePointer?>?) -> phi4_status {
    out?.pointee = nil
    return guarded {
        guard let out else { throw ABIError.invalid("out_model is NULL") }
        let path = try string(path, "path")
        let prm = try readParams(p, "phi4_model_params", defaults: modelParamsDefaults())
        let types: [WeightType] = [.f32, .q8_0, .q4_0, .q4_0Mixed, .q4_K_M]
        guard prm.weight_format >= 0 && Int(prm.weight_format) < types.count else {
            throw ABIError.invalid("unknown weight format \(prm.weight_format)")
        }
        var options = ModelLoadOptions()
        options.weightType = types[Int(prm.weight_format)]
        options.checkMemory = prm.check_memory != 0
        if let callback = prm.progress {
            // The caller's pointer, passed back as it is (as an integer: a raw pointer is not Sendable).
            let user = Int(bitPattern: prm.progress_user_data)
            options.progress = { done, total in
                callback(UnsafeMutableRawPointer(bitPattern: user), Int32(clamping: done), Int32(clamping: total))
            }
        }
        let m = try Model.load(path: path, options: options)
        Log.write(Int32(PHI4_LOG_INFO.rawValue), "loaded \(path): \(m.config.layerCount) layers, vocabulary \(m.config.vocabSize)")
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
        _ = try checkedSize(UnsafeRawPointer(info).loadUnaligned(as: Int.self), "phi4_model_info")
        let c = box.model.config
        let t = box.model.tokenizer
        let v = phi4_model_info(
            struct_size: MemoryLayout<phi4_model_info>.size, vocab_size: Int32(c.vocabSize),
            trained_context_length: Int32(c.maxPositions), layer_count: Int32(c.layerCount), hidden_size: Int32(c.hiddenSize),
            head_count: Int32(c.headCount), kv_head_count: Int32(c.kvHeadCount), bos_token: t.bosTokenID ?? -1,
            eos_token: t.eosTokenID ?? c.eosTokenIDs.first.map(Int32.init) ?? -1, pad_token: t.padTokenID ?? -1,
            parameter_count: Int64(c.parameterCount), weight_bytes: Int64(box.model.weights.byteCount),
            adds_bos: t.addsBOS ? 1 : 0)
        try writeOutput(v, to: info, "phi4_model_info")
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
