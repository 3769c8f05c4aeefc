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
    /// One node, in 8 bytes. Nodes are numbered in depth-first order (children by byte), so a
    /// node's subtree is the `size` nodes from it, and a walk is one pass over the buffer that
    /// skips the subtrees the grammar refuses.
    struct Node {
        /// The nodes in this subtree, this one included (low 24 bits), and the byte leading
        /// here from the parent (high 8 bits).
        var sizeAndByte: UInt32
        /// The token ending here (low 24 bits; ``TokenTrie/noToken`` for none) and the number of
        /// bytes from the root to here (high 8 bits; the root is 0).
        var tokenAndDepth: UInt32

        @inline(__always) var size: Int { Int(sizeAndByte & 0xFF_FFFF) }
        @inline(__always) var byte: UInt8 { UInt8(truncatingIfNeeded: sizeAndByte >> 24) }
        @inline(__always) var token: Int { Int(tokenAndDepth & 0xFF_FFFF) }
        @inline(__always) var depth: Int { Int(tokenAndDepth >> 24) }
    }
    /// In ``Node/token``: no token ends at the node (the walk then writes to a spare entry past
    /// the vocabulary, so that it needs no branch).
    static let noToken = 0xFF_FFFF
    /// The nodes, the root first.
    let nodes: UnsafeMutableBufferPointer<Node>
    /// Tokens the nodes cannot hold (longer than 255 bytes, or a second token with the same
    /// bytes): the walk checks them one by one.
    let oddTokens: [Int32]
    /// The longest token in the trie, in bytes.
    let depth: Int
    /// Each token's bytes as the grammar sees them (nil for unassigned ids).
    let tokenBytes: [[UInt8]?]

    init(tokenizer: Tokenizer, vocabSize: Int) {
        precondition(vocabSize < TokenTrie.noToken, "vocabulary too large for the token trie")
        var bytesOf = [[UInt8]?](repeating: nil, count: vocabSize)
        var entries: [(id: Int32, bytes: [UInt8])] = []
        for id in 0..<min(vocabSize, tokenizer.vocabularySize) {
            guard let b = tokenizer.vocabulary.bytes(of: id), b.count > 0, !b.contains(0xFF) else { continue }
            entries.append((Int32(id), Array(b)))
        }
        for t in tokenizer.specialTokens where t.id >= 0 && Int(t.id) < vocabSize && tokenizer.vocabulary.bytes(of: Int(t.id)) == nil {
            entries.append((t.id, t.isSpecial ? GrammarBuilder.specialTokenBytes(t.text) : Array(t.text.utf8)))
        }
        for e in entries { bytesOf[Int(e.id)] = e.bytes }
        tokenBytes = bytesOf
        var odd: [Int32] = []
        entries.removeAll { e in
            if e.bytes.count > 255 { odd.append(e.id); return true }
            return false
        }
        // Sorted byte strings list the trie's nodes in depth-first order: each token adds the
        // nodes of its bytes beyond the prefix it shares with the previous one.
        entries.sort { $0.bytes.lexicographicallyPrecedes($1.bytes) }
        var size: [Int] = [1], byte: [UInt8] = [0], depthOf: [Int] = [0], token: [Int] = [TokenTrie.noToken]
        var path: [Int] = [0]  // the nodes of the previous token's bytes, the root first
        var previous: [UInt8] = []
        for e in entries {
            var shared = 0
            while shared < min(previous.count, e.bytes.count) && previous[shared] == e.bytes[shared] { shared += 1 }
            path.removeLast(path.count - 1 - shared)
            for d in shared..<e.bytes.count {
                size.append(1); byte.append(e.bytes[d]); depthOf.append(d + 1); token.append(TokenTrie.noToken)
                path.append(size.count - 1)
            }
            let end = path[path.count - 1]
            if token[end] == TokenTrie.noToken { token[end] = Int(e.id) } else { odd.append(e.id) }
            previous = e.bytes
        }
        // Subtree sizes: a node's subtree ends where the next node at its depth or above begins.
        var open: [Int] = []
        for i in 0..<size.count {
            while let top = open.last, depthOf[top] >= depthOf[i] {
                size[top] = i - top
                open.removeLast()
            }
            open.append(i)
        }
        for top in open { size[top] = size.count - top }
        precondition(size.count < 1 << 24, "vocabulary too large for the token trie")
        depth = depthOf.max() ?? 0
        nodes = .allocate(capacity: size.count)
        for i in 0..<size.count {
            nodes[i] = Node(sizeAndByte: UInt32(size[i]) | UInt32(byte[i]) << 24, tokenAndDepth: UInt32(token[i]) | UInt32(depthOf[i]) << 24)
        }
        oddTokens = odd
    }

    deinit { nodes.deallocate() }

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
/// number reaches the same state again and again), so a mask is usually a lookup. The masks
/// cached by all constraints of the process together stay under ``cacheBudget`` bytes.
public final class TokenConstraint: @unchecked Sendable {  // the state tables are guarded by `lock`
    /// The grammar.
    public let grammar: Grammar
    let trie: TokenTrie
    let vocabSize: Int
    private var lock = pthread_mutex_t()

