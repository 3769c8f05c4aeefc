// `phi4 detokenize`: token ids to text.

import ArgumentParser
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

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
            throw RuntimeError(error)
        }
    }
}
