import CPhi4Kernels
#if canImport(Glibc)
import Glibc
#endif

/// A GGUF metadata value.
public indirect enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    /// An array of values of one type (its GGUF type code and the elements).
    case array(UInt32, [GGUFValue])

    /// The value as an integer, if it is one.
    public var intValue: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// The value as a floating-point number, if it is a number.
    public var doubleValue: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return intValue.map(Double.init)
        }
    }

    /// The string, if it is one.
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    /// The boolean, if it is one.
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    /// The elements, if it is an array.
    public var arrayValue: [GGUFValue]? { if case .array(_, let a) = self { return a }; return nil }
}

/// Tensor element types of GGML that libphi4 reads (others are refused by name).
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13
    case q6_K = 14, iq2_XXS = 16, iq2_XS = 17, iq3_XXS = 18, iq1_S = 19, iq4_NL = 20, iq3_S = 21, iq2_S = 22, iq4_XS = 23
    case iq1_M = 29, bf16 = 30

    /// This type's entry in the kernels' format table (`p4k_format`, formats.c), where its block
    /// size, name, quantizer and dequantizer are written once. Every case has one (a test checks).
    var info: p4k_format_info { p4k_format(rawValue)!.pointee }

    /// (elements per block, bytes per block).
    public var block: (elements: Int, bytes: Int) { (Int(info.block_values), Int(info.block_bytes)) }

    /// The name llama.cpp uses (F32, Q4_K, …).
    public var displayName: String { String(cString: info.name) }

    /// Bits per weight of the block format.
    public var bitsPerWeight: Double { Double(block.bytes * 8) / Double(block.elements) }

    /// Names of GGML types, for messages about the ones libphi4 does not read.
    static func name(_ raw: UInt32) -> String {
        let names: [UInt32: String] = [9: "Q8_1", 15: "Q8_K", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4"]
        return names[raw] ?? "type \(raw)"
    }
}

/// One tensor of a GGUF file.
// @unchecked Sendable: `data` points into a read-only mapping kept alive by its GGUFFile.
public struct GGUFTensor: @unchecked Sendable {
    /// Its name, e.g. `blk.0.attn_qkv.weight`.
    public let name: String
    /// Dimensions, innermost first (GGML order: `[cols, rows]` for a matrix).
    public let dims: [Int]
    /// Element type.
    public let type: GGMLType
    /// The tensor's bytes inside the mapping.
    public let data: UnsafeRawBufferPointer
    /// The mapping that holds `data` (in a split model, its shard's).
    package let file: MappedFile
    /// Number of elements.
    public var count: Int { dims.reduce(1, *) }
}

/// A GGUF file (versions 2 and 3), memory-mapped and validated: counts, string lengths, value
/// types, alignment, tensor dimensions and extents. A malformed file is an error, never a trap.
///
/// A model split by llama.cpp's `gguf-split` (`NAME-00001-of-00003.gguf` …, each shard with
/// `split.no`, `split.count` and `split.tensors.count`) opens from any of its shards as one file:
/// the metadata of the first shard, the tensors of all, each shard validated as a file of its own.
// @unchecked Sendable: immutable after init; its tensors point into read-only mappings it owns.
public struct GGUFFile: @unchecked Sendable {
    /// The format version (2 or 3).
    public let version: UInt32
    /// Metadata key/value pairs (a split model's: its first shard's).
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataOrder: [String]
    /// Tensors by name.
    public let tensors: [String: GGUFTensor]
    /// Tensor names in file order (shard by shard).
    public let tensorOrder: [String]
    /// The mapping of the file, or of a split model's first shard.
    package let file: MappedFile
    /// Every mapping whose bytes the tensors use (one, or a split model's shards in order).
    package let files: [MappedFile]

