// From a grammar over bytes to the tokens allowed next: the vocabulary as a byte trie, walked
// from the grammar's current state, with the result cached per state.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A mutex for process-wide tables.
final class ProcessLock: @unchecked Sendable {  // the mutex is the synchronisation
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    func lock() { pthread_mutex_lock(&m) }
    func unlock() { pthread_mutex_unlock(&m) }
}

/// What generated text must follow.
public enum Constraint: Sendable, Hashable {
    /// A grammar in llama.cpp's GBNF syntax (start rule `root`).
    case grammar(String)
    /// A regular expression the whole output must match (see ``Regex``'s documented subset).
    case regex(String)
    /// A JSON Schema (its JSON text) the output must be a valid instance of (see ``JSONSchema``).
    case jsonSchema(String)
    /// Any JSON object (OpenAI's `{"type": "json_object"}`).
    case jsonObject
    /// A reply that is text or function calls, as ``ToolCalling`` describes.
    case toolCalls(ToolCalling)

    /// The grammar of this constraint.
    public func compile() throws(ConstraintError) -> Grammar {
        switch self {
        case .grammar(let g): return try GBNF.compile(g)
        case .regex(let r): return try Regex.compile(r)
        case .jsonSchema(let s): return try JSONSchema.compile(s)
        case .jsonObject: return try JSONSchema.compile(#"{"type": "object"}"#)
        case .toolCalls(let t): return try t.grammar()
        }
    }
}

/// A vocabulary as a trie of token bytes. A special token is in it as the bytes
/// ``GrammarBuilder/specialToken(_:)`` spells for its text (0xFF, the text, 0xFF: a byte no UTF-8
/// text contains), so a grammar admits one only where it names it; plain tokens holding a raw 0xFF
/// byte are left out, so that nothing else can spell that path. End-of-generation is decided by
/// the grammar's completeness, not by the trie.
final class TokenTrie: @unchecked Sendable {  // immutable after init
    /// Per node: first child, next sibling (-1: none), the byte leading to it, tokens ending there.
    var firstChild: [Int32] = [-1], nextSibling: [Int32] = [-1], byte: [UInt8] = [0]
    var tokenStart: [Int32] = [0], tokenCount: [Int32] = [0]
    var tokens: [Int32] = []
    /// Each token's bytes as the grammar sees them (nil for unassigned ids).
    let tokenBytes: [[UInt8]?]

    init(tokenizer: Tokenizer, vocabSize: Int) {
        var bytesOf = [[UInt8]?](repeating: nil, count: vocabSize)
        var children: [[UInt8: Int32]] = [[:]]
        var ends: [[Int32]] = [[]]
        var entries: [(Int, [UInt8])] = []
        for id in 0..<min(vocabSize, tokenizer.vocabularySize) {
            guard let b = tokenizer.vocabulary.bytes(of: id), b.count > 0, !b.contains(0xFF) else { continue }
            entries.append((id, Array(b)))
        }
        for t in tokenizer.specialTokens where t.id >= 0 && Int(t.id) < vocabSize && tokenizer.vocabulary.bytes(of: Int(t.id)) == nil {
            entries.append((Int(t.id), GrammarBuilder.specialTokenBytes(t.text)))
        }
        for (id, b) in entries {
            bytesOf[id] = b
            var node = 0
            for x in b {
                if let c = children[node][x] { node = Int(c); continue }
                children.append([:])
                ends.append([])
                let c = Int32(children.count - 1)
                children[node][x] = c
                node = Int(c)
            }
            ends[node].append(Int32(id))
        }
        tokenBytes = bytesOf
        let n = children.count
        firstChild = [Int32](repeating: -1, count: n)
        nextSibling = [Int32](repeating: -1, count: n)
        byte = [UInt8](repeating: 0, count: n)
        tokenStart = [Int32](repeating: 0, count: n)
        tokenCount = [Int32](repeating: 0, count: n)
        for node in 0..<n {
            var prev: Int32 = -1
            for (x, c) in children[node].sorted(by: { $0.key < $1.key }) {
                byte[Int(c)] = x
                if prev < 0 { firstChild[node] = c } else { nextSibling[Int(prev)] = c }
                prev = c
            }
            tokenStart[node] = Int32(tokens.count)
            tokenCount[node] = Int32(ends[node].count)
            tokens += ends[node]
        }
    }

