// `phi4 tokenize`: text to token ids.

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

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
                    throw RuntimeError("stdin line \(lineNumber): \(error)")
                }
                guard let text = value["text"]?.stringValue else {
                    throw RuntimeError("stdin line \(lineNumber): no \"text\" string")
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
