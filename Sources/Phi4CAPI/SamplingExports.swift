// Sampling params and samplers.

import CPhi4ABI
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

/// The defaults of phi4_sampling_params: those of the Swift API's SamplingParameters.
func samplingParamsDefaults() -> phi4_sampling_params {
    let d = SamplingParameters()
    return phi4_sampling_params(
        struct_size: MemoryLayout<phi4_sampling_params>.size, temperature: d.temperature, top_k: Int32(d.topK),
        top_p: d.topP, min_p: d.minP, repetition_penalty: d.repetitionPenalty, presence_penalty: d.presencePenalty,
        frequency_penalty: d.frequencyPenalty, penalty_window: Int32(d.penaltyWindow), use_seed: 0, seed: 0,
        logit_bias_tokens: nil, logit_bias_values: nil, n_logit_bias: 0, typical_p: d.typicalP,
        mirostat: Int32(d.mirostat), mirostat_tau: d.mirostatTau, mirostat_eta: d.mirostatEta,
        penalize_prompt: d.penalizePrompt ? 1 : 0)
}

@_cdecl("phi4_sampling_params_init")
public func phi4_sampling_params_init(_ p: UnsafeMutablePointer<phi4_sampling_params>?, _ size: Int) -> phi4_status {
    initParams(p, size, "phi4_sampling_params", defaults: samplingParamsDefaults())
}

/// Reads C sampling params (NULL: the defaults) into the Swift ones (validated).
func sampling(_ params: UnsafePointer<phi4_sampling_params>?) throws -> SamplingParameters {
    let p = try readParams(params, "phi4_sampling_params", defaults: samplingParamsDefaults())
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
    s.typicalP = p.typical_p
    s.mirostat = Int(p.mirostat)
    s.mirostatTau = p.mirostat_tau
    s.mirostatEta = p.mirostat_eta
    s.penalizePrompt = p.penalize_prompt != 0
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
        out.pointee = OpaquePointer(Handles.register(SamplerBox(Sampler(try sampling(p))), .sampler))
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
            sbox.sampler.excluded = box.session.model.unassignedIDs  // rows no token has are never sampled
            out.pointee = sbox.sampler.sample(&row, history: box.session.tokens[...])
        }
    }
}

@_cdecl("phi4_sample_logits")
public func phi4_sample_logits(_ s: OpaquePointer?, _ logits: UnsafePointer<Float>?, _ n: Int, _ history: UnsafePointer<Int32>?,
                               _ nHistory: Int, _ out: UnsafeMutablePointer<Int32>?) -> phi4_status {
    guarded {
        let sbox = try Handles.get(UnsafeRawPointer(s), [.sampler], as: SamplerBox.self)
        guard let out else { throw ABIError.invalid("token is NULL") }
        let n = try count(n, "n_logits")
        guard n > 0, let logits else { throw ABIError.invalid("logits is NULL or empty") }
        var row = Array(UnsafeBufferPointer(start: logits, count: n))
        guard !row.contains(where: { $0.isNaN || $0 == .infinity }) else { throw ABIError.invalid("logits contain NaN or +infinity") }
        let past = try ids(history, nHistory, "history")
        out.pointee = sbox.sampler.sample(&row, history: past[...])
    }
}
