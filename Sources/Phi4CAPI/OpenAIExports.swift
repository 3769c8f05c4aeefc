// phi4_openai_start / phi4_openai_next: an OpenAI-shaped request on a context, through the
// engine's one OpenAI mapping (Sources/Phi4/OpenAI), the one phi4-server uses.

import CPhi4ABI
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

/// An OpenAI request running on a context: its generation and what has been reported so far.
final class OpenAIRun {
    let request: OpenAIRequest
    let responder: OpenAIResponder
    let generation: Generation
    let promptTokens: Int
    let cachedTokens: Int
    var first = true
    var text = ""
    var textOffset = 0
    var reportedLogprobs = 0
    var finalSent = false
    var done = false
    /// A reasoning model's `<think>` part, split from the answer in chat responses (nil: no split).
    var splitter: ReasoningSplitter?
    /// A body that did not fit the caller's buffer, given again by the next call.
    var pending: [UInt8]?

    init(request: OpenAIRequest, responder: OpenAIResponder, generation: Generation, promptTokens: Int, cachedTokens: Int) {
        self.request = request
        self.responder = responder
        self.generation = generation
        self.promptTokens = promptTokens
        self.cachedTokens = cachedTokens
    }

    var usage: OpenAIUsage {
        OpenAIUsage(promptTokens: promptTokens, completionTokens: generation.result.tokens.count, cachedTokens: cachedTokens)
    }

    func newLogprobs() -> [TokenLogprob]? {
        guard request.logprobs else { return nil }
        let all = generation.result.logprobs
        defer { reportedLogprobs = all.count }
        return Array(all[min(reportedLogprobs, all.count)...])
    }

    /// The next response body, or nil when everything has been given.
    func next() throws -> String? {
        if done { return nil }
        let finish = { OpenAIResponder.finishReason(self.generation.result.stopReason) }
        if !request.stream {
            while let piece = try generation.next() { text += piece.text }
            done = true
            if splitter != nil {
                let (reasoning, content) = ReasoningSplitter.split(text)
                return responder.completion(text: content, reasoning: reasoning, finishReason: finish(), usage: usage,
                                            logprobs: newLogprobs())
            }
            return responder.completion(text: text, finishReason: finish(), usage: usage, logprobs: newLogprobs())
        }
        if !finalSent {
            if let piece = try generation.next() {
                defer { first = false; textOffset += piece.text.count }
                let (reasoning, content) = splitter?.push(piece.text) ?? ("", piece.text)
                return responder.chunk(text: content, reasoning: reasoning, first: first, finishReason: nil,
                                       logprobs: newLogprobs(), textOffset: textOffset, usageNull: request.includeUsage)
            }
            finalSent = true
            defer { first = false }
            let (reasoning, content) = splitter?.finish() ?? ("", "")
            return responder.chunk(text: content, reasoning: reasoning, first: first, finishReason: finish(),
                                   logprobs: newLogprobs(), textOffset: textOffset, usageNull: request.includeUsage)
        }
        done = true
        return request.includeUsage ? responder.usageChunk(usage) : nil
    }
}

@_cdecl("phi4_openai_start")
public func phi4_openai_start(_ c: OpaquePointer?, _ kind: Int32, _ body: UnsafePointer<CChar>?, _ len: Int) -> phi4_status {
    guarded {
        let box = try context(c)
        let n = try count(len, "len")
        guard let body else { throw ABIError.invalid("request_json is NULL") }
        let k: OpenAIRequest.Kind
        switch kind {
        case Int32(PHI4_OPENAI_CHAT.rawValue): k = .chat
        case Int32(PHI4_OPENAI_COMPLETION.rawValue): k = .completion
        default: throw ABIError.invalid("kind \(kind) is not a PHI4_OPENAI_* value")
        }
        let bytes = Array(UnsafeRawBufferPointer(start: body, count: n))
        try box.exclusive {
            let session = box.session
            let request: OpenAIRequest
            let ids: [TokenID]
            do throws(OpenAIError) {
                request = try OpenAIRequest.parse(bytes, kind: k, maxTokensCap: Int(Int32.max), defaultMaxTokens: 256)
                ids = try request.promptTokens(session.model.tokenizer)
            } catch {
                throw ABIError.invalid(error.message)
            }
            guard ids.count < session.contextLength else {
                throw ABIError(status: phi4_status(PHI4_ERR_CONTEXT_FULL.rawValue),
                               message: "the prompt has \(ids.count) tokens; the context holds \(session.contextLength) (prompt and completion)")
            }
            box.beginGeneration()
            let rest = session.reusePrefix(of: ids)
            let g = try session.startGeneration(rest, options: request.options)
            box.generation = g
            let responder = OpenAIResponder(kind: k, id: (k == .chat ? "chatcmpl-" : "cmpl-") + String(UInt64.random(in: 1...UInt64.max), radix: 36),
                                            created: Int(unixSeconds()), model: request.model ?? "phi4", tokenizer: session.model.tokenizer)
            let run = OpenAIRun(request: request, responder: responder, generation: g, promptTokens: ids.count,
                                cachedTokens: ids.count - rest.count)
            if k == .chat && session.model.thinksBeforeAnswering { run.splitter = ReasoningSplitter() }
            box.openai = run
        }
    }
}

@_cdecl("phi4_openai_next")
public func phi4_openai_next(_ c: OpaquePointer?, _ out: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                             _ len: UnsafeMutablePointer<Int>?) -> phi4_status {
    guarded {
        let box = try context(c)
        guard let len else { throw ABIError.invalid("len is NULL") }
        let capacity = try count(capacity, "capacity")
        try box.exclusive {
            guard let run = box.openai else { throw ABIError.invalid("no OpenAI request: call phi4_openai_start first") }
            if run.pending == nil, let body = try run.next() { run.pending = Array(body.utf8) }
            guard let bytes = run.pending else {
                len.pointee = 0
                box.lastResult = run.generation.result
                return
            }
            try writeBytes(bytes, out, capacity, len, nul: false)
            run.pending = nil
        }
    }
}

/// Seconds since the Unix epoch.
func unixSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec)
}
