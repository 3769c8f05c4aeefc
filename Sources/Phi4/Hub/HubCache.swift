// The Hugging Face cache on disk, shared with huggingface_hub and llama.cpp: a file downloaded by
// any of them is found by the others. File-system work only (the library never touches the
// network); the downloader (phi4-hub) writes through the same functions.
//
// Layout, under the root (HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub):
//   models--OWNER--NAME/refs/REVISION         the commit hash a branch or tag pointed at
//   models--OWNER--NAME/blobs/ETAG            each file's bytes, named by its ETag (an LFS file's
//                                              sha256); ETAG.incomplete while downloading
//   models--OWNER--NAME/snapshots/COMMIT/PATH relative symbolic links to the blobs
//   .locks/models--OWNER--NAME/ETAG.lock      taken while a blob is written

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A repository in the cache: what `phi4 list` shows.
public struct CachedRepository: Sendable {
    /// `OWNER/NAME`.
    public var repo: String
    /// The repository's folder.
    public var path: String
    /// Bytes of its blobs (complete files only).
    public var size: Int64
    /// Branches and tags with their commits (`main` → hash).
    public var refs: [String: String]
    /// The files of every snapshot, by commit.
    public var snapshots: [String: [HubFile]]
}

/// The Hugging Face cache (see the file's header for its layout).
public struct HubCache: Sendable {
    /// The cache's root folder.
    public let root: String

    /// A cache rooted at `root`.
    public init(root: String) { self.root = root }

    /// The cache huggingface_hub uses with this environment: `HF_HUB_CACHE`, else `HF_HOME/hub`,
    /// else `XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
    public static func fromEnvironment(_ env: [String: String] = HubCache.environment()) -> HubCache {
        if let c = env["HF_HUB_CACHE"], !c.isEmpty { return HubCache(root: expandHome(c, env)) }
        if let h = env["HF_HOME"], !h.isEmpty { return HubCache(root: FileIO.join(expandHome(h, env), "hub")) }
        if let x = env["XDG_CACHE_HOME"], !x.isEmpty { return HubCache(root: FileIO.join(expandHome(x, env), "huggingface/hub")) }
        return HubCache(root: FileIO.join(env["HOME"] ?? "/root", ".cache/huggingface/hub"))
    }

    /// This process's environment variables.
    public static func environment() -> [String: String] {
        var env: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return env
    }

    private static func expandHome(_ path: String, _ env: [String: String]) -> String {
        path.hasPrefix("~/") ? FileIO.join(env["HOME"] ?? "/root", String(path.dropFirst(2))) : path
    }

    /// The repository's folder (`models--OWNER--NAME`).
    public func repositoryFolder(_ repo: String) -> String {
        FileIO.join(root, ModelReference(repo: repo).cacheFolderName)
    }

    /// Where a blob lives.
    public func blobPath(repo: String, etag: String) -> String {
        FileIO.join(repositoryFolder(repo), "blobs/" + etag)
    }

    /// The lock file held while a blob is written.
    public func lockPath(repo: String, etag: String) -> String {
        FileIO.join(root, ".locks/" + ModelReference(repo: repo).cacheFolderName + "/" + etag + ".lock")
    }

    /// A snapshot's folder.
    public func snapshotFolder(repo: String, commit: String) -> String {
        FileIO.join(repositoryFolder(repo), "snapshots/" + commit)
    }

    /// True for a 40-character lower-case hex string (a git commit hash).
    public static func isCommitHash(_ s: String) -> Bool {
        s.utf8.count == 40 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    /// The commit a revision stands for in the cache: a commit hash with a snapshot, or what
    /// `refs/REVISION` holds; nil when the cache has neither.
    public func commit(repo: String, revision: String) -> String? {
        if Self.isCommitHash(revision), FileIO.isDirectory(snapshotFolder(repo: repo, commit: revision)) { return revision }
        guard !revision.contains(".."),
              let bytes = try? FileIO.readAll(FileIO.join(repositoryFolder(repo), "refs/" + revision), limit: 4096)
        else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).filter { !$0.isWhitespace }
        return Self.isCommitHash(text) ? text : nil
    }

    /// Records that `revision` points at `commit` (`refs/REVISION`), unless it is the commit.
    public func writeRef(repo: String, revision: String, commit: String) throws(FileError) {
        guard revision != commit else { return }
        let path = FileIO.join(repositoryFolder(repo), "refs/" + revision)
        try Self.makeDirectories(FileIO.directory(of: path))
        try FileIO.writeAll(path, Array(commit.utf8))
    }

