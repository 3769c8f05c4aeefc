#if canImport(Glibc)
import Glibc
#endif

/// An importance matrix: for each weight matrix, the sum over calibration tokens of the squared
/// activations entering each of its input columns, and the number of tokens summed — what
/// llama.cpp's `llama-imatrix` writes and its quantizer weighs rounding errors by. Read from and
/// written to both of llama.cpp's formats: GGUF (`general.type` = `imatrix`, tensors
/// `NAME.in_sum2` and `NAME.counts`) and the older `.dat`.
public struct ImportanceMatrix: Sendable {
    /// One weight matrix's statistics.
    public struct Entry: Sendable, Equatable {
        /// Σ x² per input column (`cols` values; a matrix stack would hold several rows of them).
        public var sums: [Float]
        /// Tokens summed (one count per matrix of the stack; one for a plain matrix).
        public var counts: [Int]

        /// An entry of the sums and counts.
        public init(sums: [Float], counts: [Int]) {
            self.sums = sums
            self.counts = counts
        }
    }

    /// Entries by weight name (`blk.0.attn_qkv.weight` …).
    public var entries: [String: Entry] = [:]
    /// The calibration files the sums came from.
    public var datasets: [String] = []
    /// Chunks of `chunkSize` tokens summed.
    public var chunkCount = 0
    /// Tokens per chunk (0 when the file does not say, as in the `.dat` format).
    public var chunkSize = 0
    /// Whether it was read from the `.dat` format, whose sums are already means.
    public private(set) var isLegacy = false

    /// An empty matrix.
    public init() {}

    /// The weights llama.cpp's quantizer uses for `name`: each column's mean squared activation
    /// (sum / count, as f32 division; 1 where nothing was counted), or nil when the file has no
    /// entry for it.
    public func weights(for name: String) -> [Float]? {
        guard let e = entries[name], !e.counts.isEmpty, e.sums.count % e.counts.count == 0 else { return nil }
        if isLegacy {
            let n = Float(e.counts[0])
            return n > 0 ? e.sums.map { $0 / n } : e.sums
        }
        let per = e.sums.count / e.counts.count
        var out = [Float](repeating: 1, count: e.sums.count)
        for (j, c) in e.counts.enumerated() where c > 0 {
            let count = Float(c)
            for i in 0..<per { out[j * per + i] = e.sums[j * per + i] / count }
        }
        return out
    }

    /// Reads an importance matrix in either format (GGUF is recognised by its magic).
    public static func load(path: String) throws(ModelError) -> ImportanceMatrix {
        var head = [UInt8](repeating: 0, count: 4)
        guard let f = fopen(path, "rb") else { throw .io("\(path): \(FileIO.errnoText(errno))") }
        let got = fread(&head, 1, 4, f)
        fclose(f)
        if got == 4 && head == Array("GGUF".utf8) { return try loadGGUF(path: path) }
        return try loadLegacy(path: path)
    }

    private static func loadGGUF(path: String) throws(ModelError) -> ImportanceMatrix {
        let g = try GGUFFile(path: path)
        var m = ImportanceMatrix()
        m.datasets = g.metadata["imatrix.datasets"]?.arrayValue?.compactMap(\.stringValue) ?? []
        m.chunkCount = g.metadata["imatrix.chunk_count"]?.intValue ?? 0
        m.chunkSize = g.metadata["imatrix.chunk_size"]?.intValue ?? 0
        guard g.metadata["imatrix.datasets"] != nil, g.metadata["imatrix.chunk_count"] != nil, g.metadata["imatrix.chunk_size"] != nil else {
            throw .invalidWeights("\(path): an imatrix GGUF needs imatrix.datasets, imatrix.chunk_count and imatrix.chunk_size")
        }
        func floats(_ t: GGUFTensor) throws(ModelError) -> [Float] {
            guard t.type == .f32 else { throw .invalidWeights("\(path): \(t.name) must be F32, it is \(t.type.displayName)") }
            return Array(t.data.bindMemory(to: Float.self))
        }
        for name in g.tensorOrder where name.hasSuffix(".in_sum2") {
            let base = String(name.dropLast(".in_sum2".count))
            guard let counts = g.tensors[base + ".counts"] else { throw .invalidWeights("\(path): \(name) has no \(base).counts") }
            let sums = try floats(g.tensors[name]!)
            let c = try floats(counts)
            guard !c.isEmpty, sums.count % c.count == 0 else { throw .invalidWeights("\(path): \(base) has \(sums.count) sums for \(c.count) counts") }
            guard c.allSatisfy({ $0.isFinite && $0 >= 0 && $0 < 9e18 }) else { throw .invalidWeights("\(path): \(base) has an invalid count") }
            guard sums.allSatisfy(\.isFinite) else { throw .invalidWeights("\(path): \(base) has a non-finite value") }
            m.entries[base] = Entry(sums: sums, counts: c.map { Int($0.rounded(.toNearestOrAwayFromZero)) })
        }
        for name in g.tensorOrder where name.hasSuffix(".counts") && g.tensors[String(name.dropLast(7)) + ".in_sum2"] == nil {
            throw .invalidWeights("\(path): \(name) has no in_sum2")
        }
        guard !m.entries.isEmpty else { throw .invalidWeights("\(path): no importance data") }
        return m
    }

