import CPhi4Kernels

/// How a weight matrix is stored in memory.
public enum WeightFormat: String, Sendable, CaseIterable {
    /// 32-bit floats: full precision (bf16 / f16 checkpoints are widened at load).
    case f32
    /// GGUF Q8_0: blocks of 32 int8 with an fp16 scale (8.5 bits per weight).
    case q8_0
    /// GGUF Q4_0: blocks of 32 int4 with an fp16 scale (4.5 bits per weight).
    case q4_0
    /// GGUF Q4_K: super-blocks of 256 4-bit values, 6-bit scales and mins per 32 (4.5 bits per weight).
    case q4_K = "q4_k"
    /// GGUF Q5_K: as Q4_K with a fifth bit per value (5.5 bits per weight).
    case q5_K = "q5_k"
    /// GGUF Q6_K: super-blocks of 256 6-bit values, an 8-bit scale per 16 (6.5625 bits per weight).
    case q6_K = "q6_k"
    /// GGUF Q4_1: blocks of 32 4-bit values with an fp16 scale and offset (5 bits per weight).
    case q4_1
    /// GGUF Q5_0: blocks of 32 5-bit values with an fp16 scale (5.5 bits per weight).
    case q5_0
    /// GGUF Q5_1: blocks of 32 5-bit values with an fp16 scale and offset (6 bits per weight).
    case q5_1
    /// GGUF Q2_K: super-blocks of 256 2-bit values, a 4-bit scale and min per 16 (2.625 bits per weight).
    case q2_K = "q2_k"
    /// GGUF Q3_K: super-blocks of 256 3-bit values, a 6-bit scale per 16 (3.4375 bits per weight).
    case q3_K = "q3_k"
    /// GGUF IQ4_NL: blocks of 32 4-bit indices into a 16-value non-linear table (4.5 bits per weight).
    case iq4_NL = "iq4_nl"
    /// GGUF IQ4_XS: super-blocks of 256 IQ4_NL indices with a 6-bit scale per 32 (4.25 bits per weight).
    case iq4_XS = "iq4_xs"
    /// GGUF IQ2_XXS: super-blocks of 256; per 8 values an index into a 256-entry grid, 7-bit sign
    /// indices and a 4-bit scale per 32 (2.0625 bits per weight).
    case iq2_XXS = "iq2_xxs"
    /// GGUF IQ2_XS: as IQ2_XXS with a 512-entry grid and a 4-bit scale per 16 (2.3125 bits per weight).
    case iq2_XS = "iq2_xs"
    /// GGUF IQ2_S: a 1024-entry grid, a sign bit per value, a 4-bit scale per 16 (2.5625 bits per weight).
    case iq2_S = "iq2_s"
    /// GGUF IQ3_XXS: per 4 values an index into a 256-entry grid, sign indices, a 4-bit scale per 32
    /// (3.0625 bits per weight).
    case iq3_XXS = "iq3_xxs"
    /// GGUF IQ3_S: a 512-entry grid of 4 values, a sign bit per value, a 4-bit scale per 32 (3.4375 bits per weight).
    case iq3_S = "iq3_s"
    /// GGUF IQ1_S: per 8 values an index into a 2048-entry grid of −1, 0, 1, a 3-bit scale and a
    /// ±1/8 shift per 32 (1.5625 bits per weight).
    case iq1_S = "iq1_s"
    /// GGUF IQ1_M: IQ1_S's grid with a 3-bit scale per 16 and a shift per 8 values (1.75 bits per weight).
    case iq1_M = "iq1_m"

    /// The format a GGML type runs in, when the matrix kernels run it in place (nil for F16 /
    /// BF16, which are widened or quantized at load, and for types libphi4 does not read).
    public init?(ggmlType: GGMLType) {
        guard let f = WeightFormat.allCases.first(where: { $0.ggmlType == ggmlType }) else { return nil }
        self = f
    }

    /// The GGML type this format is (its facts live in the kernels' format table).
    public var ggmlType: GGMLType {
        switch self {
        case .f32: return .f32
        case .q8_0: return .q8_0
        case .q4_0: return .q4_0
        case .q4_K: return .q4_K
        case .q5_K: return .q5_K
        case .q6_K: return .q6_K
        case .q4_1: return .q4_1
        case .q5_0: return .q5_0
        case .q5_1: return .q5_1
        case .q2_K: return .q2_K
        case .q3_K: return .q3_K
        case .iq4_NL: return .iq4_NL
        case .iq4_XS: return .iq4_XS
        case .iq2_XXS: return .iq2_XXS
        case .iq2_XS: return .iq2_XS
        case .iq2_S: return .iq2_S
        case .iq3_XXS: return .iq3_XXS
        case .iq3_S: return .iq3_S
        case .iq1_S: return .iq1_S
        case .iq1_M: return .iq1_M
        }
    }

    /// Bytes one row of `cols` weights takes (see ``supports(cols:)``).
    public func rowBytes(_ cols: Int) -> Int {
        let block = ggmlType.block
        return cols / block.elements * block.bytes
    }

