// Downloads models from the Hugging Face Hub into the cache huggingface_hub and llama.cpp share
// (HubCache, in the engine library, owns the layout). The protocol as huggingface_hub speaks it:
//
//   listing   GET  {endpoint}/api/models/{repo}/revision/{revision}?blobs=true
//             → {"sha": commit, "siblings": [{"rfilename", "size", "lfs": {"sha256", "size"}}]}
//   metadata  HEAD {endpoint}/{repo}/resolve/{commit}/{path}, redirects not followed across hosts:
//             X-Repo-Commit, X-Linked-Etag (else ETag), X-Linked-Size (else Content-Length), and
//             the Location of the file's bytes (often another host: a CDN)
//   bytes     GET on that location, `Range: bytes=N-` to resume a `.incomplete` blob
//
// A blob is named by its ETag (an LFS file's is its sha256, which is verified before the blob
// enters the cache); a lock in `.locks/` (flock, as huggingface_hub's filelock takes it) keeps two
// downloads of one blob from colliding; the token (HF_TOKEN, else the token file) goes to the
// endpoint's host only, never to the host a redirect names.

import AsyncHTTPClient
import CSHA256
import NIOCore
import NIOHTTP1
import NIOSSL
import Phi4

#if canImport(Glibc)
import Glibc
#endif

/// A download failure, with what to do about it.
public struct HubError: Error, CustomStringConvertible, Sendable {
    /// The message shown to the user.
    public let description: String
    init(_ message: String) { description = message }
}

/// Where and how to reach the Hub, from the environment as huggingface_hub reads it.
public struct HubSettings: Sendable {
    /// `HF_ENDPOINT` (default `https://huggingface.co`), without a trailing slash.
    public var endpoint: String
    /// `HF_TOKEN`, else the token file (`HF_TOKEN_PATH`, else `HF_HOME/token`, else
    /// `~/.cache/huggingface/token`).
    public var token: String?
    /// `HF_HUB_OFFLINE=1`: use the cache only, make no request.
    public var offline: Bool
    /// `HTTPS_PROXY` / `https_proxy` as host and port (a CONNECT proxy).
    public var proxy: (host: String, port: Int)?
    /// `SSL_CERT_FILE`: trust these certificates instead of the system's.
    public var caFile: String?
    /// The cache downloads go to.
    public var cache: HubCache

    /// The settings this process's environment gives.
    public static func fromEnvironment(_ env: [String: String] = HubCache.environment()) -> HubSettings {
        var endpoint = env["HF_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://huggingface.co"
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        var token = env["HF_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        if token == nil {
            let home = env["HOME"] ?? "/root"
            let path = env["HF_TOKEN_PATH"]
                ?? env["HF_HOME"].map { $0 + "/token" } ?? (env["XDG_CACHE_HOME"] ?? home + "/.cache") + "/huggingface/token"
            if let bytes = try? readSmallFile(path) {
                let t = String(decoding: bytes, as: UTF8.self).filter { !$0.isWhitespace }
                if !t.isEmpty { token = t }
            }
        }
        let offlineValue = (env["HF_HUB_OFFLINE"] ?? "").lowercased()
        var proxy: (String, Int)?
        if let p = env["HTTPS_PROXY"] ?? env["https_proxy"], !p.isEmpty, let hp = hostPort(p) { proxy = hp }
        return HubSettings(endpoint: endpoint, token: token, offline: ["1", "true", "yes", "on"].contains(offlineValue),
                           proxy: proxy, caFile: env["SSL_CERT_FILE"].flatMap { $0.isEmpty ? nil : $0 },
                           cache: HubCache.fromEnvironment(env))
    }

    static func hostPort(_ url: String) -> (String, Int)? {
        var s = Substring(url)
        if let r = schemeEnd(s) { s = s[r...] }
        if let at = s.lastIndex(of: "@") { s = s[s.index(after: at)...] }
        if let slash = s.firstIndex(of: "/") { s = s[..<slash] }
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]) else { return s.isEmpty ? nil : (String(s), 80) }
        return (String(s[..<colon]), port)
    }
}

/// Where the text after `://` starts.
func schemeEnd(_ s: Substring) -> String.Index? {
    var i = s.startIndex
    while i < s.endIndex {
        if s[i...].hasPrefix("://") { return s.index(i, offsetBy: 3) }
        i = s.index(after: i)
    }
    return nil
}

