/// A token id. Ids are 32-bit everywhere in libphi4, as in the C ABI.
public typealias TokenID = Int32

/// Everything that can go wrong when loading or using a tokenizer.
public enum TokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A file could not be read (path and reason).
    case io(String)
    /// A file is not valid JSON (path and the parser's message).
    case malformedJSON(String)
    /// A file is well-formed but not a tokenizer we understand.
    case invalidFormat(String)
    /// A feature of the file that libphi4 does not implement (e.g. another pre-tokenizer).
    case unsupported(String)
    /// Input bytes are not valid UTF-8; the byte offset of the first invalid sequence.
    case invalidUTF8(offset: Int)
    /// A token id that is not in the vocabulary.
    case unknownTokenID(TokenID)
    /// A special token the operation needs (e.g. `<|im_start|>` for the chat template) is missing.
    case missingSpecialToken(String)
    /// A chat message is not acceptable (e.g. an empty role).
    case invalidMessage(String)

    /// A one-line, human-readable description.
    public var description: String {
        switch self {
        case .io(let m): return "cannot read tokenizer: \(m)"
        case .malformedJSON(let m): return "malformed tokenizer file: \(m)"
        case .invalidFormat(let m): return "invalid tokenizer: \(m)"
        case .unsupported(let m): return "unsupported tokenizer: \(m)"
        case .invalidUTF8(let o): return "input is not valid UTF-8 (first invalid byte at offset \(o))"
        case .unknownTokenID(let id): return "unknown token id \(id)"
        case .missingSpecialToken(let n): return "the tokenizer has no special token \(n)"
        case .invalidMessage(let m): return "invalid chat message: \(m)"
        }
    }
}

/// An added token: text matched before BPE, such as `<|im_end|>`.
///
/// As in HF `tokenizers`: a *special* token (``isSpecial``, the default) is matched only when
/// specials are allowed and is otherwise ordinary text; a non-special added token is matched in
/// every mode. `lstrip` / `rstrip` make a match also take the whitespace before / after it.
public struct SpecialToken: Sendable, Equatable {
    /// The token's text, e.g. `<|im_end|>`.
    public let text: String
    /// Its id.
    public let id: TokenID
    /// True for a special token (matched only when specials are allowed); false for a
    /// non-special added token (always matched).
    public let isSpecial: Bool
    /// A match also takes the whitespace just before it.
    public let lstrip: Bool
    /// A match also takes the whitespace just after it.
    public let rstrip: Bool

    /// Creates an added token (special unless `isSpecial` is false).
    public init(text: String, id: TokenID, isSpecial: Bool = true, lstrip: Bool = false, rstrip: Bool = false) {
        self.text = text
        self.id = id
        self.isSpecial = isSpecial
        self.lstrip = lstrip
        self.rstrip = rstrip
    }
}

/// How text is split into pieces before byte-pair encoding: the model family's regex.
public enum SplitPattern: String, Sendable {
    /// cl100k_base's pattern (Phi-4, Phi-4-reasoning).
    case cl100k
    /// o200k_base's pattern (Phi-4-mini), which also splits words at case changes.
    case o200k
}

/// Phi-4's tokenizer: cl100k_base byte-level BPE (tiktoken's algorithm) plus special tokens; or
/// Phi-4-mini's, o200k_base (``SplitPattern/o200k``).
///
/// Load one with ``Tokenizer/load(path:)`` from a model directory, an HF `tokenizer.json` or a
/// tiktoken `.tiktoken` ranks file. Special-token ids and names, the end-of-generation ids and
/// whether a BOS token is added all come from the files. A tokenizer is immutable and may be
/// used from any number of threads at once.
///
///     let tok = try Tokenizer.load(path: "phi-4/")
///     let ids = tok.encode("Hello, world!")            // [9906, 11, 1917, 0]
///     let text = try tok.decodeText(ids)               // "Hello, world!"
public final class Tokenizer: Sendable {
    let vocabulary: BytePairVocabulary
    /// The pre-tokenizer's pattern.
    public let pattern: SplitPattern
    /// Special tokens in id order.
    public let specialTokens: [SpecialToken]
    /// The beginning-of-sequence token, if the files name one.
    public let bosTokenID: TokenID?
    /// Whether encoding a prompt should start with ``bosTokenID`` (Phi-4: no).
    public let addsBOS: Bool
    /// The token the files name as end-of-sequence (`eos_token`), if any.
    public let eosTokenID: TokenID?
    /// Every id that ends generation: the files' eos ids plus `<|im_end|>` and `<|endoftext|>`
    /// when the vocabulary has them (the original Phi-4 `tokenizer_config.json` and early GGUFs name
    /// `<|endoftext|>` as eos, while chat turns end with `<|im_end|>`: stopping on one alone runs on
    /// or leaks the marker).
    public let endOfGenerationIDs: Set<TokenID>
    /// The padding token, if the files name one.
    public let padTokenID: TokenID?
    /// One past the largest id (BPE ranks and special tokens): the model's embedding rows must be at least this many.
    public let vocabularySize: Int