    /// The kernel's format code (the GGML type id; -1 for f32, which no quantized kernel takes).
    var kernelCode: Int32 { self == .f32 ? -1 : Int32(ggmlType.rawValue) }

    /// Whether rows of `cols` weights can use this format (whole blocks: 32, K-quants 256).
    public func supports(cols: Int) -> Bool { cols % ggmlType.block.elements == 0 }
}

/// A row-major `[rows, cols]` weight matrix (`[out, in]`, as HF and GGUF store linear layers;
/// quantized blocks run along a row, the GGUF layout).
///
/// The bytes either live in a memory-mapped file (zero-copy, when the stored type is the run
/// type and suitably aligned) or in memory this object allocated and frees.
// @unchecked Sendable: its bytes are immutable after init (mapped read-only or filled once).
public final class WeightMatrix: @unchecked Sendable {
    /// Output features.
    public let rows: Int
    /// Input features.
    public let cols: Int
    /// Storage format.
    public let format: WeightFormat
    /// The stored bytes (`rows × format.rowBytes(cols)`).
    let raw: UnsafeRawPointer
    private let owner: AnyObject?
    private let allocatedBytes: Int

    /// Wraps memory owned by `owner` (e.g. a ``MappedFile``), which is kept alive.
    init(rows: Int, cols: Int, format: WeightFormat, mapped: UnsafeRawPointer, owner: AnyObject) {
        self.rows = rows
        self.cols = cols
        self.format = format
        self.raw = mapped
        self.owner = owner
        self.allocatedBytes = 0
    }

    /// Takes ownership of memory from ``allocateLarge(bytes:)``.
    init(rows: Int, cols: Int, format: WeightFormat, owning buffer: UnsafeMutableRawPointer, bytes: Int) {
        self.rows = rows
        self.cols = cols
        self.format = format
        self.raw = UnsafeRawPointer(buffer)
        self.owner = nil
        self.allocatedBytes = bytes
    }

    deinit {
        if allocatedBytes > 0 { p4k_free_large(UnsafeMutableRawPointer(mutating: raw), allocatedBytes) }
    }

    /// Allocates `bytes` of page-aligned memory (huge pages where the kernel allows).
    static func allocateLarge(bytes: Int) throws(ModelError) -> UnsafeMutableRawPointer {
        guard let p = p4k_alloc_large(max(bytes, 1)) else {
            throw .insufficientMemory("cannot allocate \(bytes) bytes for weights")
        }
        return p
    }

    /// Bytes of one row.
    public var rowBytes: Int { format.rowBytes(cols) }

    /// Bytes of memory the elements occupy.
    public var byteCount: Int { rows * rowBytes }

    /// The f32 elements (only for `.f32`).
    var data: UnsafePointer<Float> { raw.assumingMemoryBound(to: Float.self) }

    /// A pointer to f32 row `r` (only for `.f32`).
    @inline(__always)
    func row(_ r: Int) -> UnsafePointer<Float> { data + r * cols }

    /// The bytes of row `r`.
    @inline(__always)
    func rowPointer(_ r: Int) -> UnsafeRawPointer { raw + r * rowBytes }

    /// Writes row `r` as f32 (dequantizing) to `out`.
    func copyRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        switch format {
        case .f32: out.update(from: row(r), count: cols)
        default: p4k_dequantize_rows(format.kernelCode, rowPointer(r), cols, 1, out)
        }
    }

    /// Builds a matrix from a checkpoint tensor of shape `[rows, cols]` (or `[n]` as `[1, n]`) in
    /// `format`: f16 / bf16 are widened to f32, and quantized formats are produced from f32 rows
    /// a slice at a time (so the f32 copy of a whole tensor never exists). f32 data that is 4-byte
    /// aligned is used in place.
    static func load(_ t: TensorInfo, rows: Int, cols: Int, format: WeightFormat = .f32,
                     pool: ThreadPool = .shared) throws(ModelError) -> WeightMatrix {
        let count = rows * cols
        let format = storedFormat(format, cols: cols)
        if format == .f32, t.dtype == .f32, let base = t.data.baseAddress, Int(bitPattern: base) % 4 == 0 {
            return WeightMatrix(rows: rows, cols: cols, format: .f32, mapped: base, owner: t.file)
        }
        let bytes = rows * format.rowBytes(cols)
        let out = try allocateLarge(bytes: bytes)
        if let base = t.data.baseAddress { p4k_advise_sequential(base, t.data.count) }
        if format == .f32 {
            let f = out.bindMemory(to: Float.self, capacity: count)
            pool.parallelFor(count, threads: pool.threadCount, align: 1 << 16) { r in convertToFloat(t, f, range: r) }
        } else {
            let code = format.kernelCode
            let rowBytes = format.rowBytes(cols)
            pool.parallelFor(rows, threads: pool.threadCount, align: 16) { range in
                let slice = 16
                let tmp = UnsafeMutablePointer<Float>.allocate(capacity: slice * cols)
                defer { tmp.deallocate() }
                var r = range.lowerBound
                while r < range.upperBound {
                    let n = min(slice, range.upperBound - r)
                    convertToFloatRows(t, cols: cols, rows: r..<(r + n), into: tmp)
                    for i in 0..<n { quantizeRow(code, tmp + i * cols, out + (r + i) * rowBytes, cols) }
                    r += n
                }
            }
        }
        // The source pages are read: drop them from this process's resident set, so that loading
        // a 29 GB F16 file as Q4_0 holds the quantized weights plus one tensor, never the file.
        if let base = t.data.baseAddress { p4k_advise_done(base, t.data.count) }
        return WeightMatrix(rows: rows, cols: cols, format: format, owning: out, bytes: bytes)
    }

    /// The format rows of `cols` values are stored in when `format` is asked for: K-quant rows
    /// that are not whole super-blocks of 256 fall back to Q8_0, rows that are not whole blocks
    /// of 32 to f32.
    static func storedFormat(_ format: WeightFormat, cols: Int) -> WeightFormat {
        if format.supports(cols: cols) { return format }
        return WeightFormat.q8_0.supports(cols: cols) ? .q8_0 : .f32
    }

    /// Quantizes one f32 row of `cols` values to the kernel format `code` at `dst` with the format
    /// table's quantizer (the formats ``WeightType`` asks for all have one).
    @inline(__always)
    static func quantizeRow(_ code: Int32, _ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, _ cols: Int) {
        p4k_format(UInt32(code))!.pointee.quantize!(src, dst, cols)
    }

}

