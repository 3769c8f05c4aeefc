import ArgumentParser
import Phi4

#if canImport(Glibc)
import Glibc
#endif

@main
struct Phi4Command: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "phi4",
        abstract: "Run Microsoft's Phi-4 on the CPU: tokenize, generate, benchmark.",
        version: Phi4Version.string,
        subcommands: [Tokenize.self, Detokenize.self, ChatPrompt.self, BenchTokenizer.self])
}

/// Loads a tokenizer or exits with the error message.
func loadTokenizer(_ path: String) throws -> Tokenizer {
    do {
        return try Tokenizer.load(path: path)
    } catch {
        throw ValidationError(error.description)
    }
}

/// Formats ids as a compact JSON array.
func formatIDs(_ ids: [TokenID]) -> String {
    "[" + ids.map(String.init).joined(separator: ",") + "]"
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the token ids of a text (or of JSON lines from stdin with --jsonl).")

    @Option(help: "A model directory, a tokenizer.json or a .tiktoken file.")
    var tokenizer: String

    @Flag(help: "Recognise special-token text such as <|im_end|>.")
    var special = false

    @Flag(help: "Read JSON lines {\"text\": ..., \"special\": bool} from stdin; print one id array per line.")
    var jsonl = false

    @Argument(help: "The text to tokenize.")
    var text: String?

    func run() throws {
        let tok = try loadTokenizer(tokenizer)
        if jsonl {
            var lineNumber = 0
            while let line = readLine(strippingNewline: true) {
                lineNumber += 1
                if line.isEmpty { continue }
                let value: JSONValue
                do { value = try JSONParser.parse(line) } catch {
                    throw ValidationError("stdin line \(lineNumber): \(error)")
                }
                guard let text = value["text"]?.stringValue else {
                    throw ValidationError("stdin line \(lineNumber): no \"text\" string")
                }
                let allow = value["special"]?.boolValue ?? special
                print(formatIDs(tok.encode(text, allowSpecial: allow)))
            }
            return
        }
        guard let text else { throw ValidationError("give a TEXT argument or --jsonl") }
        print(formatIDs(tok.encode(text, allowSpecial: special)))
    }
}

struct Detokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the text of comma-separated token ids.")

    @Option(help: "A model directory, a tokenizer.json or a .tiktoken file.")
    var tokenizer: String

    @Argument(help: "Token ids, e.g. 9906,11,1917 (or a JSON array).")
    var ids: String

    func run() throws {
        let tok = try loadTokenizer(tokenizer)
        var list: [TokenID] = []
        let trimmed = ids.filter { $0 != "[" && $0 != "]" && $0 != " " }
        for part in trimmed.split(separator: ",") {
            guard let id = TokenID(part) else { throw ValidationError("not a token id: \(part)") }
            list.append(id)
        }
        do {
            print(try tok.decodeText(list))
        } catch {
            throw ValidationError(error.description)
        }
    }
}

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
            throw ValidationError(error.description)
        }
    }
}

struct BenchTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-tokenizer",
        abstract: "Measure encode throughput (one thread) on a text file.")

    @Option(help: "A model directory, a tokenizer.json or a .tiktoken file.")
    var tokenizer: String

    @Option(help: "How many times to encode the file; the best run is reported.")
    var repeats = 3

    @Argument(help: "A UTF-8 text file.")
    var file: String

    func run() throws {
        let tok = try loadTokenizer(tokenizer)
        guard let f = fopen(file, "rb") else { throw ValidationError("cannot open \(file)") }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            bytes.append(contentsOf: buf[0..<n])
        }
        fclose(f)
        let text = String(decoding: bytes, as: UTF8.self)
        var best = Double.infinity
        var count = 0
        for _ in 0..<max(1, repeats) {
            let clock = ContinuousClock()
            let start = clock.now
            count = tok.encode(text).count
            let d = clock.now - start
            let s = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
            best = min(best, s)
        }
        let mb = Double(bytes.count) / 1e6
        print("bytes=\(bytes.count) tokens=\(count) seconds=\(best) MB/s=\(mb / best)")
    }
}
