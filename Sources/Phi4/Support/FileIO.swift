#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An I/O failure on a named file.
public struct FileError: Error, CustomStringConvertible, Sendable {
    /// The file's path.
    public let path: String
    /// What went wrong.
    public let message: String
    /// A one-line description.
    public var description: String { "\(path): \(message)" }
}

/// Small file-system helpers over the C library (no Foundation).
package enum FileIO {
    /// The C library's text for an errno value.
    package static func errnoText(_ e: Int32) -> String { String(cString: strerror(e)) }

    /// True when `path` names a directory.
    package static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// True when `path` names an existing file or directory.
    package static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    /// True when `a` and `b` name the same existing file (same device and inode).
    package static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    /// Reads a whole regular file, refusing files larger than `limit` bytes.
    package static func readAll(_ path: String, limit: Int = 1 << 31) throws(FileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw FileError(path: path, message: errnoText(errno)) }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw FileError(path: path, message: errnoText(errno)) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw FileError(path: path, message: "is a directory") }
        // Files under /proc and /sys report size 0: read those until end of file.
        let size = Int(st.st_size)
        if size > limit { throw FileError(path: path, message: "file is larger than \(limit) bytes") }
        var out = [UInt8](repeating: 0, count: size > 0 ? size : 4096)
        var done = 0
        while true {
            if done == out.count {
                if size > 0 { break }
                if out.count >= limit { throw FileError(path: path, message: "file is larger than \(limit) bytes") }
                out += [UInt8](repeating: 0, count: min(out.count, limit - out.count))
            }
            let want = out.count - done
            let r = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, want) }
            if r < 0 {
                if errno == EINTR { continue }
                throw FileError(path: path, message: errnoText(errno))
            }
            if r == 0 { break }
            done += r
        }
        if done < out.count { out.removeLast(out.count - done) }
        return out
    }

    /// Joins two path components with one slash.
    /// Writes `bytes` to `path` through a temporary file renamed into place, so a reader never
    /// sees a partial file.
    package static func writeAll(_ path: String, _ bytes: [UInt8]) throws(FileError) {
        let tmp = path + ".tmp\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw FileError(path: tmp, message: errnoText(errno)) }
        var done = 0
        while done < bytes.count {
            let r = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if r < 0 {
                if errno == EINTR { continue }
                let e = errno
                close(fd)
                unlink(tmp)
                throw FileError(path: tmp, message: errnoText(e))
            }
            done += r
        }
        if close(fd) != 0 || rename(tmp, path) != 0 {
            let e = errno
            unlink(tmp)
            throw FileError(path: path, message: errnoText(e))
        }
    }

    package static func join(_ a: String, _ b: String) -> String {
        a.hasSuffix("/") ? a + b : a + "/" + b
    }

    /// The directory part of a path ("." when there is none).
    package static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }
}
