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
/// Layout per layer: `[capacity, kvDim]` rows for K and for V, so the keys of one key-value
/// head are a strided column block. Keys are stored after RoPE. In f32 BLAS reads the cache
/// directly; in f16 the attention widens one tile at a time. Memory is allocated once for
/// `capacity` positions.
public final class KVCache: @unchecked Sendable {
    /// Positions the cache can hold.
    public let capacity: Int
    /// Number of layers.
    public let layerCount: Int
    /// Width of one position's keys (and values): `kvHeads × headDim`.
    public let kvDim: Int
    /// Positions filled so far.
    public internal(set) var count = 0
    /// Element type.
    public let type: KVCacheType

    private let keys: UnsafeMutableRawPointer
    private let values: UnsafeMutableRawPointer
    /// Bytes of one position's keys (or values).
    let rowBytes: Int

    /// Allocates a cache for `capacity` positions of a model with `config`'s shape.
    public init(config: ModelConfig, capacity: Int, type: KVCacheType = .f32) {
        self.capacity = capacity
        self.layerCount = config.layerCount
        self.kvDim = config.kvDim
        self.type = type
        rowBytes = type.rowBytes(config.kvDim)
        let n = max(1, config.layerCount * capacity * rowBytes)
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
    public var byteCount: Int { 2 * layerCount * capacity * rowBytes }

    /// The f32 key rows of `layer` (`[capacity, kvDim]`; only for `.f32`).
    @inline(__always)
    func keys(layer: Int) -> UnsafeMutablePointer<Float> { (keys + layer * capacity * kvDim * 4).assumingMemoryBound(to: Float.self) }

    /// The f32 value rows of `layer` (`[capacity, kvDim]`; only for `.f32`).
    @inline(__always)
    func values(layer: Int) -> UnsafeMutablePointer<Float> { (values + layer * capacity * kvDim * 4).assumingMemoryBound(to: Float.self) }

    /// The f16 key rows of `layer` (only for `.f16`).
    @inline(__always)
    func halfKeys(layer: Int) -> UnsafeMutablePointer<UInt16> { (keys + layer * capacity * kvDim * 2).assumingMemoryBound(to: UInt16.self) }

    /// The f16 value rows of `layer` (only for `.f16`).
    @inline(__always)
    func halfValues(layer: Int) -> UnsafeMutablePointer<UInt16> { (values + layer * capacity * kvDim * 2).assumingMemoryBound(to: UInt16.self) }

    /// The Q8_0 key (or value) row of `position` in `layer` (only for `.q8_0`).
    @inline(__always)
    func blockRow(layer: Int, position: Int, values wantValues: Bool) -> UnsafeMutableRawPointer {
        (wantValues ? values : keys) + (layer * capacity + position) * rowBytes
    }

    /// Stores the keys and values of position `position` in `layer`.
    @inline(__always)
    func store(layer: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        switch type {
        case .f32:
            (keys(layer: layer) + position * kvDim).update(from: key, count: kvDim)
            (values(layer: layer) + position * kvDim).update(from: value, count: kvDim)
        case .f16:
            p4k_f32_to_f16(key, halfKeys(layer: layer) + position * kvDim, kvDim)
            p4k_f32_to_f16(value, halfValues(layer: layer) + position * kvDim, kvDim)
        case .q8_0:
            p4k_quantize_q8_0(key, blockRow(layer: layer, position: position, values: false), kvDim)
            p4k_quantize_q8_0(value, blockRow(layer: layer, position: position, values: true), kvDim)
        }
    }

    /// Forgets every position after the first `n` (n ≤ ``count``).
    public func truncate(to n: Int) {
        count = max(0, min(n, count))
    }

    /// Forgets everything.
    public func reset() { count = 0 }

    /// Bytes of one layer's keys (or values) for the first `n` positions.
    func layerBytes(_ n: Int) -> Int { n * rowBytes }

    /// The raw keys (`values == false`) or values of `layer`, from position 0.
    func raw(layer: Int, values wantValues: Bool) -> UnsafeMutableRawPointer {
        (wantValues ? values : keys) + layer * capacity * rowBytes
    }
}