    private let specialByID: [TokenID: Int]
    private let specialByText: [String: TokenID]
    /// Every added token (used when specials are allowed).
    private let specialMatcher: SpecialTokenMatcher
    /// The non-special added tokens only (matched when specials are not allowed).
    private let plainAddedMatcher: SpecialTokenMatcher

    /// Creates a tokenizer from BPE ranks (a token's id is its rank) and special tokens.
    ///
    /// - Parameters:
    ///   - ranks: every BPE token's bytes and rank; all 256 single bytes must be present.
    ///   - specialTokens: added tokens, matched before BPE when specials are allowed.
    ///   - bosTokenID: the BOS token, if any; `addsBOS` says whether prompts start with it.
    ///   - eosTokenIDs: ids that end generation in addition to `<|im_end|>` / `<|endoftext|>`.
    ///   - eosTokenID: the primary end-of-sequence id.
    ///   - padTokenID: the padding id.
    ///   - pattern: the pre-tokenizer (cl100k for Phi-4, o200k for Phi-4-mini).
    /// - Throws: ``TokenizerError/invalidFormat(_:)`` on duplicate ids or texts, or missing bytes.
    public init(ranks: [([UInt8], Int)], specialTokens: [SpecialToken], bosTokenID: TokenID? = nil,
                addsBOS: Bool = false, eosTokenID: TokenID? = nil, eosTokenIDs: [TokenID] = [],
                padTokenID: TokenID? = nil, pattern: SplitPattern = .cl100k) throws(TokenizerError) {
        // A special token owns its id even when the vocabulary also lists it (tokenizers matches
        // added tokens before the model); a non-special added token may duplicate a vocabulary
        // entry with the same bytes, which keeps decoding to the same text.
        let specialIDs = Set(specialTokens.filter(\.isSpecial).map { Int($0.id) })
        let vocab = try BytePairVocabulary(specialIDs.isEmpty ? ranks : ranks.filter { !specialIDs.contains($0.1) })
        var byID: [TokenID: Int] = [:]
        var byText: [String: TokenID] = [:]
        let sorted = specialTokens.sorted { $0.id < $1.id }
        for (i, s) in sorted.enumerated() {
            guard s.id >= 0 else { throw .invalidFormat("special token \(s.text) has a negative id") }
            guard !s.text.isEmpty else { throw .invalidFormat("special token \(s.id) has no text") }
            if let b = vocab.bytes(of: Int(s.id)), !b.elementsEqual(s.text.utf8) {
                throw .invalidFormat("added token \(s.text) reuses the id \(s.id) of another BPE token")
            }
            if byID[s.id] != nil { throw .invalidFormat("special token id \(s.id) appears twice") }
            if byText[s.text] != nil { throw .invalidFormat("special token \(s.text) appears twice") }
            byID[s.id] = i
            byText[s.text] = s.id
        }
        var size = vocab.rankLimit
        if let last = sorted.last { size = max(size, Int(last.id) + 1) }
        for id in [bosTokenID, eosTokenID, padTokenID] + eosTokenIDs.map(Optional.some) {
            if let id, id < 0 || Int(id) >= size { throw .invalidFormat("special id \(id) is outside the vocabulary") }
        }
        var stop = Set(eosTokenIDs)
        if let eosTokenID { stop.insert(eosTokenID) }
        for name in ["<|im_end|>", "<|endoftext|>", "<|end|>"] { if let id = byText[name] { stop.insert(id) } }

        self.vocabulary = vocab
        self.pattern = pattern
        self.specialTokens = sorted
        self.specialByID = byID
        self.specialByText = byText
        self.specialMatcher = SpecialTokenMatcher(sorted)
        self.plainAddedMatcher = SpecialTokenMatcher(sorted.filter { !$0.isSpecial })
        self.bosTokenID = bosTokenID
        self.addsBOS = addsBOS && bosTokenID != nil
        self.eosTokenID = eosTokenID
        self.endOfGenerationIDs = stop
        self.padTokenID = padTokenID
        self.vocabularySize = size
    }

