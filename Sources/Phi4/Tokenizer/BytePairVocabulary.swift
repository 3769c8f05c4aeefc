/// The byte strings of a byte-level BPE vocabulary and their ranks.
///
/// In tiktoken's formulation (which cl100k and Phi-4 follow) a token's id *is* its merge rank:
/// BPE repeatedly merges the adjacent pair whose concatenation has the lowest rank. This type
/// answers "what is the rank of these bytes?" with an open-addressing hash table over one byte
/// arena, and "what are the bytes of this id?" with an offset table. Storage is allocated once
/// and never mutated after `init`, so one vocabulary is shared by any number of threads.
// @unchecked Sendable: storage written only in init (see above).
final class BytePairVocabulary: @unchecked Sendable {
    private struct Entry {
        var hash: UInt32
        var length: UInt32
        var offset: UInt32
        var rank: Int32  // -1: empty slot
    }

    /// Number of byte strings (ranks) in the vocabulary.
    let count: Int
    /// One past the largest rank.
    let rankLimit: Int
    /// The rank of each single byte (every byte must have one).
    let byteRank: UnsafeMutablePointer<Int32>
    private let arena: UnsafeMutablePointer<UInt8>
    private let arenaSize: Int
    private let idOffset: UnsafeMutablePointer<UInt32>
    private let idLength: UnsafeMutablePointer<Int32>  // -1: no such rank
    private let table: UnsafeMutablePointer<Entry>
    private let mask: Int

    /// Builds the vocabulary from (bytes, rank) pairs.
    ///
    /// Throws when a rank or a byte string occurs twice, a rank is negative or huge, a byte
    /// string is empty, or one of the 256 single bytes is missing (BPE could not encode it).
    init(_ tokens: [([UInt8], Int)]) throws(TokenizerError) {
        var maxRank = -1
        var total = 0
        for (bytes, rank) in tokens {
            guard rank >= 0 && rank < 1 << 24 else { throw .invalidFormat("token rank \(rank) is out of range") }
            guard !bytes.isEmpty, bytes.count < 1 << 16 else { throw .invalidFormat("token \(rank) has an invalid length \(bytes.count)") }
            maxRank = max(maxRank, rank)
            total += bytes.count
        }
        guard total < Int(UInt32.max) else { throw .invalidFormat("vocabulary is too large") }
        count = tokens.count
        rankLimit = maxRank + 1
        arenaSize = total
        arena = .allocate(capacity: max(total, 1))
        idOffset = .allocate(capacity: max(rankLimit, 1))
        idLength = .allocate(capacity: max(rankLimit, 1))
        idLength.initialize(repeating: -1, count: max(rankLimit, 1))
        idOffset.initialize(repeating: 0, count: max(rankLimit, 1))
        byteRank = .allocate(capacity: 256)
        byteRank.initialize(repeating: -1, count: 256)
        var capacity = 16
        while capacity < tokens.count * 2 { capacity <<= 1 }
        mask = capacity - 1
        table = .allocate(capacity: capacity)
        table.initialize(repeating: Entry(hash: 0, length: 0, offset: 0, rank: -1), count: capacity)

        var offset = 0
        var failure: TokenizerError?
        for (bytes, rank) in tokens {
            if idLength[rank] >= 0 { failure = .invalidFormat("token rank \(rank) appears twice"); break }
            bytes.withUnsafeBufferPointer { arena.advanced(by: offset).update(from: $0.baseAddress!, count: bytes.count) }
            idOffset[rank] = UInt32(offset)
            idLength[rank] = Int32(bytes.count)
            let p = UnsafePointer(arena.advanced(by: offset))
            if rankOf(p, bytes.count) >= 0 { failure = .invalidFormat("token \(rank) repeats the bytes of another token"); break }
            let h = BytePairVocabulary.hash(p, bytes.count)
            var slot = Int(truncatingIfNeeded: h) & mask
            while table[slot].rank >= 0 { slot = (slot + 1) & mask }
            table[slot] = Entry(hash: UInt32(truncatingIfNeeded: h), length: UInt32(bytes.count), offset: UInt32(offset), rank: Int32(rank))
            if bytes.count == 1 { byteRank[Int(bytes[0])] = Int32(rank) }
            offset += bytes.count
        }
        if failure == nil {
            for b in 0..<256 where byteRank[b] < 0 {
                failure = .invalidFormat("the vocabulary has no token for the single byte 0x\(String(b, radix: 16))")
                break
            }
        }
        if let failure { throw failure }
    }

    deinit {
        arena.deallocate()
        idOffset.deallocate()
        idLength.deallocate()
        byteRank.deallocate()
        table.deallocate()
    }

    /// A fast 64-bit hash of `n` bytes (8 bytes at a time, multiply-xorshift mixing).
    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(truncatingIfNeeded: n)
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 8 <= n {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 32
            i += 8
        }
        if i < n {
            var v: UInt64 = 0
            var shift: UInt64 = 0
            while i < n {
                v |= UInt64(p[i]) << shift
                shift += 8
                i += 1
            }
            h = (h ^ v) &* 0xC4CE_B9FE_1A85_EC53
        }
        h ^= h >> 33
        h = h &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 29
        return h
    }

    /// The rank of the `n` bytes at `p`, or -1 when they are not a token.
    @inline(__always)
    func rankOf(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int32 {
        if n == 1 { return byteRank[Int(p[0])] }
        let h = BytePairVocabulary.hash(p, n)
        let tag = UInt32(truncatingIfNeeded: h)
        var slot = Int(truncatingIfNeeded: h) & mask
        while true {
            let e = table[slot]
            if e.rank < 0 { return -1 }
            if e.hash == tag && Int(e.length) == n && memcmpBytes(arena + Int(e.offset), p, n) { return e.rank }
            slot = (slot + 1) & mask
        }
    }

    /// The bytes of rank `id`, or nil when no token has that rank.
    @inline(__always)
    func bytes(of id: Int) -> UnsafeBufferPointer<UInt8>? {
        guard id >= 0 && id < rankLimit else { return nil }
        let len = idLength[id]
        if len < 0 { return nil }
        return UnsafeBufferPointer(start: arena + Int(idOffset[id]), count: Int(len))
    }
}

/// Byte-wise equality of two memory ranges of `n` bytes.
@inline(__always)
func memcmpBytes(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    var i = 0
    let ra = UnsafeRawPointer(a)
    let rb = UnsafeRawPointer(b)
    while i + 8 <= n {
        if ra.loadUnaligned(fromByteOffset: i, as: UInt64.self) != rb.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
        i += 8
    }
    while i < n {
        if a[i] != b[i] { return false }
        i += 1
    }
    return true
}
