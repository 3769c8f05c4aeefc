// `phi4 chat`: a chat REPL in the terminal.

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
@preconcurrency import Glibc  // stdout and stderr: C globals (FILE streams lock themselves)
#endif

/// The session a Ctrl-C should interrupt (the chat REPL's current answer).
// nonisolated(unsafe): written once on the main thread before the SIGINT handler is installed;
// the handler only reads it and calls cancel(), which is safe from any thread.
nonisolated(unsafe) var interruptibleSession: Unmanaged<Session>?

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Chat with a model in the terminal (streaming; /reset, /system TEXT (/system reasoning: Phi-4-reasoning's prompt), /exit; Ctrl-C stops an answer).")

    @OptionGroup var common: ModelOptions

    @OptionGroup var sampling: SamplingOptions

    @Option(name: [.customLong("system"), .customLong("sys", withSingleDash: true), .customLong("system-prompt")], help: "A system message.")
    var system: String?

    @Flag(help: "Use Phi-4-reasoning's system prompt (a Phi-4-reasoning vocabulary gets it without a --system anyway).")
    var reasoning = false

    @Option(help: "A reasoning model's <think> part: dim (faint on a terminal), show (as written) or hide.")
    var thinking = "dim"

    @Option(name: [.customLong("max-tokens"), .customShort("n"), .customLong("n-predict")], help: "The most tokens per answer.")
    var maxTokens = 512

    func run() throws {
        let m = try common.loadModel()
        let session = try common.session(m, defaultCapacity: 4096)
        interruptibleSession = Unmanaged.passUnretained(session)
        signal(SIGINT) { _ in interruptibleSession?.takeUnretainedValue().cancel() }
        var options = GenerationOptions()
        options.maxTokens = maxTokens
        options.sampling = sampling.parameters
        // The conversation so far. Each turn re-encodes it; the context keeps what is shared with
        // the previous turn (prefix reuse), so only the new messages are evaluated. When it
        // outgrows the context the oldest exchanges are dropped; the system message stays.
        guard ["dim", "show", "hide"].contains(thinking) else { throw ValidationError("--thinking must be dim, show or hide") }
        if reasoning && system != nil { throw ValidationError("give --system or --reasoning, not both") }
        let systemText = reasoning ? ChatMessage.phi4ReasoningSystemPrompt : system
        var history: [ChatMessage] = systemText.map { $0.isEmpty ? [] : [.system($0)] } ?? []
        let splitsThinking = m.thinksBeforeAnswering || reasoning
        let faint = isatty(1) != 0
        let budget = session.contextLength - min(maxTokens, session.contextLength / 2)
        print("phi4 chat — /reset, /system TEXT, /exit")
        while true {
            fputs("> ", stdout)
            fflush(stdout)
            guard let line = readLine() else { break }
            let text = line.trimmingSpaces()
            if text.isEmpty { continue }
            if text == "/exit" || text == "/quit" { break }
            if text == "/reset" {
                history = history.first?.role == "system" ? [history[0]] : []
                session.reset()
                print("[conversation reset]")
                continue
            }
            if text.hasPrefix("/system") {
                let message = String(text.dropFirst(7)).trimmingSpaces()
                history = message.isEmpty ? [] : [.system(message == "reasoning" ? ChatMessage.phi4ReasoningSystemPrompt : message)]
                session.reset()
                print("[system message set; conversation reset]")
                continue
            }
            history.append(.user(text))
            do {
                let (prompt, dropped) = try m.tokenizer.applyChatTemplate(history, fitting: budget)
                if dropped > 0 {
                    let head = history.first?.role == "system" ? 1 : 0
                    history.removeSubrange(head..<(head + dropped))
                    print("[dropped the \(dropped) oldest messages to fit the context]")
                }
                let rest = session.reusePrefix(of: prompt)
                var splitter = ReasoningSplitter()
                var inThought = false
                // A reasoning model's thinking is shown faint (or as written, or not at all);
                // the answer as usual.
                func show(_ part: (reasoning: String, content: String)) {
                    if !part.reasoning.isEmpty && thinking != "hide" {
                        if !inThought {
                            fputs(thinking == "dim" && faint ? "\u{1B}[2m" : "<think>", stdout)
                            inThought = true
                        }
                        fputs(part.reasoning, stdout)
                    }
                    if !part.content.isEmpty {
                        if inThought {
                            fputs(thinking == "dim" && faint ? "\u{1B}[0m\n" : "</think>\n", stdout)
                            inThought = false
                        }
                        fputs(part.content, stdout)
                    }
                }
                let result = try session.generate(rest, options: options) { piece, _ in
                    if splitsThinking { show(splitter.push(piece)) } else { fputs(piece, stdout) }
                    fflush(stdout)
                    return true
                }
                if splitsThinking {
                    show(splitter.finish())
                    if inThought { fputs(thinking == "dim" && faint ? "\u{1B}[0m" : "</think>", stdout) }
                }
                history.append(.assistant(result.text))
                let tps = Double(result.tokens.count) / max(result.generationSeconds, 1e-9)
                print(result.stopReason == .cancelled ? " [stopped]" : "")
                printError("[\(result.tokens.count) tokens, \(fmt(tps)) tok/s; \(rest.count) of \(prompt.count) prompt tokens evaluated]")
            } catch {
                print("")
                printError("error: \(error)")
                history.removeLast()
                session.reset()
            }
        }
    }
}