private func readSmallFile(_ path: String) throws -> [UInt8] {
    guard let f = fopen(path, "rb") else { throw HubError("cannot read \(path)") }
    defer { fclose(f) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n <= 0 { break }
        out += buf[0..<n]
        if out.count > 1 << 20 { break }
    }
    return out
}

/// What a download reports as it goes: bytes done, bytes in all (nil when unknown), the file.
public typealias HubProgress = @Sendable (_ done: Int64, _ total: Int64?, _ file: String) -> Void

/// Downloads models into the Hugging Face cache.
public final class HubClient: Sendable {
    /// The settings in force.
    public let settings: HubSettings
    private let http: HTTPClient

    /// A client with `settings` (the environment's by default).
    public init(settings: HubSettings = .fromEnvironment()) throws {
        self.settings = settings
        var config = HTTPClient.Configuration()
        config.redirectConfiguration = .disallow  // followed here: the token must not cross hosts
        config.timeout = .init(connect: .seconds(20), read: .seconds(60))
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = settings.caFile { tls.trustRoots = .file(ca) }
        config.tlsConfiguration = tls
        if let p = settings.proxy { config.proxy = .server(host: p.host, port: p.port) }
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    /// Closes the connections.
    public func shutdown() async { try? await http.shutdown() }

    private func host(_ url: String) -> String {
        guard let r = schemeEnd(Substring(url)) else { return "" }
        let rest = url[r...]
        return String(rest[..<(rest.firstIndex(of: "/") ?? rest.endIndex)]).lowercased()
    }

    private static func encodePath(_ path: String) -> String {
        var out = ""
        for b in path.utf8 {
            let c = Character(UnicodeScalar(b))
            if (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || "-._~/".contains(c) {
                out.append(c)
            } else {
                out += "%" + String(b, radix: 16, uppercase: true).leftPad(2)
            }
        }
        return out
    }

    /// Sends a request, following redirects by hand (at most 10): the token goes only to the
    /// endpoint's host. Returns the last response and the URL it leads to: with `stopAtOtherHost`,
    /// a redirect to another host is not followed — its response (which carries the file's
    /// X-Linked-* metadata) and its Location come back.
    private func send(_ method: HTTPMethod, _ url: String, headers extra: [(String, String)] = [],
                      stopAtOtherHost: Bool = false, timeout: TimeAmount = .seconds(60)) async throws
        -> (HTTPClientResponse, String) {
        var url = url
        let home = host(settings.endpoint)
        for _ in 0..<10 {
            var req = HTTPClientRequest(url: url)
            req.method = method
            req.headers.add(name: "User-Agent", value: "phi4/\(Phi4Version.string); hf_hub-compatible")
            if let token = settings.token, host(url) == home { req.headers.add(name: "Authorization", value: "Bearer \(token)") }
            for (k, v) in extra { req.headers.add(name: k, value: v) }
            let resp: HTTPClientResponse
            do { resp = try await http.execute(req, timeout: timeout) } catch {
                throw HubError("cannot reach \(host(url)): \(error)")
            }
            guard (300..<400).contains(Int(resp.status.code)), resp.status.code != 304,
                  let location = resp.headers.first(name: "Location") else { return (resp, url) }
            let next: String
            if location.hasPrefix("/") {
                let scheme = url.hasPrefix("https://") ? "https://" : "http://"
                next = scheme + host(url) + location
            } else {
                next = location
            }
            if stopAtOtherHost && host(next) != host(url) { return (resp, next) }
            url = next
        }
        throw HubError("too many redirects from \(url)")
    }

    private func refusal(_ status: HTTPResponseStatus, repo: String, what: String) -> HubError {
        switch status.code {
        case 401:
            return HubError(settings.token == nil
                ? "\(repo): 401 Unauthorized — this repository needs a Hugging Face token: set HF_TOKEN or log in with `hf auth login` (huggingface_hub)"
                : "\(repo): 401 Unauthorized — the token was refused; check HF_TOKEN or the token file")
        case 403:
            return HubError("\(repo): 403 Forbidden — the repository is gated: accept its conditions on its page (\(settings.endpoint)/\(repo)) with the account of your token, then try again")
        case 404:
            return HubError("\(repo): 404 — no such repository, revision or file (\(what))")
        default:
            return HubError("\(repo): HTTP \(status.code) \(status.reasonPhrase) for \(what)")
        }
    }

    /// The commit a revision points at and the repository's files.
    func listing(repo: String, revision: String) async throws -> HubListing {
        let url = "\(settings.endpoint)/api/models/\(repo)/revision/\(Self.encodePath(revision))?blobs=true"
        let (resp, _) = try await send(.GET, url)
        guard resp.status == .ok else { throw refusal(resp.status, repo: repo, what: "the file listing") }
        var body = try await resp.body.collect(upTo: 64 << 20)
        do { return try HubListing.parse(body.readBytes(length: body.readableBytes) ?? []) } catch {
            throw HubError("\(repo): \(error)")
        }
    }

    /// Downloads what `ref` names (the file `hfFile` when given) unless the cache has it; returns
    /// the local path to run (as ``HubCache/localModel(for:explicitFile:)``).
    public func pull(_ ref: ModelReference, hfFile: String? = nil, progress: HubProgress? = nil) async throws -> String {
        let cache = settings.cache
        if settings.offline {
            if let local = cache.localModel(for: ref, explicitFile: hfFile) { return local }
            throw HubError("\(ref) is not in the Hugging Face cache (\(cache.root)) and HF_HUB_OFFLINE is set")
        }
        let listing = try await listing(repo: ref.repo, revision: ref.revision)
        let commit = listing.commit, listed = listing.files
        let choice: ModelChoice
        switch ref.choose(among: listed, explicitFile: hfFile) {
        case .success(let c): choice = c
        case .failure(let e): throw HubError(e.description)
        }
        let paths: [String]
        switch choice {
        case .gguf(let f): paths = f
        case .transformers(let f): paths = f
        }
        let byPath = Dictionary(listed.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        // free space, before any transfer: what is not yet in the snapshot
        let snapshot = cache.snapshotFolder(repo: ref.repo, commit: commit)
        let missing = paths.filter { HubCache.fileSize(snapshot + "/" + $0) == nil }
        let need = missing.compactMap { byPath[$0]?.size }.reduce(0, +)
        try HubCache.makeDirectories(cache.repositoryFolder(ref.repo) + "/blobs")
        var vfs = statvfs()
        if statvfs(cache.repositoryFolder(ref.repo) + "/blobs", &vfs) == 0 {
            let free = Int64(vfs.f_bavail) * Int64(vfs.f_frsize)
            if need > free {
                throw HubError("not enough disk space for \(ref): \(gb(need)) to download, \(gb(free)) free in \(cache.root)")
            }
        }
        for path in missing {
            try await download(repo: ref.repo, commit: commit, path: path, listed: byPath[path], progress: progress)
        }
        try cache.writeRef(repo: ref.repo, revision: ref.revision, commit: commit)
        guard let local = cache.localModel(for: ModelReference(repo: ref.repo, quant: ref.quant, revision: commit),
                                           explicitFile: hfFile) else {
            throw HubError("\(ref): downloaded, but the cache does not hold the whole model")
        }
        return local
    }

    /// One file into the cache: metadata, then the blob (resumed when a partial one is there,
    /// verified against its sha256), then the snapshot link.
    func download(repo: String, commit: String, path: String, listed: HubFile?, progress: HubProgress?) async throws {
        let cache = settings.cache
        let url = "\(settings.endpoint)/\(repo)/resolve/\(commit)/\(Self.encodePath(path))"
        let (meta, location) = try await send(.HEAD, url, stopAtOtherHost: true)
        guard (200..<400).contains(Int(meta.status.code)) else { throw refusal(meta.status, repo: repo, what: path) }
        var etag = meta.headers.first(name: "X-Linked-Etag") ?? meta.headers.first(name: "ETag") ?? ""
        if etag.hasPrefix("W/") { etag.removeFirst(2) }
        etag = etag.filter { $0 != "\"" }
        guard !etag.isEmpty, !etag.contains("/"), !etag.contains("..") else { throw HubError("\(repo)/\(path): the Hub sent no usable ETag") }
        if let c = meta.headers.first(name: "X-Repo-Commit"), HubCache.isCommitHash(c), c != commit {
            throw HubError("\(repo)/\(path): the Hub answered for commit \(c), not \(commit)")
        }
        let size = (meta.headers.first(name: "X-Linked-Size") ?? meta.headers.first(name: "Content-Length")).flatMap { Int64($0) }
            ?? listed?.size
        let expectedSHA = Self.isSHA256(etag) ? etag : listed?.sha256.flatMap { Self.isSHA256($0) ? $0 : nil }
        let blob = cache.blobPath(repo: repo, etag: etag)
        if HubCache.fileSize(blob) == nil {
            let lock = cache.lockPath(repo: repo, etag: etag)
            try HubCache.makeDirectories(HubCache.parentFolder(of: lock))
            let lfd = open(lock, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
            guard lfd >= 0 else { throw HubError("cannot open the lock \(lock)") }
            defer { close(lfd) }
            while flock(lfd, LOCK_EX | LOCK_NB) != 0 {  // another download of this blob: wait for it
                try await Task.sleep(nanoseconds: 200_000_000)
            }
            defer { flock(lfd, LOCK_UN) }
            if HubCache.fileSize(blob) == nil {
                try await fetchBlob(from: location, blob: blob, size: size, sha256: expectedSHA, name: path, progress: progress)
            }
        }
        try cache.linkSnapshot(repo: repo, commit: commit, path: path, etag: etag)
    }

    static func isSHA256(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    private func fetchBlob(from url: String, blob: String, size: Int64?, sha256: String?, name: String,
                           progress: HubProgress?) async throws {
        let partial = blob + ".incomplete"
        var offset = HubCache.fileSize(partial) ?? 0
        if let size, offset > size { unlink(partial); offset = 0 }
        var hasher = p4h_sha256()
        p4h_sha256_init(&hasher)
        let fd = open(partial, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw HubError("cannot write \(partial): \(String(cString: strerror(errno)))") }
        var closed = false
        defer { if !closed { close(fd) } }
        if offset > 0 {  // the bytes already there go into the hash first
            var buf = [UInt8](repeating: 0, count: 1 << 20)
            var done: Int64 = 0
            while done < offset {
                let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, Int(offset - done))) }
                if n <= 0 { break }
                buf.withUnsafeBytes { p4h_sha256_update(&hasher, $0.baseAddress, n) }
                done += Int64(n)
            }
            offset = done
        }
        var written = offset
        if size == nil || offset < size! {
            let headers = offset > 0 ? [("Range", "bytes=\(offset)-")] : []
            let (resp, _) = try await send(.GET, url, headers: headers, timeout: .hours(48))
            switch resp.status.code {
            case 206:
                break
            case 200:
                if offset > 0 {  // the server ignored the Range: start over
                    ftruncate(fd, 0)
                    lseek(fd, 0, SEEK_SET)
                    p4h_sha256_init(&hasher)
                    written = 0
                }
            default:
                throw HubError("\(name): HTTP \(resp.status.code) \(resp.status.reasonPhrase) while downloading")
            }
            lseek(fd, off_t(written), SEEK_SET)
            var reported: Int64 = -1
            for try await chunk in resp.body {
                try chunk.withUnsafeReadableBytes { raw in
                    var p = raw.baseAddress!, left = raw.count
                    p4h_sha256_update(&hasher, p, left)
                    while left > 0 {
                        let n = write(fd, p, left)
                        if n <= 0 { throw HubError("cannot write \(partial): \(String(cString: strerror(errno)))") }
                        p += n
                        left -= n
                    }
                }
                written += Int64(chunk.readableBytes)
                if let progress, written - reported >= 1 << 20 || written == size {
                    progress(written, size, name)
                    reported = written
                }
            }
        }
        close(fd)
        closed = true
        if let size, written != size {
            throw HubError("\(name): the transfer ended at \(written) of \(size) bytes; run the same command again to resume")
        }
        var digest = [UInt8](repeating: 0, count: 32)
        p4h_sha256_final(&hasher, &digest)
        let hex = digest.map { String($0, radix: 16).leftPad(2) }.joined()
        if let sha256, hex != sha256 {
            unlink(partial)
            throw HubError("\(name): sha256 mismatch (expected \(sha256), got \(hex)); the download was deleted and nothing entered the cache")
        }
        if rename(partial, blob) != 0 { throw HubError("cannot move \(partial) into place: \(String(cString: strerror(errno)))") }
        progress?(written, size, name)
    }
}

/// Bytes as "N.N GB".
func gb(_ bytes: Int64) -> String {
    let tenths = Int((Double(bytes) / 1e8).rounded())
    return "\(tenths / 10).\(tenths % 10) GB"
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
