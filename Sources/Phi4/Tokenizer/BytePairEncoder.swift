/// Byte-pair encoding of one pre-tokenized piece, exactly as tiktoken does it: start from single
/// bytes and repeatedly merge the adjacent pair whose concatenation has the lowest rank (the
/// leftmost one on ties) until no adjacent pair is a token.
///
/// Short pieces use tiktoken's own quadratic loop over a small array; long pieces (a run of
/// 100,000 spaces is *one* piece) use a heap of candidate merges over a linked list, which
/// performs the same merges in the same order in O(n log n). A cache remembers the tokens of
/// pieces that needed merging. One encoder is scratch space for one thread.
struct BytePairEncoder {
    /// Pieces longer than this use the heap-based merge.
    static let heapThreshold = 128
    private static let noRank = Int32.max

    private let vocab: BytePairVocabulary
    private var starts: [Int32] = []
    private var ranks: [Int32] = []
    private var cache = PieceCache()

    init(vocab: BytePairVocabulary) {
        self.vocab = vocab
    }

    /// Appends the tokens of the `n`-byte piece at `p` to `out`.
    @inline(__always)
    mutating func encode(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [TokenID]) {
        let whole = vocab.rankOf(p, n)
        if whole >= 0 {
            out.append(whole)
            return
        }
        if cache.lookup(p, n, into: &out) { return }
        let before = out.count
        if n <= BytePairEncoder.heapThreshold {
            mergeSmall(p, n, into: &out)
        } else {
            mergeLarge(p, n, into: &out)
        }
        cache.insert(p, n, tokens: out[before...])
    }

    /// tiktoken's merge loop: `starts` are part boundaries, `ranks[i]` the rank of merging part
    /// i with part i + 1.
    private mutating func mergeSmall(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [TokenID]) {
        let vocab = self.vocab
        if starts.count < n + 1 {
            starts = [Int32](repeating: 0, count: n + 1)
            ranks = [Int32](repeating: 0, count: n + 1)
        }
        starts.withUnsafeMutableBufferPointer { sb in
            ranks.withUnsafeMutableBufferPointer { rb in
                let s = sb.baseAddress!
                let r = rb.baseAddress!
                var count = n + 1
                for i in 0..<n { s[i] = Int32(i) }
                s[n] = Int32(n)
                for i in 0..<(n - 1) {
                    let k = vocab.rankOf(p + i, 2)
                    r[i] = k < 0 ? BytePairEncoder.noRank : k
                }
                r[n - 1] = BytePairEncoder.noRank
                r[n] = BytePairEncoder.noRank

                @inline(__always) func rankAt(_ i: Int) -> Int32 {
                    // The rank of parts i, i+1 and i+2 merged (parts i+1 and i+2 are about to merge).
                    guard i + 3 < count else { return BytePairEncoder.noRank }
                    let k = vocab.rankOf(p + Int(s[i]), Int(s[i + 3] - s[i]))
                    return k < 0 ? BytePairEncoder.noRank : k
                }

                while true {
                    var best = BytePairEncoder.noRank
                    var at = -1
                    for i in 0..<(count - 1) where r[i] < best {
                        best = r[i]
                        at = i
                    }
                    if at < 0 { break }
                    if at > 0 { r[at - 1] = rankAt(at - 1) }
                    r[at] = rankAt(at)
                    // Remove boundary at + 1.
                    var j = at + 1
                    while j < count - 1 {
                        s[j] = s[j + 1]
                        r[j] = r[j + 1]
                        j += 1
                    }
                    count -= 1
                }
                for i in 0..<(count - 1) {
                    out.append(vocab.rankOf(p + Int(s[i]), Int(s[i + 1] - s[i])))
                }
            }
        }
    }

