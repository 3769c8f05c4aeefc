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

/// The class of a Unicode scalar for the o200k pre-tokenizer (Phi-4-mini), whose pattern tells
/// letters apart by case: `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]` may start a word and
/// `[\p{Ll}\p{Lm}\p{Lo}\p{M}]` continue it.
enum O200kClass: UInt8 {
    /// Not a letter, mark, number or whitespace.
    case other = 0
    /// `\p{Lu}`, `\p{Lt}`.
    case upper = 1
    /// `\p{Ll}`.
    case lower = 2
    /// `\p{Lm}`, `\p{Lo}`: in both word classes.
    case otherLetter = 3
    /// `\p{M}`: in both word classes, but not a letter (so also in `[^\p{L}\p{N}]`).
    case mark = 4
    /// `\p{N}`.
    case number = 5
    /// `\s`.
    case whitespace = 6

    /// In `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`.
    @inline(__always) var startsWord: Bool { self == .upper || self == .otherLetter || self == .mark }
    /// In `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`.
    @inline(__always) var continuesWord: Bool { self == .lower || self == .otherLetter || self == .mark }
    /// In `[^\r\n\p{L}\p{N}]` (given the scalar is not CR or LF).
    @inline(__always) var isNotLetterOrNumber: Bool { self == .other || self == .mark || self == .whitespace }
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

    /// The table of the cl100k pre-tokenizer (``CharacterClass``).
    static let shared = CharacterClassTable([(UnicodeTables.letter, CharacterClass.letter.rawValue),
                                             (UnicodeTables.number, CharacterClass.number.rawValue),
                                             (UnicodeTables.whitespace, CharacterClass.whitespace.rawValue)])

    /// The table of the o200k pre-tokenizer (``O200kClass``).
    static let o200k = CharacterClassTable([(UnicodeTables.upper, O200kClass.upper.rawValue),
                                            (UnicodeTables.lower, O200kClass.lower.rawValue),
                                            (UnicodeTables.otherLetter, O200kClass.otherLetter.rawValue),
                                            (UnicodeTables.mark, O200kClass.mark.rawValue),
                                            (UnicodeTables.number, O200kClass.number.rawValue),
                                            (UnicodeTables.whitespace, O200kClass.whitespace.rawValue)])

    /// A table giving each code point in `classes` (later entries win) its value, 0 elsewhere.
    private init(_ classes: [([(UInt32, UInt32)], UInt8)]) {
        var full = [UInt8](repeating: 0, count: 0x110000)
        for (ranges, cls) in classes {
            for (lo, hi) in ranges {
                for c in Int(lo)...Int(hi) { full[c] = cls }
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

    /// The class of code point `c` (which must be below 0x110000), in the cl100k table.
    @inline(__always)
    func classify(_ c: UInt32) -> CharacterClass {
        CharacterClass(rawValue: raw(c)).unsafelyUnwrapped
    }

    /// The class of code point `c` (which must be below 0x110000), in the o200k table.
    @inline(__always)
    func classifyO200k(_ c: UInt32) -> O200kClass {
        O200kClass(rawValue: raw(c)).unsafelyUnwrapped
    }

    @inline(__always)
    private func raw(_ c: UInt32) -> UInt8 {
        let b = blockIndex[Int(c >> 8)]
        return blocks[Int(b) << 8 | Int(c & 0xFF)]
    }
}
