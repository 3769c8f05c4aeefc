// One chat turn with a Phi-4 model, streamed through the AsyncSequence API.
//   swift run --package-path examples/swift ChatTurn MODEL "question"
import Phi4

#if canImport(Glibc)
import Glibc
#endif

let args = CommandLine.arguments
guard args.count >= 3 else {
    print("usage: ChatTurn MODEL \"question\"")
    exit(2)
}
do {
    let model = try Model.load(path: args[1])
    let session = try Session(model: model, contextLength: min(2048, model.config.maxPositions))
    let prompt = try model.tokenizer.applyChatTemplate([.system("You are a helpful assistant."), .user(args[2])])
    var options = GenerationOptions()
    options.maxTokens = 64
    options.sampling.temperature = 0.7
    options.sampling.seed = 1
    for try await piece in session.pieces(prompt, options: options) {
        print(piece, terminator: "")
    }
    print()
} catch {
    print("error: \(error)")
    exit(1)
}
