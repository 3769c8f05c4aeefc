/// Loading tokenizers from the files Phi-4 ships in.
extension Tokenizer {
    /// Loads a tokenizer from a path:
    /// - a model directory: its `tokenizer.json`, with `tokenizer_config.json` and
    ///   `generation_config.json` beside it when present;
    /// - an HF `tokenizer.json` file (the same sibling files are read from its directory);
    /// - a tiktoken ranks file (`*.tiktoken`): the ranks plus Phi-4's special-token table
    ///   (``SpecialToken/phi4Table(firstID:)``) numbered from the first id after the ranks, since
    ///   that format carries no special tokens; a file named `o200k*` is Phi-4-mini's (o200k
    ///   pattern, ``SpecialToken/phi4MiniTable``).
    ///
    /// - Throws: ``TokenizerError`` with the file and the reason; never traps on bad files.
    public static func load(path: String) throws(TokenizerError) -> Tokenizer {
        if FileIO.isDirectory(path) {
            let json = FileIO.join(path, "tokenizer.json")
            guard FileIO.exists(json) else { throw .io("\(path): no tokenizer.json in this directory") }
            return try loadHuggingFace(tokenizerJSON: json)
        }
        if path.hasSuffix(".tiktoken") {
            // o200k_base: Phi-4-mini's special tokens at their ids; otherwise Phi-4's.
            if path.split(separator: "/").last?.hasPrefix("o200k") == true {
                return try loadTiktoken(path: path, specialTokens: SpecialToken.phi4MiniTable, pattern: .o200k)
            }
            return try loadTiktoken(path: path)
        }
        return try loadHuggingFace(tokenizerJSON: path)
    }

