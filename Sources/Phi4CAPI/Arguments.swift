// Argument checks and output buffers shared by the C entry points, and the versioned params
// structs (see "Params structs" in include/phi4.h).

import CPhi4ABI
import CPhi4Kernels
import Phi4

#if canImport(Glibc)
import Glibc
#endif

/// The largest count accepted for any array argument (guards against garbage sizes).
let maxCount = 1 << 28

func count(_ n: Int, _ what: String) throws -> Int {
    guard n >= 0 && n <= maxCount else { throw ABIError.invalid("\(what) \(n) is out of range") }
    return n
}

/// A NUL-terminated UTF-8 string argument.
func string(_ p: UnsafePointer<CChar>?, _ what: String) throws -> String {
    guard let p else { throw ABIError.invalid("\(what) is NULL") }
    guard let s = String(validatingCString: p) else { throw ABIError.invalid("\(what) is not valid UTF-8") }
    return s
}

/// `n` token ids from a caller's array.
func ids(_ p: UnsafePointer<Int32>?, _ n: Int, _ what: String) throws -> [TokenID] {
    let n = try count(n, what)
    if n == 0 { return [] }
    guard let p else { throw ABIError.invalid("\(what) is NULL") }
    return Array(UnsafeBufferPointer(start: p, count: n))
}

// MARK: - Params structs
//
// A params struct begins with `struct_size`, the caller's sizeof. The init functions write the
// defaults through that size, and the functions taking params read through it: a struct from an
// older header (smaller) gets defaults for the fields it lacks, one from a newer header (larger)
// is accepted when the bytes this library does not know are all zero. Nothing is ever read or
// written past `struct_size` bytes.

/// The largest `struct_size` accepted: far above any real struct, well below a garbage value.
let maxParamsSize = 1 << 16

/// Checks a caller's `struct_size` for a struct named `name`.
func checkedSize(_ size: Int, _ name: String) throws -> Int {
    guard size >= MemoryLayout<Int>.size && size <= maxParamsSize else {
        throw ABIError.invalid("\(name).struct_size \(size) is invalid (initialise it with \(name)_init(&params, sizeof params))")
    }
    return size
}

/// Writes `defaults` into the caller's struct of `size` bytes: the fields within `size`, zeros past
/// this library's struct, and `struct_size = size`.
func initParams<T>(_ p: UnsafeMutablePointer<T>?, _ size: Int, _ name: String, defaults: T) -> phi4_status {
    guarded {
        guard let p else { throw ABIError.invalid("\(name) pointer is NULL") }
        let size = try checkedSize(size, name)
        let known = MemoryLayout<T>.size
        var value = defaults
        withUnsafeBytes(of: &value) { src in
            let dst = UnsafeMutableRawPointer(p)
            dst.copyMemory(from: src.baseAddress!, byteCount: min(size, known))
            if size > known { dst.advanced(by: known).initializeMemory(as: UInt8.self, repeating: 0, count: size - known) }
            dst.storeBytes(of: size, as: Int.self)
        }
    }
}

/// Reads a caller's params struct (NULL: `defaults`): the fields within its `struct_size`, the
/// defaults for the rest. A larger struct whose unknown tail is not all zero is
/// PHI4_ERR_UNSUPPORTED, naming both sizes.
func readParams<T>(_ p: UnsafePointer<T>?, _ name: String, defaults: T) throws -> T {
    guard let p else { return defaults }
    let raw = UnsafeRawPointer(p)
    let size = try checkedSize(raw.loadUnaligned(as: Int.self), name)
    let known = MemoryLayout<T>.size
    if size > known && UnsafeRawBufferPointer(start: raw + known, count: size - known).contains(where: { $0 != 0 }) {
        throw ABIError(status: phi4_status(PHI4_ERR_UNSUPPORTED.rawValue), message:
            "\(name).struct_size is \(size) bytes, this library's struct has \(known), and the \(size - known) bytes past it are not zero: they are fields of a newer header that libphi4 \(Phi4Version.string) does not know")
    }
    var out = defaults
    withUnsafeMutableBytes(of: &out) { dst in
        dst.baseAddress!.copyMemory(from: raw, byteCount: min(size, known))
        dst.storeBytes(of: known, as: Int.self)
    }
    return out
}

/// Writes ids to a caller's buffer, reporting the needed count.
func writeIDs(_ list: [TokenID], _ out: UnsafeMutablePointer<Int32>?, _ capacity: Int, _ n: UnsafeMutablePointer<Int>?) throws {
    guard let n else { throw ABIError.invalid("the count pointer is NULL") }
    n.pointee = list.count
    if list.count > capacity { throw ABIError.tooSmall("\(list.count) ids do not fit in a buffer of \(capacity)") }
    if list.isEmpty { return }
    guard let out else { throw ABIError.invalid("the output buffer is NULL") }
    list.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: list.count) }
}

/// Writes bytes to a caller's buffer (NUL-terminated when there is room, if asked).
func writeBytes(_ bytes: [UInt8], _ out: UnsafeMutablePointer<CChar>?, _ capacity: Int, _ n: UnsafeMutablePointer<Int>?, nul: Bool) throws {
    guard let n else { throw ABIError.invalid("the length pointer is NULL") }
    n.pointee = bytes.count
    if bytes.count > capacity { throw ABIError.tooSmall("\(bytes.count) bytes do not fit in a buffer of \(capacity)") }
    guard let out else {
        if bytes.isEmpty && capacity == 0 { return }
        throw ABIError.invalid("the output buffer is NULL")
    }
    bytes.withUnsafeBytes { src in
        if !bytes.isEmpty { UnsafeMutableRawPointer(out).copyMemory(from: src.baseAddress!, byteCount: bytes.count) }
    }
    if nul && bytes.count < capacity { out[bytes.count] = 0 }
}

/// Writes an output struct (one whose `struct_size` the caller set, like phi4_model_info): the
/// fields the caller's struct has room for, zeros past this library's struct (a newer header's
/// fields); its struct_size stays as it is.
func writeOutput<T>(_ value: T, to p: UnsafeMutablePointer<T>?, _ name: String) throws {
    guard let p else { throw ABIError.invalid("\(name) pointer is NULL") }
    let size = try checkedSize(UnsafeRawPointer(p).loadUnaligned(as: Int.self), name)
    let header = MemoryLayout<Int>.size
    let known = MemoryLayout<T>.size
    let dst = UnsafeMutableRawPointer(p)
    var v = value
    withUnsafeBytes(of: &v) { src in
        dst.advanced(by: header).copyMemory(from: src.baseAddress! + header, byteCount: min(size, known) - header)
    }
    if size > known { dst.advanced(by: known).initializeMemory(as: UInt8.self, repeating: 0, count: size - known) }
}