    // nonisolated(unsafe): read and written only under `lock`.
    nonisolated(unsafe) private static var cache: [ObjectIdentifier: (Tokenizer, Int, TokenTrie)] = [:]
    private static let lock = ProcessLock()

    /// The trie of a tokenizer, built once per process.
    static func of(_ tokenizer: Tokenizer, vocabSize: Int) -> TokenTrie {
        lock.lock()
        defer { lock.unlock() }
        if let (t, n, trie) = cache[ObjectIdentifier(tokenizer)], t === tokenizer, n == vocabSize { return trie }
        let trie = TokenTrie(tokenizer: tokenizer, vocabSize: vocabSize)
        cache[ObjectIdentifier(tokenizer)] = (tokenizer, vocabSize, trie)
        return trie
    }
}

/// A grammar applied to a vocabulary: for a grammar state, which tokens may come next and how
/// few bytes can finish the match after each. Masks are cached per state (a JSON string or
/// number reaches the same state again and again), so a mask is usually a lookup.
public final class TokenConstraint: @unchecked Sendable {  // the cache is guarded by `lock`
    /// The grammar.
    public let grammar: Grammar
    let trie: TokenTrie
    let vocabSize: Int
    private var cache: [GrammarState: [UInt16]] = [:]
    private var lock = pthread_mutex_t()

    /// Most states whose masks are kept (each takes 2 bytes per vocabulary entry).
    static let cacheLimit = 256
    /// In a mask: the token cannot come next.
    static let forbidden = UInt16.max

    /// `grammar` over `tokenizer`'s vocabulary of `vocabSize` ids.
    public init(grammar: Grammar, tokenizer: Tokenizer, vocabSize: Int) {
        self.grammar = grammar
        self.vocabSize = vocabSize
        trie = TokenTrie.of(tokenizer, vocabSize: vocabSize)
        pthread_mutex_init(&lock, nil)
    }

    deinit { pthread_mutex_destroy(&lock) }

    // nonisolated(unsafe): read and written only under `compiledLock`.
    nonisolated(unsafe) private static var compiled: [String: TokenConstraint] = [:]
    nonisolated(unsafe) private static var compiledOrder: [String] = []
    private static let compiledLock = ProcessLock()

    /// The compiled form of `constraint` for `tokenizer`, shared by requests with the same
    /// constraint (the 32 most recent are kept, with their masks).
    public static func compiled(_ constraint: Constraint, tokenizer: Tokenizer, vocabSize: Int) throws(ConstraintError) -> TokenConstraint {
        let key = "\(ObjectIdentifier(tokenizer).hashValue) \(vocabSize) \(constraint)"
        compiledLock.lock()
        if let c = compiled[key], c.trie === TokenTrie.of(tokenizer, vocabSize: vocabSize) {
            compiledLock.unlock()
            return c
        }
        compiledLock.unlock()
        let c = TokenConstraint(grammar: try constraint.compile(), tokenizer: tokenizer, vocabSize: vocabSize)
        compiledLock.lock()
        compiled[key] = c
        compiledOrder.append(key)
        if compiledOrder.count > 32 { compiled[compiledOrder.removeFirst()] = nil }
        compiledLock.unlock()
        return c
    }

    // The grammar's states met so far, numbered, with their byte transitions filled in as the
    // walks need them: a walk is then table lookups (inside a JSON string, every plain
    // character leads back to the same state). Guarded by `lock`.
    private var stateIDs: [GrammarState: Int32] = [:]
    private var states: [GrammarState] = []
    private var transitions: [Int32] = []  // 256 per state: -2 not computed, -1 dead
    private var restBytes: [UInt16] = []

