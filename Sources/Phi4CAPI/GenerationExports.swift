// Generation: phi4_generate*, the pull-style phi4_generation_* functions, their counts and
// log-probabilities, and phi4_cancel.

import CPhi4ABI
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

/// The defaults of phi4_generate_params.
func generateParamsDefaults() -> phi4_generate_params {
    phi4_generate_params(struct_size: MemoryLayout<phi4_generate_params>.size, max_tokens: 256, sampling: nil,
                         stop_strings: nil, n_stop_strings: 0, parse_special: 0, top_logprobs: -1, lookup: 0,
                         constraint_type: Int32(PHI4_CONSTRAINT_NONE.rawValue), constraint: nil, constraint_len: 0)
}

@_cdecl("phi4_generate_params_init")
public func phi4_generate_params_init(_ p: UnsafeMutablePointer<phi4_generate_params>?, _ size: Int) -> phi4_status {
    initParams(p, size, "phi4_generate_params", defaults: generateParamsDefaults())
}

/// Converts C generation params to the Swift options.
func generationOptions(_ p: UnsafePointer<phi4_generate_params>?) throws -> (GenerationOptions, Bool) {
    let prm = try readParams(p, "phi4_generate_params", defaults: generateParamsDefaults())
    var o = GenerationOptions()
    guard prm.max_tokens >= 0 else { throw ABIError.invalid("max_tokens must not be negative") }
    o.maxTokens = Int(prm.max_tokens)
    o.sampling = try sampling(prm.sampling)
    let n = try count(prm.n_stop_strings, "n_stop_strings")
    if n > 0 {
        guard let list = prm.stop_strings else { throw ABIError.invalid("stop_strings is NULL") }
        for i in 0..<n { o.stopStrings.append(try string(list[i], "stop_strings[\(i)]")) }
    }
    guard prm.top_logprobs >= -1 && prm.top_logprobs <= 20 else { throw ABIError.invalid("top_logprobs must be -1 or 0…20") }
    o.topLogprobs = prm.top_logprobs >= 0 ? Int(prm.top_logprobs) : nil
    guard prm.lookup >= 0 && prm.lookup <= 64 else { throw ABIError.invalid("lookup must be in 0…64") }
    o.lookup = Int(prm.lookup)
    o.constraint = try constraint(prm.constraint_type, prm.constraint, prm.constraint_len)
    return (o, prm.parse_special != 0)
}

/// The constraint of a (type, text, length) triple (nil for PHI4_CONSTRAINT_NONE).
func constraint(_ type: Int32, _ text: UnsafePointer<CChar>?, _ len: Int) throws -> Constraint? {
    func body() throws -> String {
        let n = try count(len, "constraint_len")
        guard let text else { throw ABIError.invalid("constraint is NULL") }
        let bytes = UnsafeRawBufferPointer(start: text, count: n)
        guard let s = String(validating: bytes, as: UTF8.self) else { throw ABIError.invalid("constraint is not valid UTF-8") }
        return s
    }
    switch type {
    case Int32(PHI4_CONSTRAINT_NONE.rawValue): return nil
    case Int32(PHI4_CONSTRAINT_GRAMMAR.rawValue): return .grammar(try body())
    case Int32(PHI4_CONSTRAINT_REGEX.rawValue): return .regex(try body())
    case Int32(PHI4_CONSTRAINT_JSON_SCHEMA.rawValue): return .jsonSchema(try body())
    case Int32(PHI4_CONSTRAINT_JSON_OBJECT.rawValue): return .jsonObject
    default: throw ABIError.invalid("constraint_type \(type) is not a PHI4_CONSTRAINT_* value")
    }
}

@_cdecl("phi4_constraint_check")
public func phi4_constraint_check(_ m: OpaquePointer?, _ type: Int32, _ text: UnsafePointer<CChar>?, _ len: Int) -> phi4_status {
    guarded {
        let model = try model(m).model
        guard let c = try constraint(type, text, len) else { return }
        do {
            _ = try TokenConstraint.compiled(c, tokenizer: model.tokenizer, vocabSize: model.config.vocabSize)
        } catch {
            throw ABIError.invalid("constraint: \(error)")
        }
    }
}

@_cdecl("phi4_constraint_match")
public func phi4_constraint_match(_ type: Int32, _ spec: UnsafePointer<CChar>?, _ len: Int, _ text: UnsafePointer<CChar>?,
                                  _ textLen: Int, _ matches: UnsafeMutablePointer<Int32>?) -> phi4_status {
    guarded {
        guard let matches else { throw ABIError.invalid("matches is NULL") }
        let n = try count(textLen, "text_len")
        guard text != nil || n == 0 else { throw ABIError.invalid("text is NULL") }
        let bytes = n == 0 ? [] : Array(UnsafeRawBufferPointer(start: text, count: n).bindMemory(to: UInt8.self))
        guard String(validating: bytes, as: UTF8.self) != nil else { throw ABIError.invalid("text is not valid UTF-8") }
        guard let c = try constraint(type, spec, len) else {
            matches.pointee = 1
            return
        }
        let result: Bool
        do { result = try c.matches(utf8: bytes) } catch { throw ABIError.invalid("constraint: \(error)") }
        matches.pointee = result ? 1 : 0
    }
}

func stopCode(_ r: StopReason?) -> phi4_stop_reason {
    switch r {
    case nil: return phi4_stop_reason(PHI4_STOP_NONE.rawValue)
    case .endOfSequence: return phi4_stop_reason(PHI4_STOP_EOS.rawValue)
    case .stopString: return phi4_stop_reason(PHI4_STOP_STRING.rawValue)
    case .maxTokens: return phi4_stop_reason(PHI4_STOP_MAX_TOKENS.rawValue)
    case .contextFull: return phi4_stop_reason(PHI4_STOP_CONTEXT_FULL.rawValue)
    case .cancelled: return phi4_stop_reason(PHI4_STOP_CANCELLED.rawValue)
    }
}

func runGeneration(_ box: ContextBox, _ prompt: [TokenID], _ options: GenerationOptions, _ cb: phi4_piece_callback?,
                   _ userData: UnsafeMutableRawPointer?, _ reason: UnsafeMutablePointer<phi4_stop_reason>?) throws {
    reason?.pointee = phi4_stop_reason(PHI4_STOP_NONE.rawValue)
    try box.exclusive {
        box.beginGeneration()
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
            box.beginGeneration()
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
