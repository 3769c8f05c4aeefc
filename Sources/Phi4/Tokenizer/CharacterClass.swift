/// The class of a Unicode scalar for the cl100k pre-tokenizer: the only distinctions its
/// pattern makes are `\p{L}`, `\p{N}`, `\s` and everything else.
enum CharacterClass: UInt8 {
    /// Not a letter, number or whitespace (punctuation, symbols, marks, controls, unassigned).
    case other = 0
    /// `\p{L}`.
    case letter = 1
    /// `\p{N}`.
    case number = 2
    /// `\s`.
    case whitespace = 3
}

/// A two-level lookup table from code point to ``CharacterClass``, built once from the
/// generated ``UnicodeTables`` (256-entry blocks, identical blocks shared).
/// The storage is allocated once for the life of the process and never written after `init`.
// @unchecked Sendable: storage written only in init (see above).
struct CharacterClassTable: @unchecked Sendable {
    /// Block index for each 256-code-point block of the Unicode range.
    private let blockIndex: UnsafeMutablePointer<UInt16>
    /// Concatenated 256-entry blocks of class raw values.
    private let blocks: UnsafeMutablePointer<UInt8>

    /// The table every tokenizer uses.
    static let shared = CharacterClassTable()

    private init() {
        var full = [UInt8](repeating: CharacterClass.other.rawValue, count: 0x110000)
        for (ranges, cls) in [(UnicodeTables.letter, CharacterClass.letter),
                              (UnicodeTables.number, .number), (UnicodeTables.whitespace, .whitespace)] {
            for (lo, hi) in ranges {
                for c in Int(lo)...Int(hi) { full[c] = cls.rawValue }
            }
        }
        var index = [UInt16](repeating: 0, count: 0x1100)
        var blocks: [UInt8] = []
        var seen: [[UInt8]: UInt16] = [:]
        for b in 0..<0x1100 {
            let block = Array(full[(b << 8)..<((b + 1) << 8)])
            if let k = seen[block] {
                index[b] = k
            } else {
                let k = UInt16(blocks.count >> 8)
                seen[block] = k
                blocks.append(contentsOf: block)
                index[b] = k
            }
        }
        self.blockIndex = .allocate(capacity: index.count)
        self.blockIndex.initialize(from: index, count: index.count)
        self.blocks = .allocate(capacity: blocks.count)
        self.blocks.initialize(from: blocks, count: blocks.count)
    }

    /// The class of code point `c` (which must be below 0x110000).
    @inline(__always)
    func classify(_ c: UInt32) -> CharacterClass {
        let b = blockIndex[Int(c >> 8)]
        return CharacterClass(rawValue: blocks[Int(b) << 8 | Int(c & 0xFF)]).unsafelyUnwrapped
    }
}