    /// Most bytes of cached masks in the process, all constraints together (a server may hold
    /// many compiled constraints at once): 64 MiB, about 320 masks of Phi-4's vocabulary.
    public static let cacheBudget = 64 << 20
    /// The bytes of masks cached in the process now.
    static var cachedMaskBytes: Int { MaskCache.shared.bytes }
    /// This constraint's key in the process-wide mask cache.
    private let serial = MaskCache.shared.newOwner()
    /// In a mask: the token cannot come next.
    static let forbidden = UInt16.max

    /// `grammar` over `tokenizer`'s vocabulary of `vocabSize` ids.
    public init(grammar: Grammar, tokenizer: Tokenizer, vocabSize: Int) {
        self.grammar = grammar
        self.vocabSize = vocabSize
        trie = TokenTrie.of(tokenizer, vocabSize: vocabSize)
        pthread_mutex_init(&lock, nil)
    }

    deinit {
        MaskCache.shared.drop(owner: serial)
        pthread_mutex_destroy(&lock)
        transitions.deallocate()
        restBytes.deallocate()
    }

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
    // character leads back to the same state). Guarded by `lock`. `transitions` holds 256
    // entries per state (-2: not computed yet, -1: dead), `restBytes` one per state; both are
    // flat buffers that grow by doubling, so that the walk reads them without Swift's checks.
    private var stateIDs: [GrammarState: Int32] = [:]
    private var states: [GrammarState] = []
    private var transitions = UnsafeMutablePointer<Int32>.allocate(capacity: 0)
    private var restBytes = UnsafeMutablePointer<UInt16>.allocate(capacity: 0)
    private var stateCapacity = 0

    private func id(of s: GrammarState) -> Int32 {
        if let i = stateIDs[s] { return i }
        let i = states.count
        if i == stateCapacity {
            let capacity = max(64, stateCapacity * 2)
            let t = UnsafeMutablePointer<Int32>.allocate(capacity: capacity * 256)
            t.update(from: transitions, count: stateCapacity * 256)
            (t + stateCapacity * 256).initialize(repeating: -2, count: (capacity - stateCapacity) * 256)
            let r = UnsafeMutablePointer<UInt16>.allocate(capacity: capacity)
            r.update(from: restBytes, count: stateCapacity)
            transitions.deallocate()
            restBytes.deallocate()
            transitions = t
            restBytes = r
            stateCapacity = capacity
        }
        stateIDs[s] = Int32(i)
        states.append(s)
        restBytes[i] = UInt16(min(grammar.minBytesToComplete(s), 65534))
        return Int32(i)
    }

    /// Fills in all 256 transitions of state `from`. Bytes that every stack of the state treats
    /// alike (each stack's next byte set holds all of them or none) lead to the same state, so
    /// the grammar is advanced once per such class of bytes.
    private func computeTransitions(_ from: Int32) {
        let state = states[Int(from)]
        let tops = grammar.topSets(state)
        let words = (tops.count + 63) / 64
        // Per byte: which stacks accept it (`words` bits each).
        var signature = [UInt64](repeating: 0, count: 256 * words)
        for (k, set) in tops.enumerated() {
            guard let set else { continue }
            let bit = UInt64(1) << UInt64(k & 63), word = k >> 6
            for b in 0..<256 where set.contains(UInt8(b)) { signature[b * words + word] |= bit }
        }
        var classes: [(start: Int, next: Int32)] = []  // the first byte of each class, its state
        for b in 0..<256 {
            let sig = signature[(b * words)..<(b * words + words)]
            var r: Int32 = -1
            if sig.contains(where: { $0 != 0 }) {
                if let c = classes.first(where: { signature[($0.start * words)..<($0.start * words + words)] == sig }) {
                    r = c.next
                } else {
                    let next = grammar.advance(state, UInt8(b))
                    r = next.isDead ? -1 : id(of: next)
                    classes.append((b, r))
                }
            }
            // `id(of:)` may have moved the table.
            transitions[Int(from) << 8 | b] = r
        }
    }

    private func forgetStates() {
        stateIDs.removeAll()
        states.removeAll()
        transitions.deallocate()
        restBytes.deallocate()
        transitions = .allocate(capacity: 0)
        restBytes = .allocate(capacity: 0)
        stateCapacity = 0
    }