    /// Opens and validates a GGUF file, with all of its shards when it is one of a split model.
    public init(path: String) throws(ModelError) {
        let first = try GGUFFile(single: path)
        guard let count = first.metadata["split.count"]?.intValue, count > 1 else {
            self = first
            return
        }
        // llama.cpp stores the count as a uint16 and names shards with five digits.
        guard count <= 65535 else { throw .invalidWeights("\(path): split.count \(count) is not a shard count") }
        let shardPaths = try GGUFFile.shardPaths(of: path, count: count)
        var shards: [GGUFFile] = []
        for (i, p) in shardPaths.enumerated() {
            guard access(p, F_OK) == 0 else {
                throw .io("\(p): shard \(i + 1) of \(count) of the split model \(path) is missing")
            }
            let shard = p == path ? first : try GGUFFile(single: p)
            guard shard.metadata["split.count"]?.intValue == count, shard.metadata["split.no"]?.intValue == i else {
                throw .invalidWeights("\(p): not shard \(i + 1) of \(count) (its split.no / split.count say otherwise)")
            }
            shards.append(shard)
        }
        var tensors: [String: GGUFTensor] = [:]
        var order: [String] = []
        for shard in shards {
            for name in shard.tensorOrder {
                guard tensors[name] == nil else { throw .invalidWeights("\(shard.file.path): tensor \(name) is in two shards") }
                tensors[name] = shard.tensors[name]
                order.append(name)
            }
        }
        if let expected = shards[0].metadata["split.tensors.count"]?.intValue, expected != order.count {
            throw .invalidWeights("\(shardPaths[0]): split.tensors.count is \(expected), the \(count) shards hold \(order.count) tensors")
        }
        version = shards[0].version
        metadata = shards[0].metadata
        metadataOrder = shards[0].metadataOrder
        self.tensors = tensors
        tensorOrder = order
        file = shards[0].file
        files = shards.map(\.file)
    }