    // The `.dat` layout: int32 entry count; per entry int32 name length, name, int32 calls,
    // int32 value count, the values ((sum / count) · calls); then optionally int32 chunk count,
    // int32 length and the dataset's name.
    private static func loadLegacy(path: String) throws(ModelError) -> ImportanceMatrix {
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(path, limit: 1 << 31) } catch { throw .io(error.description) }
        var at = 0
        func int32() -> Int32? {
            guard at + 4 <= bytes.count else { return nil }
            defer { at += 4 }
            return bytes[at..<(at + 4)].withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
        }
        func bad(_ what: String) -> ModelError { .invalidWeights("\(path): not an importance matrix (\(what))") }
        guard let n = int32(), n >= 1 else { throw bad("no entries") }
        var m = ImportanceMatrix()
        m.isLegacy = true
        for i in 0..<Int(n) {
            guard let len = int32(), len >= 0, at + Int(len) <= bytes.count else { throw bad("entry \(i + 1)'s name") }
            let name = String(decoding: bytes[at..<(at + Int(len))], as: UTF8.self)
            at += Int(len)
            guard let calls = int32(), let count = int32(), count >= 1, at + 4 * Int(count) <= bytes.count else {
                throw bad("entry \(i + 1)'s values")
            }
            let values = bytes[at..<(at + 4 * Int(count))].withUnsafeBytes { raw in
                (0..<Int(count)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
            }
            at += 4 * Int(count)
            guard values.allSatisfy(\.isFinite) else { throw .invalidWeights("\(path): \(name) has a non-finite value") }
            m.entries[name] = Entry(sums: values, counts: [Int(calls)])
        }
        if let chunks = int32() {
            m.chunkCount = Int(chunks)
            if let len = int32(), len > 0, at + Int(len) <= bytes.count {
                m.datasets = [String(decoding: bytes[at..<(at + Int(len))], as: UTF8.self)]
            }
        }
        return m
    }

    /// Writes llama.cpp's GGUF format (entries in name order).
    public func writeGGUF(path: String) throws {
        var w = GGUFWriter()
        w.metadata = [("general.type", .string("imatrix")),
                      ("imatrix.datasets", .array(8, datasets.map { .string($0) })),
                      ("imatrix.chunk_count", .uint32(UInt32(clamping: chunkCount))),
                      ("imatrix.chunk_size", .uint32(UInt32(clamping: chunkSize)))]
        for name in entries.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            let e = entries[name]!
            let sums = e.sums, counts = e.counts.map(Float.init)
            w.tensors.append(GGUFWriter.Tensor(name: name + ".in_sum2", dims: [sums.count / counts.count, counts.count], type: .f32) { sink in
                try sums.withUnsafeBytes { try sink($0) }
            })
            w.tensors.append(GGUFWriter.Tensor(name: name + ".counts", dims: [1, counts.count], type: .f32) { sink in
                try counts.withUnsafeBytes { try sink($0) }
            })
        }
        try w.write(path: path)
    }

    /// Writes the older `.dat` format: per entry the means times the chunk count, as
    /// `llama-imatrix --output-format dat` does.
    public func writeLegacy(path: String) throws {
        var out: [UInt8] = []
        func le<T: FixedWidthInteger>(_ x: T) { withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) } }
        let names = entries.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
        le(Int32(names.count))
        let size = max(chunkSize, 1)
        for name in names {
            let e = entries[name]!
            le(Int32(name.utf8.count))
            out.append(contentsOf: Array(name.utf8))
            let calls = Int32(((e.counts.max() ?? 0) + size - 1) / size)
            le(calls)
            le(Int32(e.sums.count))
            let per = max(1, e.sums.count / max(e.counts.count, 1))
            for (i, v) in e.sums.enumerated() {
                var count = Float(e.counts.isEmpty ? 0 : e.counts[min(i / per, e.counts.count - 1)]), value = v
                if count == 0 { value = 1; count = 1 }
                le((value / count * Float(calls)).bitPattern)
            }
        }
        le(Int32(chunkCount))
        let dataset = Array((datasets.last ?? "").utf8)
        le(Int32(dataset.count))
        out.append(contentsOf: dataset)
        try FileIO.writeAll(path, out)
    }
}
