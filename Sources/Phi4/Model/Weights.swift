import CPhi4Kernels

/// How a weight matrix is stored in memory.
public enum WeightFormat: String, Sendable, CaseIterable {
    /// 32-bit floats: full precision (bf16 / f16 checkpoints are widened at load).
    case f32
}

/// A row-major `[rows, cols]` weight matrix (`[out, in]`, as HF and GGUF store linear layers).
///
/// The bytes either live in a memory-mapped file (zero-copy, when the stored type is the run
/// type and suitably aligned) or in memory this object allocated and frees.
public final class WeightMatrix: @unchecked Sendable {
    /// Output features.
    public let rows: Int
    /// Input features.
    public let cols: Int
    /// Storage format.
    public let format: WeightFormat
    /// The elements (`rows × cols` floats for `.f32`).
    let data: UnsafePointer<Float>
    private let owner: AnyObject?
    private let allocated: UnsafeMutablePointer<Float>?

    /// Wraps memory owned by `owner` (e.g. a ``MappedFile``), which is kept alive.
    init(rows: Int, cols: Int, mapped: UnsafePointer<Float>, owner: AnyObject) {
        self.rows = rows
        self.cols = cols
        self.format = .f32
        self.data = mapped
        self.owner = owner
        self.allocated = nil
    }

    /// Takes ownership of `rows × cols` floats from ``allocateLarge(_:)``.
    init(rows: Int, cols: Int, owning buffer: UnsafeMutablePointer<Float>) {
        self.rows = rows
        self.cols = cols
        self.format = .f32
        self.data = UnsafePointer(buffer)
        self.owner = nil
        self.allocated = buffer
    }

    deinit {
        if let allocated { p4k_free_large(allocated, rows * cols * 4) }
    }

    /// Allocates `count` floats of page-aligned memory (huge pages where the kernel allows).
    static func allocateLarge(_ count: Int) throws(ModelError) -> UnsafeMutablePointer<Float> {
        guard let p = p4k_alloc_large(count * 4) else {
            throw .insufficientMemory("cannot allocate \(count * 4) bytes for weights")
        }
        return p.bindMemory(to: Float.self, capacity: count)
    }

    /// Bytes of memory the elements occupy.
    public var byteCount: Int { rows * cols * 4 }

    /// A pointer to row `r`.
    @inline(__always)
    func row(_ r: Int) -> UnsafePointer<Float> { data + r * cols }

    /// Builds a matrix from a checkpoint tensor of shape `[rows, cols]` (or `[n]` as `[1, n]`),
    /// widening f16 / bf16 to f32; f32 data that is 4-byte aligned is used in place.
    static func load(_ t: TensorInfo, rows: Int, cols: Int, pool: ThreadPool = .shared) throws(ModelError) -> WeightMatrix {
        let count = rows * cols
        if t.dtype == .f32, let base = t.data.baseAddress, Int(bitPattern: base) % 4 == 0 {
            return WeightMatrix(rows: rows, cols: cols, mapped: base.assumingMemoryBound(to: Float.self), owner: t.file)
        }
        let out = try allocateLarge(count)
        if let base = t.data.baseAddress { p4k_advise_sequential(base, t.data.count) }
        // Convert in slices across the pool.
        pool.parallelFor(count, threads: pool.threadCount, align: 1 << 16) { r in
            convertToFloat(t, out, range: r)
        }
        return WeightMatrix(rows: rows, cols: cols, owning: out)
    }
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
        for i in range { out[i] = Float(halfBits: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
    }
}

/// Widens all `count` elements of a tensor to f32.
func convertToFloat(_ t: TensorInfo, _ out: UnsafeMutablePointer<Float>, count: Int) {
    convertToFloat(t, out, range: 0..<count)
}

extension Float {
    /// The value of an IEEE 754 half-precision bit pattern.
    @inline(__always)
    init(halfBits h: UInt16) {
        let sign = UInt32(h & 0x8000) << 16
        let exp = Int((h >> 10) & 0x1F)
        let mant = UInt32(h & 0x3FF)
        if exp == 0 {
            // Zero or subnormal: mant × 2^-24.
            let v = Float(mant) * (1.0 / 16_777_216.0)
            self = sign != 0 ? -v : v
        } else if exp == 31 {
            self = Float(bitPattern: sign | 0x7F80_0000 | (mant << 13))
        } else {
            self = Float(bitPattern: sign | UInt32(exp + 112) << 23 | (mant << 13))
        }
    }
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
