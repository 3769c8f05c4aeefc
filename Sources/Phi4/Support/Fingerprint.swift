/// FNV-1a, 64-bit: a fast, dependency-free hash for fingerprints and checksums (not for security).
public struct FNV1a: Sendable {
    /// The hash so far.
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    /// A fresh hash.
    public init() {}

    /// Adds bytes.
    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var h = value
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        value = h
    }

    /// Adds a string's UTF-8 bytes and a terminator.
    public mutating func add(_ s: String) {
        var t = s
        t.withUTF8 { add(UnsafeRawBufferPointer($0)) }
        add(UInt8(0))
    }

    /// Adds an integer's little-endian bytes.
    public mutating func add<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { add($0) }
    }

    /// Adds the identity of a tensor without reading it whole: name, type, shape, size, and its
    /// first and last 64 bytes.
    mutating func addTensor(name: String, type: String, shape: [Int], data: UnsafeRawBufferPointer) {
        add(name)
        add(type)
        for d in shape { add(Int64(d)) }
        add(Int64(data.count))
        let n = min(64, data.count)
        add(UnsafeRawBufferPointer(rebasing: data[0..<n]))
        add(UnsafeRawBufferPointer(rebasing: data[(data.count - n)..<data.count]))
    }
}
