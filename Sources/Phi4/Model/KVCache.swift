/// The attention keys and values of every position processed so far, for every layer.
///
/// Layout per layer: `[capacity, kvDim]` rows for K and for V (f32), so the keys of one
/// key-value head are a strided column block that BLAS reads directly. Keys are stored
/// after RoPE. Memory is allocated once for `capacity` positions.
public final class KVCache: @unchecked Sendable {
    /// Positions the cache can hold.
    public let capacity: Int
    /// Number of layers.
    public let layerCount: Int
    /// Width of one position's keys (and values): `kvHeads × headDim`.
    public let kvDim: Int
    /// Positions filled so far.
    public internal(set) var count = 0

    private let keys: UnsafeMutablePointer<Float>
    private let values: UnsafeMutablePointer<Float>

    /// Allocates a cache for `capacity` positions of a model with `config`'s shape.
    public init(config: ModelConfig, capacity: Int) {
        self.capacity = capacity
        self.layerCount = config.layerCount
        self.kvDim = config.kvDim
        let n = max(1, config.layerCount * capacity * config.kvDim)
        keys = .allocate(capacity: n)
        values = .allocate(capacity: n)
        keys.initialize(repeating: 0, count: n)
        values.initialize(repeating: 0, count: n)
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    /// Bytes of memory the cache holds.
    public var byteCount: Int { 2 * layerCount * capacity * kvDim * 4 }

    /// The key rows of `layer` (`[capacity, kvDim]`).
    @inline(__always)
    func keys(layer: Int) -> UnsafeMutablePointer<Float> { keys + layer * capacity * kvDim }

    /// The value rows of `layer` (`[capacity, kvDim]`).
    @inline(__always)
    func values(layer: Int) -> UnsafeMutablePointer<Float> { values + layer * capacity * kvDim }

    /// Forgets every position after the first `n` (n ≤ ``count``).
    public func truncate(to n: Int) {
        count = max(0, min(n, count))
    }

    /// Forgets everything.
    public func reset() { count = 0 }
}
