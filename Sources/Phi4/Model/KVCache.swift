import CPhi4Kernels

/// The element type of a KV cache.
public enum KVCacheType: String, Sendable, CaseIterable {
    /// 32-bit floats (the default for f32 weights).
    case f32
    /// IEEE half floats: half the memory (the default for quantized weights).
    case f16
    /// Q8_0 blocks of 32 (int8 with an fp16 scale): 8.5 bits per value, about half of f16. Needs a
    /// head dimension that is a multiple of 32 (Phi-4: 128).
    case q8_0

    /// The type a model's caches get unless asked otherwise: f16 for quantized weights, f32 for
    /// f32 weights.
    public static func standard(for model: Model) -> KVCacheType {
        let quantized = model.weights.layers.first.map { $0.gateUp.format != .f32 } ?? false
        return quantized ? .f16 : .f32
    }

    /// Bytes of a row of `n` values (n a multiple of 32 for q8_0).
    public func rowBytes(_ n: Int) -> Int {
        switch self {
        case .f32: return 4 * n
        case .f16: return 2 * n
        case .q8_0: return n / 32 * 34
        }
    }
}

/// The attention keys and values of every position processed so far, for every layer.
///
/// Layout per layer and key-value head: `[capacity, headDim]` rows for K and for V (head-major),
/// so the keys one head reads while decoding are one contiguous run that the hardware
/// prefetchers stream, not a column block strided by the other heads. Keys are stored after RoPE.
/// Decoding reads f32 and f16 caches in place; the prefill path and q8_0 widen one tile at a
/// time. Memory is allocated once for `capacity` positions.
// @unchecked Sendable: it owns raw memory; a cache belongs to one Session, which is used by one
// thread at a time (a parallel step writes disjoint heads).
public final class KVCache: @unchecked Sendable {
    /// Positions the cache can hold.
    public let capacity: Int
    /// Number of layers.
    public let layerCount: Int
    /// Width of one position's keys (and values): `kvHeads × headDim`.
    public let kvDim: Int
    /// Key-value heads.
    public let headCount: Int
    /// Values per head and position.
    public let headDim: Int
    /// Positions filled so far.
    public internal(set) var count = 0 {
        didSet { if count == 0 { rotatedLong = false } }
    }
    /// With LongRoPE: whether entries were stored with the long factors (set by the decoder;
    /// cleared when the cache empties). ``Session`` uses it to re-evaluate short-rotated entries
    /// once when a sequence first passes the threshold.
    public internal(set) var rotatedLong = false
    /// Element type.
    public let type: KVCacheType

    private let keys: UnsafeMutableRawPointer
    private let values: UnsafeMutableRawPointer
    /// Bytes of one position's keys (or values) for one head.
    let headRowBytes: Int

    /// Allocates a cache for `capacity` positions of a model with `config`'s shape.
    public init(config: ModelConfig, capacity: Int, type: KVCacheType = .f32) {
        self.capacity = capacity
        self.layerCount = config.layerCount
        self.kvDim = config.kvDim
        self.headCount = config.kvHeadCount
        self.headDim = config.headDim
        self.type = type
        headRowBytes = type.rowBytes(config.headDim)
        let n = max(1, config.layerCount * config.kvHeadCount * capacity * headRowBytes)
        // Not zero-filled: positions past `count` are never read, so pages become resident only as
        // the context fills (a 16384-position cache costs memory for the tokens it holds).
        keys = .allocate(byteCount: n, alignment: 64)
        values = .allocate(byteCount: n, alignment: 64)
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    /// Bytes of memory the cache holds.
    public var byteCount: Int { 2 * layerCount * headCount * capacity * headRowBytes }

    /// Head `head`'s keys (`values == false`) or values in `layer`, from position 0: `capacity`
    /// rows of ``headRowBytes`` bytes (f32 / f16 values, or Q8_0 blocks, by ``type``).
    @inline(__always)
    func head(layer: Int, head h: Int, values wantValues: Bool) -> UnsafeMutableRawPointer {
        (wantValues ? values : keys) + ((layer * headCount + h) * capacity) * headRowBytes
    }

    /// Stores the keys and values of position `position` in `layer` (`kvDim` floats each, head
    /// after head).
    @inline(__always)
    func store(layer: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        for h in 0..<headCount {
            let k = head(layer: layer, head: h, values: false) + position * headRowBytes
            let v = head(layer: layer, head: h, values: true) + position * headRowBytes
            let kf = key + h * headDim, vf = value + h * headDim
            switch type {
            case .f32:
                k.assumingMemoryBound(to: Float.self).update(from: kf, count: headDim)
                v.assumingMemoryBound(to: Float.self).update(from: vf, count: headDim)
            case .f16:
                p4k_f32_to_f16(kf, k.assumingMemoryBound(to: UInt16.self), headDim)
                p4k_f32_to_f16(vf, v.assumingMemoryBound(to: UInt16.self), headDim)
            case .q8_0:
                p4k_quantize_q8_0(kf, k, headDim)
                p4k_quantize_q8_0(vf, v, headDim)
            }
        }
    }

    /// Forgets every position after the first `n` (n ≤ ``count``).
    public func truncate(to n: Int) {
        count = max(0, min(n, count))
    }

    /// Forgets everything.
    public func reset() { count = 0 }

    /// Bytes of one head's keys (or values) for the first `n` positions.
    func headBytes(_ n: Int) -> Int { n * headRowBytes }
}
