// The tokenizer functions: phi4_tokenizer_*, phi4_tokenize, phi4_detokenize and the chat template.

import CPhi4ABI
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

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