    /// For each token id: the fewest bytes that finish the match after it (saturated at
    /// 65534), or ``forbidden`` when it cannot come next in `state`.
    public func mask(_ state: GrammarState) -> [UInt16] {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        if let m = MaskCache.shared.get(serial, state) { return m }
        if states.count > 16_384 { forgetStates() }  // 16 MB of transitions at most
        var m = [UInt16](repeating: TokenConstraint.forbidden, count: vocabSize + 1)
        let start = id(of: state)
        m.withUnsafeMutableBufferPointer { out in walk(start, out.baseAddress!) }
        m.removeLast()
        MaskCache.shared.put(serial, state, m)
        return m
    }

    /// Depth-first over the trie from the root in grammar state `start`: a node is entered only
    /// while the grammar accepts the bytes leading to it, and each token ending at an entered
    /// node gets the fewest bytes that finish the match after it. `out` has `vocabSize + 1`
    /// entries: the last is written for nodes where no token ends.
    private func walk(_ start: Int32, _ out: UnsafeMutablePointer<UInt16>) {
        let nodes = UnsafePointer(trie.nodes.baseAddress!)
        let count = trie.nodes.count
        // The grammar state after the bytes of the current path, per depth.
        let stateAt = UnsafeMutablePointer<Int32>.allocate(capacity: trie.depth + 1)
        defer { stateAt.deallocate() }
        stateAt[0] = start
        var table = transitions, rest = restBytes
        var i = 1
        while i < count {
            let node = nodes[i]
            let from = stateAt[node.depth - 1]
            var next = table[Int(from) << 8 | Int(node.byte)]
            if next == -2 {
                computeTransitions(from)
                table = transitions
                rest = restBytes
                next = table[Int(from) << 8 | Int(node.byte)]
            }
            if next < 0 {
                i += node.size
                continue
            }
            stateAt[node.depth] = next
            out[min(node.token, vocabSize)] = rest[Int(next)]  // vocabSize: the spare entry
            i += 1
        }
        for t in trie.oddTokens {
            var s = start
            for b in trie.tokenBytes[Int(t)] ?? [] {
                if transitions[Int(s) << 8 | Int(b)] == -2 { computeTransitions(s) }
                s = transitions[Int(s) << 8 | Int(b)]
                if s < 0 { break }
            }
            if s >= 0 { out[Int(t)] = restBytes[Int(s)] }
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

/// The masks of all constraints of the process, within ``TokenConstraint/cacheBudget`` bytes:
/// beyond it the least recently used masks go first, whichever constraint they belong to (a
/// finished request's masks make room for a running one's).
final class MaskCache: @unchecked Sendable {  // every member is used under `lock`
    static let shared = MaskCache(budget: TokenConstraint.cacheBudget)

    private struct Key: Hashable {
        let owner: UInt64
        let state: GrammarState
    }
    private var entries: [Key: (mask: [UInt16], used: UInt64)] = [:]
    private var clock: UInt64 = 0
    private var owners: UInt64 = 0
    private var held = 0
    private let budget: Int
    private let lock = ProcessLock()

    init(budget: Int) { self.budget = budget }

    /// The bytes held now.
    var bytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return held
    }

    /// A key for a new constraint.
    func newOwner() -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        owners += 1
        return owners
    }

    /// The mask cached for `owner`'s `state`, if any.
    func get(_ owner: UInt64, _ state: GrammarState) -> [UInt16]? {
        lock.lock()
        defer { lock.unlock() }
        let key = Key(owner: owner, state: state)
        guard let e = entries[key] else { return nil }
        clock += 1
        entries[key] = (e.mask, clock)
        return e.mask
    }

    /// Caches `mask`, dropping the least recently used masks as the budget requires.
    func put(_ owner: UInt64, _ state: GrammarState, _ mask: [UInt16]) {
        let size = 2 * mask.count
        lock.lock()
        defer { lock.unlock() }
        guard size <= budget else { return }
        while held + size > budget, let oldest = entries.min(by: { $0.value.used < $1.value.used }) {
            held -= 2 * oldest.value.mask.count
            entries[oldest.key] = nil
        }
        clock += 1
        if let old = entries.updateValue((mask, clock), forKey: Key(owner: owner, state: state)) { held -= 2 * old.mask.count }
        held += size
    }

    /// Forgets a constraint's masks (it is gone).
    func drop(owner: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        for (key, e) in entries where key.owner == owner {
            held -= 2 * e.mask.count
            entries[key] = nil
        }
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

    /// Whether ``apply(_:remaining:endIDs:)`` would keep `token` (a prompt-lookup draft token
    /// is proposed only if so).
    func allows(_ token: TokenID, remaining: Int, endIDs: Set<TokenID>) -> Bool {
        if endIDs.contains(token) { return state.isComplete }
        let m = constraint.mask(state)
        guard token >= 0 && Int(token) < m.count else { return false }
        return m[Int(token)] <= UInt16(clamping: max(0, remaining - 1))
    }

    /// Advances past `token`.
    mutating func accept(_ token: TokenID) {
        state = constraint.advance(state, token)
    }
}
