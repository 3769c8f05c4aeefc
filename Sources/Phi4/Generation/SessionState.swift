// A session's saved state: its tokens and KV cache as bytes (a versioned, checksummed binary
// format bound to the model's fingerprint), to a buffer or a file, and back.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CPhi4Kernels

extension Session {

    private static func stateCode(_ t: KVCacheType) -> UInt32 {
        switch t {
        case .f32: return 0
        case .f16: return 1
        case .q8_0: return 2
        }
    }

    private static let stateMagic: UInt32 = 0x5453_3450  // "P4ST"
    private static let stateVersion: UInt32 = 2  // 2: KV data head by head (1: position by position)

    /// The context's state — its tokens and their KV cache — as bytes: a versioned header with the
    /// model's ``Model/fingerprint``, then the data, then an FNV-1a checksum of everything before.
    /// ``restoreState(_:)`` puts it back into a session on the same model; generation then goes on
    /// exactly as it would have in this one.
    public func saveState() -> [UInt8] {
        var out: [UInt8] = []
        let n = tokens.count
        out.reserveCapacity(40 + 4 * n + 2 * cache.layerCount * cache.headCount * cache.headBytes(n))
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        put(Session.stateMagic)
        put(Session.stateVersion)
        put(model.fingerprint)
        put(Session.stateCode(cache.type))
        put(UInt32(cache.layerCount))
        put(UInt32(cache.kvDim))
        put(UInt32(n))
        for t in tokens { put(t) }
        for l in 0..<cache.layerCount {
            for v in [false, true] {
                for h in 0..<cache.headCount {
                    out.append(contentsOf: UnsafeRawBufferPointer(start: cache.head(layer: l, head: h, values: v), count: cache.headBytes(n)))
                }
            }
        }
        var h = FNV1a()
        out.withUnsafeBytes { h.add($0) }
        put(h.value)
        return out
    }

    /// Writes ``saveState()`` to a file (through a temporary file renamed into place).
    public func saveState(path: String) throws(ModelError) {
        do { try FileIO.writeAll(path, saveState()) } catch { throw .io(error.description) }
    }

    /// Restores a state written by ``saveState(path:)``.
    public func restoreState(path: String) throws(ModelError) {
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(path) } catch { throw .io(error.description) }
        try restoreState(bytes)
    }

    /// Replaces the context's tokens and KV cache with a state from ``saveState()``.
    /// - Throws: ``ModelError/invalidRequest(_:)`` when the bytes are not a state, are corrupted
    ///   (checksum), come from another model (fingerprint) or another cache type, or hold more
    ///   tokens than this context; the session is unchanged then.
    public func restoreState(_ bytes: [UInt8]) throws(ModelError) {
        let outcome = bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> ModelError? in
            do throws(ModelError) {
                try restoreState(raw)
                return nil
            } catch {
                return error
            }
        }
        if let outcome { throw outcome }
    }

    private func restoreState(_ raw: UnsafeRawBufferPointer) throws(ModelError) {
        var at = 0
        func get<T: FixedWidthInteger>(_: T.Type) throws(ModelError) -> T {
            guard at + MemoryLayout<T>.size <= raw.count else { throw .invalidRequest("the saved state is truncated") }
            var v = T.zero
            withUnsafeMutableBytes(of: &v) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[at..<(at + MemoryLayout<T>.size)])) }
            at += MemoryLayout<T>.size
            return T(littleEndian: v)
        }
        guard try get(UInt32.self) == Session.stateMagic else { throw .invalidRequest("not a saved context state") }
        let version = try get(UInt32.self)
        guard version == Session.stateVersion else { throw .invalidRequest("saved state version \(version) (this library reads \(Session.stateVersion))") }
        guard try get(UInt64.self) == model.fingerprint else { throw .invalidRequest("the saved state belongs to another model") }
        let type = try get(UInt32.self)
        guard type == Session.stateCode(cache.type) else { throw .invalidRequest("the saved state has another KV cache type") }
        guard try get(UInt32.self) == UInt32(cache.layerCount), try get(UInt32.self) == UInt32(cache.kvDim) else {
            throw .invalidRequest("the saved state has another model shape")
        }
        let n = Int(try get(UInt32.self))
        guard n <= cache.capacity else {
            throw .invalidRequest("the saved state holds \(n) tokens; this context holds \(cache.capacity)")
        }
        let dataStart = at + 4 * n
        let dataBytes = 2 * cache.layerCount * cache.headCount * cache.headBytes(n)
        guard raw.count == dataStart + dataBytes + 8 else { throw .invalidRequest("the saved state has the wrong size") }
        var h = FNV1a()
        h.add(UnsafeRawBufferPointer(rebasing: raw[0..<(dataStart + dataBytes)]))
        at = dataStart + dataBytes
        guard try get(UInt64.self) == h.value else { throw .invalidRequest("the saved state is corrupted (checksum)") }
        at = dataStart - 4 * n
        var ids: [TokenID] = []
        ids.reserveCapacity(n)
        for _ in 0..<n {
            let id = try get(Int32.self)
            guard id >= 0 && Int(id) < model.config.vocabSize else { throw .invalidRequest("the saved state has token \(id)") }
            ids.append(id)
        }
        // Everything checked: copy.
        var src = dataStart
        let hb = cache.headBytes(n)
        for l in 0..<cache.layerCount {
            for v in [false, true] {
                for h in 0..<cache.headCount {
                    cache.head(layer: l, head: h, values: v).copyMemory(from: raw.baseAddress! + src, byteCount: hb)
                    src += hb
                }
            }
        }
        cache.count = n
        tokens = ids
        // With LongRoPE a context past the threshold was rotated with the long factors (Session
        // re-evaluates it when it first passes); one below it with the short ones.
        cache.rotatedLong = model.config.longRoPE?.usesLongFactors(length: n) ?? false
    }
}