/// Widens rows `rows` of a `[*, cols]` tensor to f32 into `out` (row 0 of `out` is `rows.lowerBound`).
func convertToFloatRows(_ t: TensorInfo, cols: Int, rows: Range<Int>, into out: UnsafeMutablePointer<Float>) {
    let first = rows.lowerBound * cols
    convertToFloat(t, out - first, range: first..<(rows.upperBound * cols))
}

/// Widens elements `range` of a tensor to f32 into `out[range]` (bf16: the high half of an f32;
/// f16: IEEE half). Data that is not 2-byte aligned is read element by element.
func convertToFloat(_ t: TensorInfo, _ out: UnsafeMutablePointer<Float>, range: Range<Int>) {
    guard let src = t.data.baseAddress, !range.isEmpty else { return }
    let aligned = Int(bitPattern: src) % 2 == 0
    switch t.dtype {
    case .f32:
        for i in range { out[i] = src.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
    case .bf16 where aligned:
        p4k_bf16_to_f32(src.assumingMemoryBound(to: UInt16.self) + range.lowerBound, out + range.lowerBound, range.count)
    case .f16 where aligned:
        p4k_f16_to_f32(src.assumingMemoryBound(to: UInt16.self) + range.lowerBound, out + range.lowerBound, range.count)
    case .bf16:
        for i in range {
            out[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
        }
    case .f16:
        for i in range { out[i] = p4k_fp16_to_f32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
    }
}

/// Widens all `count` elements of a tensor to f32.
func convertToFloat(_ t: TensorInfo, _ out: UnsafeMutablePointer<Float>, count: Int) {
    convertToFloat(t, out, range: 0..<count)
}


/// The weights of one decoder layer.
public struct LayerWeights: Sendable {
    /// RMSNorm scale before attention, `[hidden]`.
    public let attentionNorm: [Float]
    /// Fused query/key/value projection, `[qDim + 2·kvDim, hidden]`: rows are q, then k, then v.
    public let qkv: WeightMatrix
    /// Attention output projection, `[hidden, qDim]`.
    public let output: WeightMatrix
    /// RMSNorm scale before the MLP, `[hidden]`.
    public let mlpNorm: [Float]
    /// Fused gate/up projection, `[2·intermediate, hidden]`: the first half of the rows is the gate.
    public let gateUp: WeightMatrix
    /// MLP down projection, `[hidden, intermediate]`.
    public let down: WeightMatrix
}

/// All weights of a Phi-4 model.
public struct ModelWeights: Sendable {
    /// Token embeddings, `[vocab, hidden]`.
    public let embedding: WeightMatrix
    /// The decoder layers.
    public let layers: [LayerWeights]
    /// Final RMSNorm scale, `[hidden]`.
    public let finalNorm: [Float]
    /// Output projection to logits, `[vocab, hidden]` (the embedding itself when tied).
    public let lmHead: WeightMatrix

    /// Bytes the weights occupy in memory.
    public var byteCount: Int {
        var n = embedding.byteCount + (lmHead === embedding ? 0 : lmHead.byteCount) + finalNorm.count * 4
        for l in layers {
            n += l.qkv.byteCount + l.output.byteCount + l.gateUp.byteCount + l.down.byteCount
            n += (l.attentionNorm.count + l.mlpNorm.count) * 4
        }
        return n
    }
}