    /// Loads a tiktoken ranks file (`base64-bytes rank` per line) with the given special tokens
    /// (by default Phi-4's table numbered from the first id after the ranks) and pre-tokenizer.
    /// The end-of-generation ids are `<|im_end|>` (or Phi-4-mini's `<|end|>`) and
    /// `<|endoftext|>`; no BOS is added.
    public static func loadTiktoken(path: String, specialTokens: [SpecialToken]? = nil,
                                    pattern: SplitPattern = .cl100k) throws(TokenizerError) -> Tokenizer {
        let data: [UInt8]
        do { data = try FileIO.readAll(path, limit: 1 << 30) } catch { throw .io(error.description) }
        var ranks: [([UInt8], Int)] = []
        ranks.reserveCapacity(data.count / 16)
        var lineNumber = 0
        var i = 0
        while i < data.count {
            lineNumber += 1
            var end = i
            while end < data.count && data[end] != 0x0A { end += 1 }
            var lineEnd = end
            if lineEnd > i && data[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            defer { i = end + 1 }
            if lineEnd == i { continue }
            guard let space = data[i..<lineEnd].firstIndex(of: 0x20) else {
                throw .invalidFormat("\(path):\(lineNumber): expected 'base64 rank'")
            }
            guard let bytes = Base64.decode(data[i..<space]) else {
                throw .invalidFormat("\(path):\(lineNumber): invalid base64")
            }
            var rank = 0
            var digits = 0
            for b in data[(space + 1)..<lineEnd] {
                guard b >= 0x30 && b <= 0x39, digits < 9 else {
                    throw .invalidFormat("\(path):\(lineNumber): invalid rank")
                }
                rank = rank * 10 + Int(b - 0x30)
                digits += 1
            }
            if digits == 0 { throw .invalidFormat("\(path):\(lineNumber): missing rank") }
            ranks.append((bytes, rank))
        }
        if ranks.isEmpty { throw .invalidFormat("\(path): no tokens") }
        let first = (ranks.map { $0.1 }.max() ?? -1) + 1
        let specials = specialTokens ?? SpecialToken.phi4Table(firstID: TokenID(first))
        do {
            let eos = specials.first { $0.text == "<|im_end|>" || $0.text == "<|end|>" }?.id
            return try Tokenizer(ranks: ranks, specialTokens: specials,
                                 bosTokenID: specials.first { $0.text == "<|endoftext|>" }?.id,
                                 addsBOS: false, eosTokenID: eos, pattern: pattern)
        } catch {
            throw .invalidFormat("\(path): \(error.description)")
        }
    }

    /// The o200k pre-tokenizer pattern (Phi-4-mini's `tokenizer.json`, tiktoken's o200k_base).
    static let o200kPattern = #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The cl100k pre-tokenizer pattern as tiktoken writes it, and as HF `tokenizer.json`
    /// files (Phi-4's among them) write it; both split identically.
    static let knownPatterns: Set<String> = [
        #"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"#,
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#,
        #"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"#,
    ]

    /// Loads an HF `tokenizer.json` (byte-level BPE), with `tokenizer_config.json` and
    /// `generation_config.json` from the same directory when they exist.
    public static func loadHuggingFace(tokenizerJSON path: String) throws(TokenizerError) -> Tokenizer {
        let root = try readJSON(path)
        guard let model = root["model"] else { throw .invalidFormat("\(path): no \"model\" section") }
        let type = model["type"]?.stringValue ?? "BPE"
        guard type == "BPE" else { throw .unsupported("\(path): model type \(type) (only byte-level BPE is implemented)") }
        if model["byte_fallback"]?.boolValue == true { throw .unsupported("\(path): BPE with byte_fallback (a SentencePiece-style vocabulary)") }
        let pattern = try checkPreTokenizer(root["pre_tokenizer"], path: path)
        guard let vocab = model["vocab"]?.objectValue else { throw .invalidFormat("\(path): model.vocab is not an object") }

        let byteOf = ByteLevelAlphabet.byteForScalar
        var ranks: [([UInt8], Int)] = []
        ranks.reserveCapacity(vocab.count)
        for (key, value) in vocab {
            guard let id = value.intValue, id >= 0 else { throw .invalidFormat("\(path): vocab entry \(key) has no valid id") }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(key.utf8.count)
            for u in key.unicodeScalars {
                guard u.value < 0x200, let b = byteOf[Int(u.value)] else {
                    throw .invalidFormat("\(path): vocab entry \(key) is not in the byte-level alphabet")
                }
                bytes.append(b)
            }
            ranks.append((bytes, id))
        }
        if let merges = model["merges"], merges.arrayValue == nil {
            throw .invalidFormat("\(path): model.merges is not an array")
        }

        // Added tokens: from tokenizer.json, then tokenizer_config.json's added_tokens_decoder.
        // As in HF tokenizers, a token marked special owns its id even when model.vocab lists it
        // too (the library writes both when an added token keeps a vocabulary id); a non-special
        // one is matched before BPE in every mode, and may duplicate the vocabulary entry it equals.
        func addedToken(_ entry: JSONValue, id: Int, text: String, in file: String) throws(TokenizerError) -> SpecialToken {
            if entry["single_word"]?.boolValue == true {
                throw .unsupported("\(file): added token \(text) with single_word")
            }
            return SpecialToken(text: text, id: TokenID(id), isSpecial: entry["special"]?.boolValue ?? false,
                                lstrip: entry["lstrip"]?.boolValue ?? false, rstrip: entry["rstrip"]?.boolValue ?? false)
        }
        var added: [TokenID: SpecialToken] = [:]
        for entry in root["added_tokens"]?.arrayValue ?? [] {
            guard let id = entry["id"]?.intValue, let text = entry["content"]?.stringValue, id >= 0, id < 1 << 24, !text.isEmpty else {
                throw .invalidFormat("\(path): an added token has no valid id or content")
            }
            added[TokenID(id)] = try addedToken(entry, id: id, text: text, in: path)
        }
        let dir = FileIO.directory(of: path)
        let configPath = FileIO.join(dir, "tokenizer_config.json")
        var config: JSONValue = .object([:])
        if FileIO.exists(configPath) { config = try readJSON(configPath) }
        for (key, entry) in config["added_tokens_decoder"]?.objectValue ?? [:] {
            guard let id = Int(key), id >= 0, id < 1 << 24, let text = entry["content"]?.stringValue, !text.isEmpty else {
                throw .invalidFormat("\(configPath): invalid added_tokens_decoder entry \(key)")
            }
            if let existing = added[TokenID(id)] {
                if existing.text != text {
                    throw .invalidFormat("\(configPath): token \(id) is \(text) here but \(existing.text) in tokenizer.json")
                }
                continue  // tokenizer.json's flags are the ones the tokenizers library applies
            }
            added[TokenID(id)] = try addedToken(entry, id: id, text: text, in: configPath)
        }
        let rankIDs = Dictionary(ranks.map { ($0.1, $0.0) }, uniquingKeysWith: { a, _ in a })
        var specialList: [SpecialToken] = []
        for (id, token) in added {
            if !token.isSpecial, let bytes = rankIDs[Int(id)], bytes != Array(token.text.utf8) {
                throw .invalidFormat("\(path): added token \(token.text) reuses BPE id \(id)")
            }
            specialList.append(token)
        }
        let byText = Dictionary(specialList.map { ($0.text, $0.id) }, uniquingKeysWith: { a, _ in a })

        func resolve(_ v: JSONValue?, _ key: String) throws(TokenizerError) -> TokenID? {
            guard let v, !v.isNull else { return nil }
            let name = v.stringValue ?? v["content"]?.stringValue
            guard let name else { throw .invalidFormat("\(configPath): \(key) is neither a string nor {\"content\": ...}") }
            guard let id = byText[name] else { throw .invalidFormat("\(configPath): \(key) \(name) is not a special token") }
            return id
        }
        var bos = try resolve(config["bos_token"], "bos_token")
        let eos = try resolve(config["eos_token"], "eos_token")
        var pad = try resolve(config["pad_token"], "pad_token")
        let addBOS = config["add_bos_token"]?.boolValue ?? false
        var eosIDs: [TokenID] = []

        let generationPath = FileIO.join(dir, "generation_config.json")
        if FileIO.exists(generationPath) {
            let gen = try readJSON(generationPath)
            func ids(_ v: JSONValue?) throws(TokenizerError) -> [TokenID] {
                guard let v, !v.isNull else { return [] }
                if let i = v.intValue, i >= 0, i < 1 << 24 { return [TokenID(i)] }
                if let a = v.arrayValue {
                    var out: [TokenID] = []
                    for x in a {
                        guard let i = x.intValue, i >= 0, i < 1 << 24 else { throw .invalidFormat("\(generationPath): invalid token id") }
                        out.append(TokenID(i))
                    }
                    return out
                }
                throw .invalidFormat("\(generationPath): invalid token id")
            }
            eosIDs = try ids(gen["eos_token_id"])
            if bos == nil { bos = try ids(gen["bos_token_id"]).first }
            if pad == nil { pad = try ids(gen["pad_token_id"]).first }
        }
        do {
            return try Tokenizer(ranks: ranks, specialTokens: specialList, bosTokenID: bos, addsBOS: addBOS,
                                 eosTokenID: eos, eosTokenIDs: eosIDs, padTokenID: pad, pattern: pattern)
        } catch {
            throw .invalidFormat("\(path): \(error.description)")
        }
    }

    /// The split pattern of a `tokenizer.json` pre-tokenizer: cl100k's or o200k's; others (GPT-2's …)
    /// are refused.
    private static func checkPreTokenizer(_ pre: JSONValue?, path: String) throws(TokenizerError) -> SplitPattern {
        guard let pre, !pre.isNull else { throw .unsupported("\(path): no pre_tokenizer (expected cl100k's split pattern)") }
        var steps = [pre]
        if pre["type"]?.stringValue == "Sequence" { steps = pre["pretokenizers"]?.arrayValue ?? [] }
        var found: SplitPattern?
        for step in steps {
            switch step["type"]?.stringValue {
            case "Split":
                let pattern = step["pattern"]?["Regex"]?.stringValue ?? step["pattern"]?["String"]?.stringValue ?? ""
                if knownPatterns.contains(pattern) {
                    found = .cl100k
                } else if pattern == o200kPattern {
                    found = .o200k
                } else {
                    throw .unsupported("\(path): pre-tokenizer pattern \(pattern) is neither cl100k's (Phi-4) nor o200k's (Phi-4-mini)")
                }
            case "ByteLevel":
                if step["use_regex"]?.boolValue ?? true {
                    throw .unsupported("\(path): ByteLevel pre-tokenizer with GPT-2's regex (not cl100k)")
                }
            default:
                throw .unsupported("\(path): pre-tokenizer \(step["type"]?.stringValue ?? "?")")
            }
        }
        guard let found else { throw .unsupported("\(path): the pre-tokenizer has no split pattern") }
        return found
    }

    static func readJSON(_ path: String) throws(TokenizerError) -> JSONValue {
        let data: [UInt8]
        do { data = try FileIO.readAll(path, limit: 1 << 30) } catch { throw .io(error.description) }
        do { return try JSONParser.parse(data) } catch { throw .malformedJSON("\(path): \(error.description)") }
    }
}

extension SpecialToken {
    /// Phi-4's special tokens numbered from `firstID` (100256 in Phi-4): `<|dummy_0|>`,
    /// `<|endoftext|>`, `<|fim_prefix|>`, `<|fim_middle|>`, `<|fim_suffix|>`, `<|dummy_1..3|>`,
    /// `<|im_start|>`, `<|im_end|>`, `<|im_sep|>`, then `<|dummy_4|>`… with `<|endofprompt|>` at
    /// offset 20, 96 in all. Used for `.tiktoken` files, which carry no special tokens.
    public static func phi4Table(firstID: TokenID) -> [SpecialToken] {
        var names = ["<|dummy_0|>", "<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                     "<|dummy_1|>", "<|dummy_2|>", "<|dummy_3|>", "<|im_start|>", "<|im_end|>", "<|im_sep|>"]
        var dummy = 4
        while names.count < 96 {
            if names.count == 20 {
                names.append("<|endofprompt|>")
            } else {
                names.append("<|dummy_\(dummy)|>")
                dummy += 1
            }
        }
        return names.enumerated().map { SpecialToken(text: $0.element, id: firstID + TokenID($0.offset)) }
    }
}

extension SpecialToken {
    /// Phi-4-mini's added tokens at their ids (o200k_base's `<|endoftext|>` 199999 and
    /// `<|endofprompt|>` 200018, then `<|assistant|>`, `<|end|>`, `<|user|>`, `<|system|>`,
    /// `<|tool|>`, `<|/tool|>`, `<|tool_call|>`, `<|/tool_call|>`, `<|tool_response|>`, `<|tag|>`
    /// at 200019…200028). Ids 200000–200017 and 200029 up to the model's 200,064 rows have no token.
    public static let phi4MiniTable: [SpecialToken] = {
        var table = [SpecialToken(text: "<|endoftext|>", id: 199999), SpecialToken(text: "<|endofprompt|>", id: 200018)]
        let names = ["<|assistant|>", "<|end|>", "<|user|>", "<|system|>", "<|tool|>", "<|/tool|>", "<|tool_call|>",
                     "<|/tool_call|>", "<|tool_response|>", "<|tag|>"]
        for (i, name) in names.enumerated() { table.append(SpecialToken(text: name, id: 200019 + TokenID(i))) }
        return table
    }()
}

/// GPT-2's reversible mapping between bytes and printable Unicode scalars, which HF byte-level
/// BPE files use to write byte strings as JSON text.
enum ByteLevelAlphabet {
    /// The scalar each byte is written as.
    static let scalarForByte: [UInt32] = {
        var bs: [Int] = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var cs = bs
        var n = 0
        for b in 0..<256 where !bs.contains(b) {
            bs.append(b)
            cs.append(256 + n)
            n += 1
        }
        var out = [UInt32](repeating: 0, count: 256)
        for (b, c) in zip(bs, cs) { out[b] = UInt32(c) }
        return out
    }()

    /// The byte each scalar below 0x200 stands for (nil: not in the alphabet).
    static let byteForScalar: [UInt8?] = {
        var out = [UInt8?](repeating: nil, count: 0x200)
        for (b, c) in scalarForByte.enumerated() { out[Int(c)] = UInt8(b) }
        return out
    }()
}

/// Standard base64 decoding (RFC 4648, padding optional).
enum Base64 {
    private static let table: [Int8] = {
        var t = [Int8](repeating: -1, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            t[Int(c)] = Int8(i)
        }
        return t
    }()

    /// The decoded bytes, or nil when the text is not base64.
    static func decode(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.count * 3 / 4)
        var acc: UInt32 = 0
        var bits = 0
        var padding = 0
        for c in text {
            if c == UInt8(ascii: "=") { padding += 1; continue }
            if padding > 0 { return nil }
            let v = table[Int(c)]
            if v < 0 { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((acc >> UInt32(bits)) & 0xFF))
            }
        }
        if padding > 2 || bits >= 6 { return nil }
        return out
    }
}
