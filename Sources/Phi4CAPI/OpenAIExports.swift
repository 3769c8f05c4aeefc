// phi4_openai_start / phi4_openai_next: an OpenAI-shaped request on a context, through the
// engine's one OpenAI mapping (Sources/Phi4/OpenAI), the one phi4-server uses.

import CPhi4ABI
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

/// An OpenAI request running on a context: its generation and the answer being written.
final class OpenAIRun {
    let request: OpenAIRequest
    let generation: Generation
    let promptTokens: Int
    let cachedTokens: Int
    var answer: OpenAIAnswer
    var reportedLogprobs = 0
    var queued: [String] = []
    var ended = false
    /// A body that did not fit the caller's buffer, given again by the next call.
    var pending: [UInt8]?

    init(request: OpenAIRequest, answer: OpenAIAnswer, generation: Generation, promptTokens: Int, cachedTokens: Int) {
        self.request = request
        self.answer = answer
        self.generation = generation
        self.promptTokens = promptTokens
        self.cachedTokens = cachedTokens
    }

    var usage: OpenAIUsage {
        OpenAIUsage(promptTokens: promptTokens, completionTokens: generation.result.tokens.count, cachedTokens: cachedTokens)
    }

    func newLogprobs() -> [TokenLogprob] {
        let all = generation.result.logprobs
        defer { reportedLogprobs = all.count }
        return Array(all[min(reportedLogprobs, all.count)...])
    }

    /// The next response body, or nil when everything has been given.
    func next() throws -> String? {
        while queued.isEmpty && !ended {
            if !request.stream {
                var text = ""
                while let piece = try generation.next() { text += piece.text }
                ended = true
                queued.append(answer.completion(text: text, logprobs: generation.result.logprobs, result: generation.result, usage: usage))
            } else if let piece = try generation.next() {
                queued += answer.chunks(text: piece.text, logprobs: newLogprobs())
            } else {
                ended = true
                queued += answer.chunks(text: "", logprobs: newLogprobs(), result: generation.result, usage: usage)
            }
        }
        return queued.isEmpty ? nil : queued.removeFirst()
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
            let g = try session.startGeneration(rest, options: request.generationOptions(session.model.tokenizer))
            box.generation = g
            let responder = OpenAIResponder(kind: k, id: (k == .chat ? "chatcmpl-" : "cmpl-") + String(UInt64.random(in: 1...UInt64.max), radix: 36),
                                            created: Int(unixSeconds()), model: request.model ?? "phi4", tokenizer: session.model.tokenizer)
            let answer = OpenAIAnswer(request: request, responder: responder, tokenizer: session.model.tokenizer,
                                      splitsReasoning: session.model.thinksBeforeAnswering)
            box.openai = OpenAIRun(request: request, answer: answer, generation: g, promptTokens: ids.count,
                                   cachedTokens: ids.count - rest.count)
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