    private func id(of s: GrammarState) -> Int32 {
        if let i = stateIDs[s] { return i }
        let i = Int32(states.count)
        stateIDs[s] = i
        states.append(s)
        transitions += [Int32](repeating: -2, count: 256)
        restBytes.append(UInt16(min(grammar.minBytesToComplete(s), 65534)))
        return i
    }

    @inline(__always)
    private func transition(_ from: Int32, _ byte: UInt8) -> Int32 {
        let k = Int(from) << 8 | Int(byte)
        let t = transitions[k]
        if t != -2 { return t }
        let next = grammar.advance(states[Int(from)], byte)
        let r = next.isDead ? -1 : id(of: next)
        transitions[k] = r
        return r
    }

    /// For each token id: the fewest bytes that finish the match after it (saturated at
    /// 65534), or ``forbidden`` when it cannot come next in `state`.
    public func mask(_ state: GrammarState) -> [UInt16] {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        if let m = cache[state] { return m }
        if states.count > 200_000 {
            stateIDs.removeAll(); states.removeAll(); transitions.removeAll(); restBytes.removeAll()
        }
        var m = [UInt16](repeating: TokenConstraint.forbidden, count: vocabSize)
        let start = id(of: state)
        m.withUnsafeMutableBufferPointer { out in walk(0, start, out) }
        if cache.count >= TokenConstraint.cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[state] = m
        return m
    }

    private func walk(_ node: Int, _ state: Int32, _ out: UnsafeMutableBufferPointer<UInt16>) {
        var c = trie.firstChild[node]
        while c >= 0 {
            let child = Int(c)
            let next = transition(state, trie.byte[child])
            if next >= 0 {
                let n = Int(trie.tokenCount[child])
                if n > 0 {
                    let rest = restBytes[Int(next)]
                    let s = Int(trie.tokenStart[child])
                    for k in s..<(s + n) { out[Int(trie.tokens[k])] = rest }
                }
                walk(child, next, out)
            }
            c = trie.nextSibling[child]
        }
    }

    /// The tokens allowed in `state` (for tests and tools).
    public func allowedTokens(_ state: GrammarState) -> [TokenID] {
        mask(state).enumerated().compactMap { $0.element == TokenConstraint.forbidden ? nil : TokenID($0.offset) }
    }

    /// The state after `token` (dead if it cannot follow).
    public func advance(_ state: GrammarState, _ token: TokenID) -> GrammarState {
        guard token >= 0, Int(token) < vocabSize, let b = trie.tokenBytes[Int(token)] else { return GrammarState(stacks: []) }
        return grammar.advance(state, b)
    }
}

/// A constraint following one generation: masks logits before sampling and advances with each
/// chosen token.
struct ConstraintTracker {
    let constraint: TokenConstraint
    var state: GrammarState

    init(_ constraint: TokenConstraint) {
        self.constraint = constraint
        state = constraint.grammar.initialState
    }

    /// Sets the logits of tokens that cannot come next to -infinity: tokens that break the
    /// grammar, tokens after which the match cannot be finished within `remaining - 1` more
    /// tokens (every byte is a token, so the fewest bytes bound the fewest tokens), and the
    /// end-of-generation ids unless the text so far is a complete match.
    func apply(_ logits: inout [Float], remaining: Int, endIDs: Set<TokenID>) {
        let m = constraint.mask(state)
        let limit = UInt16(clamping: max(0, remaining - 1))
        let complete = state.isComplete
        let ends = endIDs.filter { Int($0) >= 0 && Int($0) < logits.count }.map { ($0, logits[Int($0)]) }
        logits.withUnsafeMutableBufferPointer { l in
            m.withUnsafeBufferPointer { mm in
                for i in 0..<min(l.count, mm.count) where mm[i] > limit { l[i] = -.infinity }
            }
        }
        for (id, value) in ends { logits[Int(id)] = complete ? value : -.infinity }
    }

    /// Advances past `token`.
    mutating func accept(_ token: TokenID) {
        state = constraint.advance(state, token)
    }
}
