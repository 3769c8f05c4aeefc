import CPhi4Kernels

/// The element type of a KV cache.
public enum KVCacheType: String, Sendable, CaseIterable {
    /// 32-bit floats (the default for f32 weights).
    case f32
    /// IEEE half floats: half the memory (the default for quantized weights).
    case f16
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
    private let elementSize: Int

    /// Allocates a cache for `capacity` positions of a model with `config`'s shape.
    public init(config: ModelConfig, capacity: Int, type: KVCacheType = .f32) {
        self.capacity = capacity
        self.layerCount = config.layerCount
        self.kvDim = config.kvDim
        self.type = type
        elementSize = type == .f32 ? 4 : 2
        let n = max(1, config.layerCount * capacity * config.kvDim) * elementSize
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
    public var byteCount: Int { 2 * layerCount * capacity * kvDim * elementSize }

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
        }
    }

    /// Forgets every position after the first `n` (n ≤ ``count``).
    public func truncate(to n: Int) {
        count = max(0, min(n, count))
    }

    /// Forgets everything.
    public func reset() { count = 0 }

    /// Bytes of one layer's keys (or values) for the first `n` positions.
    func layerBytes(_ n: Int) -> Int { n * kvDim * elementSize }

    /// The raw keys (`values == false`) or values of `layer`, from position 0.
    func raw(layer: Int, values wantValues: Bool) -> UnsafeMutableRawPointer {
        (wantValues ? values : keys) + layer * capacity * kvDim * elementSize
    }
}