    /// The same merges in the same order for long pieces: candidate merges live in a min-heap
    /// keyed by (rank, start offset); stale candidates are skipped when popped.
    private func mergeLarge(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [TokenID]) {
        // Parts are identified by their start offset; `next`/`prev` link the live parts.
        var next = [Int32](repeating: 0, count: n + 1)
        var prev = [Int32](repeating: 0, count: n + 1)
        var pairRank = [Int32](repeating: BytePairEncoder.noRank, count: n + 1)
        var heap = MinHeap(capacity: n)
        for i in 0..<n {
            next[i] = Int32(i + 1)
            prev[i] = Int32(i - 1)
        }
        next[n] = Int32(n)
        @inline(__always) func rankOfPair(_ a: Int, _ next: inout [Int32]) -> Int32 {
            let b = Int(next[a])
            guard b < n else { return BytePairEncoder.noRank }
            let end = Int(next[b])
            let k = vocab.rankOf(p + a, end - a)
            return k < 0 ? BytePairEncoder.noRank : k
        }
        for i in 0..<(n - 1) {
            let k = rankOfPair(i, &next)
            pairRank[i] = k
            if k != BytePairEncoder.noRank { heap.push(UInt64(UInt32(k)) << 32 | UInt64(i)) }
        }
        var alive = [Bool](repeating: true, count: n + 1)
        while let top = heap.pop() {
            let k = Int32(truncatingIfNeeded: top >> 32)
            let a = Int(top & 0xFFFF_FFFF)
            guard alive[a], pairRank[a] == k else { continue }
            // Merge part a with its successor b.
            let b = Int(next[a])
            alive[b] = false
            let c = Int(next[b])
            next[a] = Int32(c)
            if c < n { prev[c] = Int32(a) }
            let ka = rankOfPair(a, &next)
            pairRank[a] = ka
            if ka != BytePairEncoder.noRank { heap.push(UInt64(UInt32(ka)) << 32 | UInt64(a)) }
            let z = Int(prev[a])
            if z >= 0 {
                let kz = rankOfPair(z, &next)
                pairRank[z] = kz
                if kz != BytePairEncoder.noRank { heap.push(UInt64(UInt32(kz)) << 32 | UInt64(z)) }
            }
        }
        var a = 0
        while a < n {
            let b = Int(next[a])
            out.append(vocab.rankOf(p + a, b - a))
            a = b
        }
    }
}

/// A binary min-heap of 64-bit keys.
struct MinHeap {
    private var items: [UInt64] = []

    init(capacity: Int) { items.reserveCapacity(capacity) }

    mutating func push(_ x: UInt64) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) >> 1
            if items[parent] <= x { break }
            items[i] = items[parent]
            i = parent
        }
        items[i] = x
    }

    mutating func pop() -> UInt64? {
        guard let last = items.popLast() else { return nil }
        if items.isEmpty { return last }
        let top = items[0]
        let n = items.count
        var i = 0
        while true {
            var child = 2 * i + 1
            if child >= n { break }
            if child + 1 < n && items[child + 1] < items[child] { child += 1 }
            if items[child] >= last { break }
            items[i] = items[child]
            i = child
        }
        items[i] = last
        return top
    }
}

/// Remembers the tokens of pieces that needed merging (bounded: cleared when full).
struct PieceCache {
    private struct Entry {
        var hash: UInt64 = 0
        var byteOffset: Int32 = -1  // -1: empty
        var byteCount: Int32 = 0
        var tokenOffset: Int32 = 0
        var tokenCount: Int32 = 0
    }
    private static let slots = 1 << 14
    private static let maxPieceBytes = 64
    private static let maxArenaBytes = 1 << 20
    private var entries: [Entry] = []
    private var bytes: [UInt8] = []
    private var tokens: [TokenID] = []
    private var used = 0

    @inline(__always)
    mutating func lookup(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [TokenID]) -> Bool {
        guard n <= PieceCache.maxPieceBytes, !entries.isEmpty else { return false }
        let h = BytePairVocabulary.hash(p, n)
        var slot = Int(truncatingIfNeeded: h) & (PieceCache.slots - 1)
        while true {
            let e = entries[slot]
            if e.byteOffset < 0 { return false }
            if e.hash == h && Int(e.byteCount) == n {
                let equal = bytes.withUnsafeBufferPointer { memcmpBytes($0.baseAddress! + Int(e.byteOffset), p, n) }
                if equal {
                    out.append(contentsOf: tokens[Int(e.tokenOffset)..<Int(e.tokenOffset + e.tokenCount)])
                    return true
                }
            }
            slot = (slot + 1) & (PieceCache.slots - 1)
        }
    }

    mutating func insert(_ p: UnsafePointer<UInt8>, _ n: Int, tokens piece: ArraySlice<TokenID>) {
        guard n <= PieceCache.maxPieceBytes else { return }
        if entries.isEmpty || used * 2 >= PieceCache.slots || bytes.count > PieceCache.maxArenaBytes {
            entries = [Entry](repeating: Entry(), count: PieceCache.slots)
            bytes.removeAll(keepingCapacity: true)
            tokens.removeAll(keepingCapacity: true)
            used = 0
        }
        let h = BytePairVocabulary.hash(p, n)
        var slot = Int(truncatingIfNeeded: h) & (PieceCache.slots - 1)
        while entries[slot].byteOffset >= 0 { slot = (slot + 1) & (PieceCache.slots - 1) }
        entries[slot] = Entry(hash: h, byteOffset: Int32(bytes.count), byteCount: Int32(n),
                              tokenOffset: Int32(tokens.count), tokenCount: Int32(piece.count))
        bytes.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        tokens.append(contentsOf: piece)
        used += 1
    }
}