    /// The number of BPE ranks (ids below this that exist are ordinary tokens).
    public var bpeTokenCount: Int { vocabulary.count }

    /// The id of the special token with this exact text (e.g. `"<|im_end|>"`), or nil.
    public func specialTokenID(_ text: String) -> TokenID? { specialByText[text] }

    /// True when `id` is a special token (an added token marked special).
    public func isSpecial(_ id: TokenID) -> Bool { specialByID[id].map { specialTokens[$0].isSpecial } ?? false }

    /// The added token (special or not) with this id, or nil.
    public func addedToken(_ id: TokenID) -> SpecialToken? { specialByID[id].map { specialTokens[$0] } }

    /// True when `id` is a valid token of this tokenizer.
    public func isValid(_ id: TokenID) -> Bool {
        vocabulary.bytes(of: Int(id)) != nil || specialByID[id] != nil
    }

    // MARK: Encoding

    /// Encodes text into token ids.
    ///
    /// - Parameters:
    ///   - text: the text.
    ///   - allowSpecial: when true, special-token text such as `<|im_end|>` becomes its special id
    ///     (tiktoken's `allowed_special="all"`); when false it is ordinary text and is split by
    ///     BPE like anything else (tiktoken's `disallowed_special=()`). Untrusted text should be
    ///     encoded with `false`.
    ///   - addBOS: prepend the BOS token when the tokenizer's files ask for it (``addsBOS``).
    public func encode(_ text: String, allowSpecial: Bool = false, addBOS: Bool = false) -> [TokenID] {
        var text = text
        return text.withUTF8 { encodeValidated($0, allowSpecial: allowSpecial, addBOS: addBOS) }
    }

    /// Encodes UTF-8 bytes into token ids.
    ///
    /// - Throws: ``TokenizerError/invalidUTF8(offset:)`` when the bytes are not valid UTF-8
    ///   (nothing is encoded; no replacement characters are substituted silently).
    public func encode(utf8 bytes: [UInt8], allowSpecial: Bool = false, addBOS: Bool = false) throws(TokenizerError) -> [TokenID] {
        try bytes.withUnsafeBufferPointer { (buf) throws(TokenizerError) -> [TokenID] in
            if let bad = UTF8Validation.firstInvalidOffset(buf) { throw .invalidUTF8(offset: bad) }
            return encodeValidated(buf, allowSpecial: allowSpecial, addBOS: addBOS)
        }
    }

    /// The number of tokens `text` encodes to.
    public func count(_ text: String, allowSpecial: Bool = false) -> Int {
        encode(text, allowSpecial: allowSpecial).count
    }

    private func encodeValidated(_ buf: UnsafeBufferPointer<UInt8>, allowSpecial: Bool, addBOS: Bool) -> [TokenID] {
        var out: [TokenID] = []
        out.reserveCapacity(buf.count / 3 + 4)
        if addBOS && addsBOS, let bos = bosTokenID { out.append(bos) }
        guard let base = buf.baseAddress, buf.count > 0 else { return out }
        var encoder = BytePairEncoder(vocab: vocabulary)
        var start = 0
        let matcher = allowSpecial ? specialMatcher : plainAddedMatcher
        while let (at, end, id) = matcher.find(base, from: start, to: buf.count) {
            encodeOrdinary(base + start, at - start, encoder: &encoder, into: &out)
            out.append(id)
            start = end
        }
        encodeOrdinary(base + start, buf.count - start, encoder: &encoder, into: &out)
        return out
    }

    /// Pre-tokenizes then byte-pair-encodes text that contains no special tokens.
    private func encodeOrdinary(_ p: UnsafePointer<UInt8>, _ n: Int, encoder: inout BytePairEncoder, into out: inout [TokenID]) {
        guard n > 0 else { return }
        switch pattern {
        case .cl100k:
            var scanner = PreTokenizer(p, count: n)
            while let piece = scanner.next() { encoder.encode(p + piece.lowerBound, piece.count, into: &out) }
        case .o200k:
            var scanner = O200kPreTokenizer(p, count: n)
            while let piece = scanner.next() { encoder.encode(p + piece.lowerBound, piece.count, into: &out) }
        }
    }

    // MARK: Decoding

