/// The request and response bodies of the HTTP endpoints beside the completions: llama-server's
/// `/tokenize` and `/detokenize`, and OpenAI's `/v1/embeddings`. Parsed and written here, in the
/// library, so that the server only moves bytes.
public enum ServerEndpoints {
    /// `POST /tokenize` (llama-server's shape): `{"content": "text", "add_special": false,
    /// "parse_special": true, "with_pieces": false}` → `{"tokens": [ids]}`, or with `with_pieces`
    /// `{"tokens": [{"id": 9906, "piece": "Hello"}, …]}` (a piece that is not whole UTF-8 is a list
    /// of its bytes). `add_special` prepends BOS when the tokenizer's files ask for it.
    public static func tokenize(_ body: [UInt8], tokenizer: Tokenizer) throws(OpenAIError) -> String {
        let o = try object(body)
        let addSpecial = try flag(o, "add_special", default: false)
        let parseSpecial = try flag(o, "parse_special", default: true)
        let withPieces = try flag(o, "with_pieces", default: false)
        let text: String
        switch o["content"] {
        case nil: return #"{"tokens":[]}"#
        case .string(let s)?: text = s
        default: throw .invalid("content", "content must be a string")
        }
        let ids = tokenizer.encode(text, allowSpecial: parseSpecial, addBOS: addSpecial)
        guard withPieces else { return #"{"tokens":["# + ids.map(String.init).joined(separator: ",") + "]}" }
        let items = ids.map { id -> String in
            let bytes = (try? tokenizer.decode([id])) ?? []
            let piece: JSONValue = UTF8Validation.firstInvalidOffset(bytes) == nil ? .string(String(decoding: bytes, as: UTF8.self))
                : .array(bytes.map { .number(Double($0)) })
            return #"{"id":\#(id),"piece":\#(piece.serialized)}"#
        }
        return #"{"tokens":["# + items.joined(separator: ",") + "]}"
    }

    /// `POST /detokenize`: `{"tokens": [ids]}` → `{"content": "text"}` (an id outside the
    /// vocabulary is an error naming it).
    public static func detokenize(_ body: [UInt8], tokenizer: Tokenizer) throws(OpenAIError) -> String {
        let o = try object(body)
        guard let list = o["tokens"] else { return #"{"content":""}"# }
        guard let items = list.arrayValue else { throw .invalid("tokens", "tokens must be an array of token ids") }
        var ids: [TokenID] = []
        for item in items {
            guard let n = item.intValue, n >= 0, n < tokenizer.vocabularySize else {
                throw .invalid("tokens", "tokens must be ids of this model's vocabulary (0..<\(tokenizer.vocabularySize))")
            }
            ids.append(TokenID(n))
        }
        let bytes = (try? tokenizer.decode(ids)) ?? []
        return #"{"content":\#(JSONValue.string(String(decoding: bytes, as: UTF8.self)).serialized)}"#
    }

    /// A parsed `POST /v1/embeddings` body.
    public struct EmbeddingRequest: Sendable {
        /// The inputs as token ids.
        public var inputs: [[TokenID]]
        /// `encoding_format: "base64"`: each vector as the base64 of its little-endian float32 bytes.
        public var base64 = false
        /// The `model` field, if any.
        public var model: String?
    }

    /// Parses `/v1/embeddings`: `input` a string, a list of strings, a list of ids or a list of
    /// lists of ids (OpenAI's four forms); `encoding_format` float (default) or base64. At most
    /// `maxInputs` inputs of at most `maxTokens` tokens each, none empty.
    public static func embeddingRequest(_ body: [UInt8], tokenizer: Tokenizer, maxInputs: Int,
                                        maxTokens: Int) throws(OpenAIError) -> EmbeddingRequest {
        let o = try object(body)
        var r = EmbeddingRequest(inputs: [])
        if let m = o["model"], !m.isNull {
            guard let s = m.stringValue else { throw .invalid("model", "model must be a string") }
            r.model = s
        }
        if let u = o["user"], !u.isNull, u.stringValue == nil { throw .invalid("user", "user must be a string") }
        switch o["encoding_format"] {
        case nil, .null?, .string("float")?: break
        case .string("base64")?: r.base64 = true
        default: throw .invalid("encoding_format", "encoding_format must be float or base64")
        }
        func ids(_ v: JSONValue) throws(OpenAIError) -> [TokenID]? {
            guard let a = v.arrayValue, !a.isEmpty, a.allSatisfy({ $0.intValue != nil }) else { return nil }
            var out: [TokenID] = []
            for x in a {
                guard let n = x.intValue, n >= 0, n < tokenizer.vocabularySize else {
                    throw .invalid("input", "token ids must be in 0..<\(tokenizer.vocabularySize)")
                }
                out.append(TokenID(n))
            }
            return out
        }
        switch o["input"] {
        case .string(let s)?: r.inputs = [tokenizer.encode(s)]
        case .array(let a)? where !a.isEmpty:
            if let one = try ids(.array(a)) {
                r.inputs = [one]
            } else {
                for item in a {
                    if let s = item.stringValue {
                        r.inputs.append(tokenizer.encode(s))
                    } else if let list = try ids(item) {
                        r.inputs.append(list)
                    } else {
                        throw .invalid("input", "input must be a string, a list of strings, or token ids")
                    }
                }
            }
        default: throw .invalid("input", "input must be a string, a list of strings, or token ids")
        }
        guard r.inputs.count <= maxInputs else { throw .invalid("input", "at most \(maxInputs) inputs in one request") }
        for (i, x) in r.inputs.enumerated() {
            guard !x.isEmpty else { throw .invalid("input", "input \(i) is empty") }
            guard x.count <= maxTokens else {
                throw .invalid("input", "input \(i) has \(x.count) tokens; at most \(maxTokens)", code: "context_length_exceeded")
            }
        }
        return r
    }

    /// The `/v1/embeddings` response: `{"object": "list", "data": [{"object": "embedding",
    /// "index": i, "embedding": [...] or "base64"}], "model": …, "usage": {"prompt_tokens": n,
    /// "total_tokens": n}}`.
    public static func embeddingResponse(_ vectors: [[Float]], model: String, promptTokens: Int, base64: Bool) -> String {
        var out = #"{"object":"list","data":["#
        for (i, v) in vectors.enumerated() {
            if i > 0 { out += "," }
            out += #"{"object":"embedding","index":\#(i),"#
            if base64 {
                var bytes: [UInt8] = []
                bytes.reserveCapacity(v.count * 4)
                for x in v { withUnsafeBytes(of: x.bitPattern.littleEndian) { bytes += $0 } }
                out += #""encoding_format":"base64","embedding":""# + base64Encoded(bytes) + "\""
            } else {
                out += #""embedding":["# + v.map { $0.isFinite ? "\($0)" : "0" }.joined(separator: ",") + "]"
            }
            out += "}"
        }
        out += #"],"model":\#(JSONValue.string(model).serialized),"usage":{"prompt_tokens":\#(promptTokens),"total_tokens":\#(promptTokens)}}"#
        return out
    }

    /// RFC 4648 base64 with padding.
    static func base64Encoded(_ bytes: [UInt8]) -> String {
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            let b0 = UInt32(bytes[i]), b1 = n > 1 ? UInt32(bytes[i + 1]) : 0, b2 = n > 2 ? UInt32(bytes[i + 2]) : 0
            let v = b0 << 16 | b1 << 8 | b2
            out.append(table[Int(v >> 18 & 63)])
            out.append(table[Int(v >> 12 & 63)])
            out.append(n > 1 ? table[Int(v >> 6 & 63)] : UInt8(ascii: "="))
            out.append(n > 2 ? table[Int(v & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func object(_ body: [UInt8]) throws(OpenAIError) -> [String: JSONValue] {
        let root: JSONValue
        do { root = try JSONParser.parse(body) } catch { throw .invalid(nil, "the body is not valid JSON: \(error)") }
        guard let o = root.objectValue else { throw .invalid(nil, "the body must be a JSON object") }
        return o
    }

    private static func flag(_ o: [String: JSONValue], _ name: String, default d: Bool) throws(OpenAIError) -> Bool {
        guard let v = o[name] else { return d }
        guard let b = v.boolValue else { throw .invalid(name, "\(name) must be true or false") }
        return b
    }
}
