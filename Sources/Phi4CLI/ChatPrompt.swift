// `phi4 chat-prompt`: a chat prompt as Phi-4 token ids.

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

struct ChatPrompt: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat-prompt",
        abstract: "Print the ids (and the text) of a Phi-4 chat prompt.")

    @Option(help: "A model directory, a tokenizer.json or a .tiktoken file.")
    var tokenizer: String

    @Option(help: "System message.")
    var system: String?

    @Argument(help: "The user's message.")
    var user: String

    func run() throws {
        let tok = try loadTokenizer(tokenizer)
        var messages: [ChatMessage] = []
        if let system { messages.append(.system(system)) }
        messages.append(.user(user))
        print(tok.renderChat(messages))
        do { print(formatIDs(try tok.applyChatTemplate(messages))) } catch {
            throw RuntimeError(error)
        }
    }
}
