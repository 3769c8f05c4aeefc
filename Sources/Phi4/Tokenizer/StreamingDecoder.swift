/// Turns a stream of token ids into text that only ever contains whole UTF-8 characters.
///
/// Tokens can end in the middle of a character (an emoji is often split over two or three
/// tokens). ``append(_:)`` returns the text that is complete so far and keeps the unfinished
/// bytes; ``flush()`` ends the stream, turning a dangling partial character into U+FFFD.
/// Bytes that can never become valid UTF-8 come out as U+FFFD at once (one per maximal
/// invalid subsequence), so the concatenated output equals ``Tokenizer/decodeText(_:)``.
///
///     var stream = StreamingDecoder(tokenizer: tok)
///     for id in ids { print(try stream.append(id), terminator: "") }
///     print(stream.flush())
public struct StreamingDecoder: Sendable {
    /// The tokenizer whose ids are decoded.
    public let tokenizer: Tokenizer
    private var pending: [UInt8] = []

    /// A decoder with nothing pending.
    public init(tokenizer: Tokenizer) { self.tokenizer = tokenizer }

    /// Adds one token and returns the text it completes (possibly empty).
    /// - Throws: ``TokenizerError/unknownTokenID(_:)``; the pending bytes are kept unchanged.
    public mutating func append(_ id: TokenID) throws(TokenizerError) -> String {
        try tokenizer.appendBytes(of: id, to: &pending)
        return drain(final: false)
    }

    /// Adds several tokens and returns the text they complete.
    public mutating func append(contentsOf ids: [TokenID]) throws(TokenizerError) -> String {
        var out = ""
        for id in ids { out += try append(id) }
        return out
    }

    /// The number of bytes held back because they may be the start of a character.
    public var pendingByteCount: Int { pending.count }

    /// Ends the stream: returns what was held back, a partial character becoming U+FFFD.
    public mutating func flush() -> String { drain(final: true) }

    /// Forgets anything held back.
    public mutating func reset() { pending.removeAll() }

    private mutating func drain(final: Bool) -> String {
        if pending.isEmpty { return "" }
        let (text, used) = pending.withUnsafeBufferPointer { UTF8Validation.decodeLossy($0, holdIncomplete: !final) }
        pending.removeFirst(used)
        return text
    }
}
