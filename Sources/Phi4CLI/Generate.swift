// `phi4 generate`: text or token ids from a prompt.

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
@preconcurrency import Glibc  // stdout and stderr: C globals (FILE streams lock themselves)
#endif

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text (streamed to stdout) or token ids from a prompt.")

    @OptionGroup var common: ModelOptions

    @OptionGroup var sampling: SamplingOptions

    @Option(name: [.customShort("p"), .customLong("prompt")], help: "The prompt text.")
    var prompt: String?

    @Option(name: [.customShort("f"), .customLong("file")], help: "Read the prompt from this file.")
    var file: String?

    @Option(help: "The prompt as comma-separated token ids instead of text.")
    var ids: String?

    @Flag(help: "Wrap the prompt in Phi-4's chat template (as the user's message).")
    var chat = false

    @Option(name: [.customLong("system"), .customLong("sys", withSingleDash: true), .customLong("system-prompt")], help: "A system message (with --chat).")
    var system: String?

    @Flag(help: "Use Phi-4-reasoning's system prompt (with --chat; a Phi-4-reasoning vocabulary gets it without a --system anyway).")
    var reasoning = false

    @Option(name: [.customLong("max-tokens"), .customShort("n"), .customLong("n-predict")], help: "The most tokens to generate (default \(GenerationOptions().maxTokens)).")
    var maxTokens = GenerationOptions().maxTokens

    @Option(name: .customLong("stop"), help: "A stop string (repeatable).")
    var stop: [String] = []

    @Flag(name: .customLong("print-ids"), help: "Print the generated ids, comma-separated, instead of text.")
    var printIDs = false

    /// The output is constrained to one of these (at most one given).
    @OptionGroup(title: "Constraints (the output matches)") var constraints: ConstraintOptions

    @Option(help: "Prompt-lookup decoding: propose up to N tokens (≤ 7) from earlier text, verified in one pass (0: off).")
    var lookup = 0

    func run() throws {
        let m = try common.loadModel()
        var promptIDs: [TokenID]
        var prompt = self.prompt
        if let file {
            guard prompt == nil && ids == nil else { throw ValidationError("give one of --prompt, --file and --ids") }
            do { prompt = String(decoding: try FileIO.readAll(file, limit: 1 << 28), as: UTF8.self) } catch { throw RuntimeError(error) }
        }
        if let ids {
            promptIDs = try parseIDs(ids)
        } else if let prompt {
            if chat {
                var messages: [ChatMessage] = []
                if reasoning && system != nil { throw ValidationError("give --system or --reasoning, not both") }
                if reasoning { messages.append(.reasoningSystem) }
                if let system { messages.append(.system(system)) }
                messages.append(.user(prompt))
                do { promptIDs = try m.tokenizer.applyChatTemplate(messages) } catch { throw RuntimeError(error) }
            } else {
                promptIDs = m.tokenizer.encode(prompt, addBOS: true)
            }
        } else {
            throw ValidationError("give --prompt TEXT (-p), --file FILE (-f) or --ids 1,2,3")
        }
        if promptIDs.isEmpty { throw ValidationError("the prompt is empty") }
        var options = GenerationOptions()
        options.lookup = lookup
        options.maxTokens = maxTokens
        options.stopStrings = stop
        options.sampling = sampling.parameters
        options.constraint = try constraints.constraint()
        // Default capacity: enough for the prompt and the tokens asked for (at least 4096).
        let session = try common.session(m, defaultCapacity: max(4096, promptIDs.count + maxTokens))
        do {
            let result = try session.generate(promptIDs, options: options) { text, _ in
                if !printIDs {
                    fputs(text, stdout)
                    fflush(stdout)
                }
                return true
            }
            if printIDs {
                print(result.tokens.map(String.init).joined(separator: ","))
            } else {
                print("")
            }
            fflush(stdout)
            let pp = Double(result.promptTokenCount) / max(result.promptSeconds, 1e-9)
            let tg = Double(result.tokens.count) / max(result.generationSeconds, 1e-9)
            let drafts = lookup > 0 ? "; lookup: \(result.acceptedDraftTokens) of \(result.draftTokens) proposed tokens accepted" : ""
            printError("prompt: \(result.promptTokenCount) tokens, \(fmt(pp)) tok/s; generated: \(result.tokens.count) tokens, \(fmt(tg)) tok/s; stop: \(result.stopReason.rawValue)\(drafts)")
        } catch {
            throw RuntimeError(error)
        }
    }
}
