import XCTest
@testable import Phi4

final class AsyncGenerationTests: XCTestCase {
    func testAsyncPiecesEqualTheCallbackText() async throws {
        let model = GenerationTests.model
        let prompt = try loadReference("gqa4")[1].ids
        var options = GenerationOptions()
        options.sampling = .greedy
        options.maxTokens = 24
        let expected = try Session(model: model, contextLength: 256).generate(prompt, options: options).text
        let session = try Session(model: model, contextLength: 256)
        var text = ""
        for try await piece in session.pieces(prompt, options: options) { text += piece }
        XCTAssertEqual(text, expected)
        // Breaking out early stops the generation and leaves the session usable.
        let s2 = try Session(model: model, contextLength: 256)
        options.maxTokens = 200
        var n = 0
        for try await _ in s2.pieces(prompt, options: options) {
            n += 1
            if n == 2 { break }
        }
        XCTAssertEqual(n, 2)
    }
}
