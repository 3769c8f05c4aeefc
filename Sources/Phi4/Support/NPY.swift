#if canImport(Glibc)
import Glibc
#endif

/// Reading and writing float32 NumPy `.npy` files (format version 1.0, little-endian, C order).
package enum NPY {
    /// Writes `values` as a float32 array of `shape` to `path`.
    public static func write(path: String, shape: [Int], values: [Float]) throws(FileError) {
        guard shape.reduce(1, *) == values.count else {
            throw FileError(path: path, message: "shape \(shape) does not match \(values.count) values")
        }
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        // Magic (6) + version (2) + length (2) + header + newline must be a multiple of 64.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let n = UInt16(header.utf8.count)
        bytes += [UInt8(n & 0xFF), UInt8(n >> 8)]
        bytes += Array(header.utf8)
        values.withUnsafeBytes { bytes += $0 }
        guard let f = fopen(path, "wb") else { throw FileError(path: path, message: FileIO.errnoText(errno)) }
        let written = fwrite(bytes, 1, bytes.count, f)
        let closed = fclose(f)
        if written != bytes.count || closed != 0 { throw FileError(path: path, message: "write failed") }
    }

    /// Reads a float32 `.npy` file: its shape and values.
    public static func read(path: String) throws(FileError) -> (shape: [Int], values: [Float]) {
        let bytes = try FileIO.readAll(path)
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else {
            throw FileError(path: path, message: "not a .npy file")
        }
        let major = bytes[6]
        let headerLength = major == 1 ? Int(bytes[8]) | Int(bytes[9]) << 8
            : (bytes.count >= 12 ? Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24 : -1)
        let start = major == 1 ? 10 : 12
        guard headerLength >= 0, start + headerLength <= bytes.count else { throw FileError(path: path, message: "bad header") }
        let header = String(decoding: bytes[start..<(start + headerLength)], as: UTF8.self)
        guard header.contains("'<f4'"), header.contains("'fortran_order': False") else {
            throw FileError(path: path, message: "only little-endian float32 C-order arrays are read")
        }
        guard let open = header.firstIndex(of: "("), let close = header[open...].firstIndex(of: ")") else {
            throw FileError(path: path, message: "no shape")
        }
        let shape = header[header.index(after: open)..<close].split(separator: ",").compactMap {
            Int($0.filter { !$0.isWhitespace })
        }
        let count = shape.reduce(1, *)
        let dataStart = start + headerLength
        guard bytes.count - dataStart == count * 4 else { throw FileError(path: path, message: "data size does not match shape") }
        let values = [Float](unsafeUninitializedCapacity: count) { buf, n in
            bytes.withUnsafeBytes { raw in
                for i in 0..<count { buf[i] = raw.loadUnaligned(fromByteOffset: dataStart + 4 * i, as: Float.self) }
            }
            n = count
        }
        return (shape, values)
    }
}
