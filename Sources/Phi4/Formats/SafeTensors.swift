#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file, unmapped when released.
// @unchecked Sendable: a read-only mapping, never written after init and unmapped in deinit.
package final class MappedFile: @unchecked Sendable {
    /// The file's path.
    public let path: String
    /// The mapped bytes.
    public let bytes: UnsafeRawBufferPointer

    /// Maps `path` read-only.
    public init(path: String) throws(ModelError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .io("\(path): \(FileIO.errnoText(errno))") }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw .io("\(path): \(FileIO.errnoText(errno))") }
        if (st.st_mode & S_IFMT) != S_IFREG { throw .io("\(path): not a regular file") }
        let size = Int(st.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        if p == MAP_FAILED || p == nil { throw .io("\(path): mmap failed: \(FileIO.errnoText(errno))") }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

/// The element types a safetensors tensor may have (those libphi4 reads).
public enum TensorDType: String, Sendable {
    /// IEEE float32.
    case f32 = "F32"
    /// IEEE float16.
    case f16 = "F16"
    /// bfloat16.
    case bf16 = "BF16"

    /// Bytes per element.
    public var size: Int { self == .f32 ? 4 : 2 }
}

/// One tensor of a safetensors file: its type, shape and bytes (inside the mapping).
// @unchecked Sendable: `data` points into a read-only mapping that `file` keeps alive.
public struct TensorInfo: @unchecked Sendable {
    /// The tensor's name, e.g. `model.layers.0.self_attn.qkv_proj.weight`.
    public let name: String
    /// Element type.
    public let dtype: TensorDType
    /// Shape, outermost first (HF linear weights are `[out, in]`).
    public let shape: [Int]
    /// The tensor's bytes.
    public let data: UnsafeRawBufferPointer
    /// The mapping that owns `data`.
    package let file: MappedFile

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
}

/// A reader for the safetensors format: an 8-byte little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`, then the data.
///
/// Every header field is validated before use: the JSON is well formed, offsets lie inside the
/// file, each tensor's byte length equals its shape times its element size, and no two tensors
/// overlap. A broken file is a ``ModelError/invalidWeights(_:)``, never a trap.
public struct SafeTensorsFile: Sendable {
    /// The tensors by name.
    public let tensors: [String: TensorInfo]
    /// The mapping.
    package let file: MappedFile

    /// Opens and validates one `.safetensors` file.
    public init(path: String) throws(ModelError) {
        let file = try MappedFile(path: path)
        self.file = file
        let bytes = file.bytes
        guard bytes.count >= 8 else { throw .invalidWeights("\(path): file is too short for a safetensors header (\(bytes.count) bytes)") }
        let headerLength = bytes.loadUnaligned(as: UInt64.self).littleEndian
        guard headerLength >= 2, headerLength <= UInt64(bytes.count - 8), headerLength <= 100_000_000 else {
            throw .invalidWeights("\(path): header length \(headerLength) does not fit the file (\(bytes.count) bytes)")
        }
        let dataStart = 8 + Int(headerLength)
        let dataSize = bytes.count - dataStart
        let headerBytes = UnsafeBufferPointer(start: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self) + 8,
                                              count: Int(headerLength))
        let header: JSONValue
        do { header = try JSONParser.parse(headerBytes) } catch {
            throw .invalidWeights("\(path): header is not valid JSON: \(error.description)")
        }
        guard let entries = header.objectValue else { throw .invalidWeights("\(path): header is not a JSON object") }

        var tensors: [String: TensorInfo] = [:]
        var ranges: [(Int, Int, String)] = []
        for (name, entry) in entries where name != "__metadata__" {
            guard let dtypeName = entry["dtype"]?.stringValue else { throw .invalidWeights("\(path): tensor \(name) has no dtype") }
            guard let dtype = TensorDType(rawValue: dtypeName) else {
                throw .invalidWeights("\(path): tensor \(name) has unsupported dtype \(dtypeName) (F32, F16 and BF16 are read)")
            }
            guard let shapeValues = entry["shape"]?.arrayValue else { throw .invalidWeights("\(path): tensor \(name) has no shape") }
            var shape: [Int] = []
            var count = 1
            for v in shapeValues {
                guard let d = v.intValue, d >= 0, d < 1 << 40 else { throw .invalidWeights("\(path): tensor \(name) has an invalid shape") }
                let (c, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow, c < 1 << 40 else { throw .invalidWeights("\(path): tensor \(name) is too large") }
                count = c
                shape.append(d)
            }
            guard let offsets = entry["data_offsets"]?.arrayValue, offsets.count == 2,
                  let begin = offsets[0].intValue, let end = offsets[1].intValue else {
                throw .invalidWeights("\(path): tensor \(name) has no valid data_offsets")
            }
            guard begin >= 0, end >= begin, end <= dataSize else {
                throw .invalidWeights("\(path): tensor \(name) data_offsets [\(begin), \(end)] lie outside the \(dataSize) data bytes")
            }
            guard end - begin == count * dtype.size else {
                throw .invalidWeights("\(path): tensor \(name) has \(end - begin) bytes but shape \(shape) of \(dtypeName) needs \(count * dtype.size)")
            }
            let data = UnsafeRawBufferPointer(rebasing: bytes[(dataStart + begin)..<(dataStart + end)])
            tensors[name] = TensorInfo(name: name, dtype: dtype, shape: shape, data: data, file: file)
            if end > begin { ranges.append((begin, end, name)) }
        }
        ranges.sort { $0.0 < $1.0 }
        for i in 1..<max(1, ranges.count) where ranges[i].0 < ranges[i - 1].1 {
            throw .invalidWeights("\(path): tensors \(ranges[i - 1].2) and \(ranges[i].2) overlap")
        }
        self.tensors = tensors
    }
}

/// All tensors of an HF checkpoint directory: `model.safetensors`, or the shards listed in
/// `model.safetensors.index.json`.
public struct SafeTensorsCheckpoint: Sendable {
    /// Tensors by name, across all shards.
    public let tensors: [String: TensorInfo]

    /// Opens the checkpoint in `directory`.
    public init(directory: String) throws(ModelError) {
        let index = FileIO.join(directory, "model.safetensors.index.json")
        var files: [String] = []
        var expected: [String: String] = [:]
        if FileIO.exists(index) {
            let json: JSONValue
            do {
                json = try JSONParser.parse(try FileIO.readAll(index, limit: 1 << 28))
            } catch let e as FileError {
                throw .io(e.description)
            } catch {
                throw .invalidWeights("\(index): \(error)")
            }
            guard let map = json["weight_map"]?.objectValue else { throw .invalidWeights("\(index): no weight_map object") }
            for (name, fileValue) in map {
                guard let file = fileValue.stringValue, !file.contains("/"), !file.isEmpty else {
                    throw .invalidWeights("\(index): invalid shard name for \(name)")
                }
                expected[name] = file
                if !files.contains(file) { files.append(file) }
            }
            files.sort()
        } else {
            let single = FileIO.join(directory, "model.safetensors")
            guard FileIO.exists(single) else {
                throw .io("\(directory): no model.safetensors or model.safetensors.index.json")
            }
            files = ["model.safetensors"]
        }
        var all: [String: TensorInfo] = [:]
        for file in files {
            let shard = try SafeTensorsFile(path: FileIO.join(directory, file))
            for (name, t) in shard.tensors {
                if all[name] != nil { throw .invalidWeights("tensor \(name) appears in two shards") }
                if let want = expected[name], want != file {
                    throw .invalidWeights("tensor \(name) is in \(file) but the index says \(want)")
                }
                all[name] = t
            }
        }
        for (name, file) in expected where all[name] == nil {
            throw .missingTensor("\(name) (the index places it in \(file), which does not contain it)")
        }
        tensors = all
    }
}