    /// Links `snapshots/COMMIT/PATH` to the blob `etag` by a relative symbolic link, as
    /// huggingface_hub does (replacing an older link).
    public func linkSnapshot(repo: String, commit: String, path: String, etag: String) throws(FileError) {
        guard !path.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }), !path.hasPrefix("/") else {
            throw FileError(path: path, message: "not a repository path")
        }
        let link = FileIO.join(snapshotFolder(repo: repo, commit: commit), path)
        try Self.makeDirectories(FileIO.directory(of: link))
        let depth = path.split(separator: "/").count - 1  // folders below the snapshot
        let target = String(repeating: "../", count: depth + 2) + "blobs/" + etag
        unlink(link)
        if symlink(target, link) != 0 { throw FileError(path: link, message: FileIO.errnoText(errno)) }
    }

    /// The files of a snapshot (recursive), with the sizes of what their links point at.
    public func snapshotFiles(repo: String, commit: String) -> [HubFile] {
        let top = snapshotFolder(repo: repo, commit: commit)
        var out: [HubFile] = []
        func walk(_ dir: String, _ prefix: String) {
            for name in Self.entries(dir) {
                let full = FileIO.join(dir, name)
                if FileIO.isDirectory(full) {
                    walk(full, prefix + name + "/")
                } else if let size = Self.fileSize(full) {
                    out.append(HubFile(path: prefix + name, size: size))
                }
            }
        }
        walk(top, "")
        return out.sorted { $0.path < $1.path }
    }

    /// The local path a reference runs from, when the cache holds the whole model it names: the
    /// first file of a GGUF model, or the snapshot folder of a transformers checkpoint; nil when
    /// the revision, the file or one of the model's files is not in the cache.
    public func localModel(for ref: ModelReference, explicitFile: String? = nil) -> String? {
        guard let commit = commit(repo: ref.repo, revision: ref.revision) else { return nil }
        let files = snapshotFiles(repo: ref.repo, commit: commit)
        guard case .success(let choice) = ref.choose(among: files, explicitFile: explicitFile) else { return nil }
        let folder = snapshotFolder(repo: ref.repo, commit: commit)
        switch choice {
        case .gguf(let paths):
            // every shard must be there (choose() groups the cached shards only)
            if let count = ModelReference.shardBase(paths[0]).count, count != paths.count { return nil }
            return FileIO.join(folder, paths[0])
        case .transformers:
            return folder
        }
    }

    /// Every repository of the cache (model repositories, `models--…`).
    public func repositories() -> [CachedRepository] {
        var out: [CachedRepository] = []
        for name in Self.entries(root) where name.hasPrefix("models--") {
            let rest = Array(name.utf8.dropFirst("models--".count))
            guard let cut = (0..<max(0, rest.count - 1)).first(where: { rest[$0] == 45 && rest[$0 + 1] == 45 }) else { continue }
            let repo = String(decoding: rest[..<cut], as: UTF8.self) + "/" + String(decoding: rest[(cut + 2)...], as: UTF8.self)
            let folder = FileIO.join(root, name)
            var size: Int64 = 0
            for b in Self.entries(FileIO.join(folder, "blobs")) where !b.hasSuffix(".incomplete") {
                size += Self.fileSize(FileIO.join(folder, "blobs/" + b)) ?? 0
            }
            var refs: [String: String] = [:]
            for r in Self.entries(FileIO.join(folder, "refs")) {
                if let c = commit(repo: repo, revision: r) { refs[r] = c }
            }
            var snapshots: [String: [HubFile]] = [:]
            for c in Self.entries(FileIO.join(folder, "snapshots")) { snapshots[c] = snapshotFiles(repo: repo, commit: c) }
            out.append(CachedRepository(repo: repo, path: folder, size: size, refs: refs, snapshots: snapshots))
        }
        return out.sorted { $0.repo < $1.repo }
    }

    /// Deletes a repository from the cache (its folder and its locks); false when it was not there.
    @discardableResult
    public func remove(repo: String) throws(FileError) -> Bool {
        let folder = repositoryFolder(repo)
        guard FileIO.exists(folder) else { return false }
        try Self.removeTree(folder)
        let locks = FileIO.join(root, ".locks/" + ModelReference(repo: repo).cacheFolderName)
        if FileIO.exists(locks) { try Self.removeTree(locks) }
        return true
    }

    // MARK: file-system helpers

    /// The names in a folder (no `.` and `..`); empty when it cannot be read.
    public static func entries(_ dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// The size of the file a path names (following links); nil when it is missing.
    public static func fileSize(_ path: String) -> Int64? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int64(st.st_size)
    }

    /// The folder part of a path.
    public static func parentFolder(of path: String) -> String { FileIO.directory(of: path) }

    /// `mkdir -p`.
    public static func makeDirectories(_ path: String) throws(FileError) {
        if path.isEmpty || FileIO.isDirectory(path) { return }
        try makeDirectories(FileIO.directory(of: path))
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw FileError(path: path, message: FileIO.errnoText(errno)) }
    }

    /// `rm -r` (symbolic links are removed, never followed).
    public static func removeTree(_ path: String) throws(FileError) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in entries(path) { try removeTree(FileIO.join(path, name)) }
            if rmdir(path) != 0 { throw FileError(path: path, message: FileIO.errnoText(errno)) }
        } else if unlink(path) != 0 {
            throw FileError(path: path, message: FileIO.errnoText(errno))
        }
    }
}