    /// The bytes of one token (a special token's bytes are its text).
    /// - Throws: ``TokenizerError/unknownTokenID(_:)``.
    public func tokenBytes(_ id: TokenID) throws(TokenizerError) -> [UInt8] {
        if let b = vocabulary.bytes(of: Int(id)) { return Array(b) }
        if let i = specialByID[id] { return Array(specialTokens[i].text.utf8) }
        throw .unknownTokenID(id)
    }

    /// Appends the bytes of one token to `out`.
    func appendBytes(of id: TokenID, to out: inout [UInt8]) throws(TokenizerError) {
        if let b = vocabulary.bytes(of: Int(id)) {
            out.append(contentsOf: b)
        } else if let i = specialByID[id] {
            out.append(contentsOf: specialTokens[i].text.utf8)
        } else {
            throw .unknownTokenID(id)
        }
    }

    /// Decodes ids to bytes. Tokens may split a UTF-8 character, so the bytes of a token
    /// sequence need not be valid UTF-8; use ``decodeText(_:)`` for a string.
    /// - Throws: ``TokenizerError/unknownTokenID(_:)`` for an id outside the vocabulary.
    public func decode(_ ids: [TokenID]) throws(TokenizerError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * 4)
        for id in ids { try appendBytes(of: id, to: &out) }
        return out
    }

    /// Decodes ids to text; invalid UTF-8 (a character cut by the end of the sequence, say)
    /// becomes U+FFFD, one per maximal invalid subsequence.
    /// - Throws: ``TokenizerError/unknownTokenID(_:)`` for an id outside the vocabulary.
    public func decodeText(_ ids: [TokenID]) throws(TokenizerError) -> String {
        let bytes = try decode(ids)
        return bytes.withUnsafeBufferPointer { UTF8Validation.decodeLossy($0, holdIncomplete: false).0 }
    }
}

/// Finds added-token text in UTF-8 bytes: the leftmost occurrence, longest on a tie.
struct SpecialTokenMatcher: Sendable {
    private let firstByte: [Bool]
    private let tokens: [(bytes: [UInt8], id: TokenID, lstrip: Bool, rstrip: Bool)]

    init(_ specials: [SpecialToken]) {
        var first = [Bool](repeating: false, count: 256)
        var list: [(bytes: [UInt8], id: TokenID, lstrip: Bool, rstrip: Bool)] = []
        for s in specials {
            let b = Array(s.text.utf8)
            first[Int(b[0])] = true
            list.append((b, s.id, s.lstrip, s.rstrip))
        }
        list.sort { $0.bytes.count > $1.bytes.count }
        firstByte = first
        tokens = list
    }

    /// The first added token in `p[from..<to]`: where its match starts and ends (with the
    /// whitespace an `lstrip` / `rstrip` token takes) and its id.
    func find(_ p: UnsafePointer<UInt8>, from: Int, to: Int) -> (Int, Int, TokenID)? {
        if tokens.isEmpty { return nil }
        return firstByte.withUnsafeBufferPointer { first in
            var i = from
            while i < to {
                if first[Int(p[i])] {
                    for t in tokens where t.bytes.count <= to - i {
                        let ok = t.bytes.withUnsafeBufferPointer { memcmpBytes($0.baseAddress!, p + i, t.bytes.count) }
                        guard ok else { continue }
                        var start = i, end = i + t.bytes.count
                        if t.lstrip { while let w = Self.whitespace(before: start, in: p, from: from) { start -= w } }
                        if t.rstrip { while let w = Self.whitespace(at: end, in: p, to: to) { end += w } }
                        return (start, end, t.id)
                    }
                }
                i += 1
            }
            return nil
        }
    }

    /// The length of the whitespace character starting at `i`, if there is one before `to`.
    private static func whitespace(at i: Int, in p: UnsafePointer<UInt8>, to: Int) -> Int? {
        guard i < to, case .valid(let length) = UTF8Validation.step(p, i, to) else { return nil }
        var value = length == 1 ? UInt32(p[i]) : UInt32(p[i]) & (0x7F >> length)
        for k in 1..<length { value = value << 6 | UInt32(p[i + k] & 0x3F) }
        return Unicode.Scalar(value)?.properties.isWhitespace == true ? length : nil
    }

    /// The length of the whitespace character ending just before `i`, if it starts at or after `from`.
    private static func whitespace(before i: Int, in p: UnsafePointer<UInt8>, from: Int) -> Int? {
        guard i > from else { return nil }
        var s = i - 1
        while s > from && p[s] & 0xC0 == 0x80 { s -= 1 }
        guard let w = whitespace(at: s, in: p, to: i), s + w == i else { return nil }
        return w
    }
}