    /// The paths of all `count` shards of the split model `path` belongs to: llama.cpp's names,
    /// `PREFIX-00001-of-0000N.gguf` ….
    static func shardPaths(of path: String, count: Int) throws(ModelError) -> [String] {
        func five(_ n: Int) -> String { String(repeating: "0", count: max(0, 5 - String(n).count)) + String(n) }
        let suffix = "-of-\(five(count)).gguf"
        let name = path.hasSuffix(suffix) ? String(path.dropLast(suffix.count)) : ""
        let number = name.suffix(6)
        guard number.count == 6, number.first == "-", number.dropFirst().allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw .invalidWeights("\(path): one of \(count) shards, but not named PREFIX-0000K\(suffix) as llama.cpp names them")
        }
        let prefix = String(name.dropLast(6))
        return (1...count).map { "\(prefix)-\(five($0))-of-\(five(count)).gguf" }
    }

    /// Opens and validates one file.
    private init(single path: String) throws(ModelError) {
        file = try MappedFile(path: path)
        files = [file]
        var r = Reader(bytes: file.bytes, path: path)
        guard try r.u32() == 0x4655_4747 else { throw .invalidWeights("\(path): not a GGUF file (bad magic)") }
        version = try r.u32()
        guard version == 2 || version == 3 else { throw .unsupported("\(path): GGUF version \(version) (2 and 3 are read)") }
        let tensorCount = try r.u64()
        let kvCount = try r.u64()
        guard tensorCount <= 1 << 20, kvCount <= 1 << 20 else {
            throw .invalidWeights("\(path): implausible counts (\(tensorCount) tensors, \(kvCount) metadata entries)")
        }
        var meta: [String: GGUFValue] = [:]
        var keys: [String] = []
        for _ in 0..<kvCount {
            let key = try r.string()
            let type = try r.u32()
            if meta[key] == nil { keys.append(key) }
            meta[key] = try r.value(type: type, depth: 0)
        }
        metadata = meta
        metadataOrder = keys
        var alignment = 32
        if let a = meta["general.alignment"] {
            guard let v = a.intValue, v > 0, v <= 1 << 16, v & (v - 1) == 0 else {
                throw .invalidWeights("\(path): general.alignment must be a power of two")
            }
            alignment = v
        }
        var infos: [(String, [Int], UInt32, Int)] = []
        for _ in 0..<tensorCount {
            let name = try r.string()
            let nd = try r.u32()
            guard nd >= 1 && nd <= 4 else { throw .invalidWeights("\(path): tensor \(name) has \(nd) dimensions") }
            var dims: [Int] = []
            for _ in 0..<nd {
                let d = try r.u64()
                guard d >= 1 && d <= 1 << 32 else { throw .invalidWeights("\(path): tensor \(name) has dimension \(d)") }
                dims.append(Int(d))
            }
            let type = try r.u32()
            let offset = try r.u64()
            guard offset <= UInt64(Int.max / 2) else { throw .invalidWeights("\(path): tensor \(name) offset is out of range") }
            infos.append((name, dims, type, Int(offset)))
        }
        let dataStart = (r.position + alignment - 1) / alignment * alignment
        guard dataStart <= file.bytes.count else { throw .invalidWeights("\(path): the file ends before its data section") }
        var tensors: [String: GGUFTensor] = [:]
        var order: [String] = []
        var extents: [(Int, Int, String)] = []
        for (name, dims, rawType, offset) in infos {
            guard let type = GGMLType(rawValue: rawType) else {
                throw .unsupported("\(path): tensor \(name) has type \(GGMLType.name(rawType)), which libphi4 does not read (\(GGMLType.allCases.map(\.displayName).joined(separator: ", ")))")
            }
            guard tensors[name] == nil else { throw .invalidWeights("\(path): tensor \(name) appears twice") }
            guard dims[0] % type.block.elements == 0 else {
                throw .invalidWeights("\(path): tensor \(name) rows of \(dims[0]) are not whole \(type) blocks")
            }
            var count = 1
            for d in dims {
                let (c, o) = count.multipliedReportingOverflow(by: d)
                guard !o, c <= 1 << 40 else { throw .invalidWeights("\(path): tensor \(name) is too large") }
                count = c
            }
            let bytes = count / type.block.elements * type.block.bytes
            guard offset % alignment == 0 else { throw .invalidWeights("\(path): tensor \(name) offset \(offset) is not aligned to \(alignment)") }
            let (end, o) = (dataStart + offset).addingReportingOverflow(bytes)
            guard !o, end <= file.bytes.count else {
                throw .invalidWeights("\(path): tensor \(name) [\(offset), +\(bytes)) lies outside the file")
            }
            let data = UnsafeRawBufferPointer(rebasing: file.bytes[(dataStart + offset)..<end])
            tensors[name] = GGUFTensor(name: name, dims: dims, type: type, data: data, file: file)
            order.append(name)
            extents.append((offset, offset + bytes, name))
        }
        extents.sort { $0.0 < $1.0 }
        for i in 1..<max(1, extents.count) where extents[i].0 < extents[i - 1].1 {
            throw .invalidWeights("\(path): tensors \(extents[i - 1].2) and \(extents[i].2) overlap")
        }
        self.tensors = tensors
        self.tensorOrder = order
    }

    /// A bounds-checked little-endian reader over the mapping.
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        let path: String
        var position = 0

        mutating func take(_ n: Int) throws(ModelError) -> Int {
            guard n >= 0, n <= bytes.count - position else {
                throw .invalidWeights("\(path): truncated header (needs \(n) bytes at offset \(position))")
            }
            defer { position += n }
            return position
        }
        mutating func u8() throws(ModelError) -> UInt8 { bytes[try take(1)] }
        mutating func u16() throws(ModelError) -> UInt16 { UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(2), as: UInt16.self)) }
        mutating func u32() throws(ModelError) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(4), as: UInt32.self)) }
        mutating func u64() throws(ModelError) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(8), as: UInt64.self)) }

        mutating func string() throws(ModelError) -> String {
            let n = try u64()
            guard n <= UInt64(bytes.count - position) else { throw .invalidWeights("\(path): string length \(n) runs past the end of the file") }
            let start = try take(Int(n))
            let raw = Array(bytes[start..<(start + Int(n))])
            guard let s = String(validatingUTF8Bytes: raw) else { throw .invalidWeights("\(path): a string at offset \(start) is not valid UTF-8") }
            return s
        }

        mutating func value(type: UInt32, depth: Int) throws(ModelError) -> GGUFValue {
            switch type {
            case 0: return .uint8(try u8())
            case 1: return .int8(Int8(bitPattern: try u8()))
            case 2: return .uint16(try u16())
            case 3: return .int16(Int16(bitPattern: try u16()))
            case 4: return .uint32(try u32())
            case 5: return .int32(Int32(bitPattern: try u32()))
            case 6: return .float32(Float(bitPattern: try u32()))
            case 7:
                let b = try u8()
                guard b <= 1 else { throw .invalidWeights("\(path): invalid bool \(b)") }
                return .bool(b == 1)
            case 8: return .string(try string())
            case 9:
                guard depth < 4 else { throw .invalidWeights("\(path): arrays nested too deeply") }
                let elementType = try u32()
                let n = try u64()
                // Every element takes at least one byte (strings at least eight).
                guard n <= UInt64(bytes.count - position) else { throw .invalidWeights("\(path): array of \(n) elements runs past the end of the file") }
                var items: [GGUFValue] = []
                items.reserveCapacity(Int(n))
                for _ in 0..<n { items.append(try value(type: elementType, depth: depth + 1)) }
                return .array(elementType, items)
            case 10: return .uint64(try u64())
            case 11: return .int64(Int64(bitPattern: try u64()))
            case 12: return .float64(Double(bitPattern: try u64()))
            default: throw .invalidWeights("\(path): unknown metadata value type \(type)")
            }
        }
    }
}

/// Writes GGUF v3 files: metadata, then tensor descriptions, then aligned tensor data that is
/// produced one tensor at a time (so a whole model never has to be in memory).
package struct GGUFWriter {
    /// A tensor to write: name, GGML dims (innermost first), type, and a producer that appends
    /// the tensor's bytes to the file in order (it may write in pieces).
    public struct Tensor {
        public var name: String
        public var dims: [Int]
        public var type: GGMLType
        public var write: (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void

        public init(name: String, dims: [Int], type: GGMLType,
                    write: @escaping (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) {
            self.name = name
            self.dims = dims
            self.type = type
            self.write = write
        }

        var byteCount: Int { dims.reduce(1, *) / type.block.elements * type.block.bytes }
    }

    /// Metadata in the order it is written.
    public var metadata: [(String, GGUFValue)] = []
    /// Tensors in the order they are written.
    public var tensors: [Tensor] = []
    /// Data alignment.
    public let alignment = 32

    /// An empty writer.
    public init() {}

    private static func append(_ v: GGUFValue, to out: inout [UInt8], withType: Bool) {
        func le<T: FixedWidthInteger>(_ x: T) { withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) } }
        func code(_ v: GGUFValue) -> UInt32 {
            switch v {
            case .uint8: return 0
            case .int8: return 1
            case .uint16: return 2
            case .int16: return 3
            case .uint32: return 4
            case .int32: return 5
            case .float32: return 6
            case .bool: return 7
            case .string: return 8
            case .array: return 9
            case .uint64: return 10
            case .int64: return 11
            case .float64: return 12
            }
        }
        if withType { le(code(v)) }
        switch v {
        case .uint8(let x): le(x)
        case .int8(let x): le(x)
        case .uint16(let x): le(x)
        case .int16(let x): le(x)
        case .uint32(let x): le(x)
        case .int32(let x): le(x)
        case .uint64(let x): le(x)
        case .int64(let x): le(x)
        case .float32(let x): le(x.bitPattern)
        case .float64(let x): le(x.bitPattern)
        case .bool(let b): out.append(b ? 1 : 0)
        case .string(let s):
            le(UInt64(s.utf8.count))
            out.append(contentsOf: s.utf8)
        case .array(let t, let items):
            le(t)
            le(UInt64(items.count))
            for i in items { append(i, to: &out, withType: false) }
        }
    }

    /// Writes the file.
    public func write(path: String) throws {
        var header: [UInt8] = []
        func le<T: FixedWidthInteger>(_ x: T) { withUnsafeBytes(of: x.littleEndian) { header.append(contentsOf: $0) } }
        le(UInt32(0x4655_4747))
        le(UInt32(3))
        le(UInt64(tensors.count))
        le(UInt64(metadata.count))
        for (k, v) in metadata {
            GGUFWriter.append(.string(k), to: &header, withType: false)
            GGUFWriter.append(v, to: &header, withType: true)
        }
        var offset = 0
        for t in tensors {
            GGUFWriter.append(.string(t.name), to: &header, withType: false)
            le(UInt32(t.dims.count))
            for d in t.dims { le(UInt64(d)) }
            le(t.type.rawValue)
            le(UInt64(offset))
            offset += (t.byteCount + alignment - 1) / alignment * alignment
        }
        while header.count % alignment != 0 { header.append(0) }
        guard let f = fopen(path, "wb") else { throw FileError(path: path, message: FileIO.errnoText(errno)) }
        defer { fclose(f) }
        var size = 0
        func put(_ b: UnsafeRawBufferPointer) throws {
            size += b.count
            // Large all-zero chunks become holes (a sparse file): zero-weight test models of any
            // size then take no disk space.
            if b.count >= 1 << 16 && b.allSatisfy({ $0 == 0 }) {
                guard fflush(f) == 0, fseeko(f, off_t(b.count), SEEK_CUR) == 0 else {
                    throw FileError(path: path, message: "seek failed: \(FileIO.errnoText(errno))")
                }
                return
            }
            if b.count > 0 && fwrite(b.baseAddress, 1, b.count, f) != b.count {
                throw FileError(path: path, message: "write failed: \(FileIO.errnoText(errno))")
            }
        }
        try header.withUnsafeBytes { try put($0) }
        let zeros = [UInt8](repeating: 0, count: alignment)
        for t in tensors {
            var written = 0
            try t.write { chunk in
                written += chunk.count
                try put(chunk)
            }
            guard written == t.byteCount else {
                throw FileError(path: path, message: "tensor \(t.name) produced \(written) bytes, expected \(t.byteCount)")
            }
            let pad = (alignment - written % alignment) % alignment
            try zeros.withUnsafeBytes { try put(UnsafeRawBufferPointer(rebasing: $0[0..<pad])) }
        }
        guard fflush(f) == 0, ftruncate(fileno(f), off_t(size)) == 0 else {
            throw FileError(path: path, message: "write failed: \(FileIO.errnoText(errno))")
        }
    }
}
