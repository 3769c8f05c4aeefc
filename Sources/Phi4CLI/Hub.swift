// Models by name: `--model OWNER/NAME[:QUANT][@REVISION]` (or `-hf …`, as llama.cpp spells it)
// runs a model from the Hugging Face cache that huggingface_hub and llama.cpp share, downloading it
// first with phi4-hub when the cache lacks it; `phi4 pull`, `phi4 list` and `phi4 rm` manage the
// cache. The download itself lives in phi4-hub (Server/: it needs an HTTP client and TLS, which
// this tool and the library do without).

import ArgumentParser
import Phi4

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The local path `text` stands for: `text` itself when it names an existing file or folder (and
/// is not `hf://…`), else the cached file of the Hub reference it spells, downloaded by phi4-hub
/// when the cache does not hold it (never when HF_HUB_OFFLINE is set).
func resolveModel(_ text: String, hfFile: String? = nil) throws -> String {
    guard let ref = ModelReference(parsing: text), ref.forced || !FileIO.exists(text) else { return text }
    let cache = HubCache.fromEnvironment()
    if let local = cache.localModel(for: ref, explicitFile: hfFile) { return local }
    let env = HubCache.environment()
    if ["1", "true", "yes", "on"].contains((env["HF_HUB_OFFLINE"] ?? "").lowercased()) {
        throw RuntimeError("\(ref) is not in the Hugging Face cache (\(cache.root)) and HF_HUB_OFFLINE is set")
    }
    return try pullWithHubTool(ref, hfFile: hfFile)
}

/// The phi4-hub executable: `PHI4_HUB`, else beside this executable, else on PATH.
func hubToolPath() -> String? {
    let env = HubCache.environment()
    if let p = env["PHI4_HUB"], !p.isEmpty { return p }
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    if n > 0 {
        let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let beside = FileIO.join(FileIO.directory(of: exe), "phi4-hub")
        if access(beside, X_OK) == 0 { return beside }
    }
    for dir in (env["PATH"] ?? "").split(separator: ":") {
        let p = FileIO.join(String(dir), "phi4-hub")
        if access(p, X_OK) == 0 { return p }
    }
    return nil
}

/// Runs `phi4-hub pull` (its progress on our standard error) and returns the path it prints.
func pullWithHubTool(_ ref: ModelReference, hfFile: String?) throws -> String {
    guard let tool = hubToolPath() else {
        throw RuntimeError("""
            \(ref) is not in the Hugging Face cache (\(HubCache.fromEnvironment().root)), and downloading it needs phi4-hub, \
            which is not installed beside phi4 or on PATH (`make server` builds it; the wheel and the C SDK include it). \
            huggingface_hub can download it as well: `hf download \(ref.repo) FILE`
            """)
    }
    var args = [tool, "pull", ref.forced ? "hf://" + ref.description : ref.description]
    if let hfFile { args += ["--hf-file", hfFile] }
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw RuntimeError("pipe: \(FileIO.errnoText(errno))") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_addclose(&actions, fds[0])
    var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
    defer { for p in cargs { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, tool, &actions, nil, &cargs, environ)
    close(fds[1])
    guard rc == 0 else {
        close(fds[0])
        throw RuntimeError("cannot run \(tool): \(FileIO.errnoText(rc))")
    }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fds[0], &buf, buf.count)
        if n <= 0 { break }
        out += buf[0..<n]
    }
    close(fds[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exited = (status & 0x7f) == 0, code = (status >> 8) & 0xff
    guard exited, code == 0 else { throw RuntimeError("could not download \(ref) (phi4-hub failed, above)") }
    let path = String(decoding: out, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
    guard !path.isEmpty, FileIO.exists(path) else { throw RuntimeError("phi4-hub printed no model path") }
    return path
}

/// `phi4 pull`: downloads a model into the Hugging Face cache.
struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download a model from the Hugging Face Hub into its cache (shared with huggingface_hub and llama.cpp).",
        discussion: """
            REF is OWNER/NAME[:QUANT][@REVISION]. For a GGUF repository QUANT picks the file by its type tag \
            (case-insensitive, default Q4_K_M); when no tag or several match, the repository's GGUF files are \
            listed and --hf-file names one. A transformers repository comes whole (config, tokenizer, safetensors). \
            Honors HF_ENDPOINT, HF_TOKEN, HF_HUB_CACHE / HF_HOME, HF_HUB_OFFLINE, HTTPS_PROXY, SSL_CERT_FILE.
            """)

    @Argument(help: "The model: OWNER/NAME[:QUANT][@REVISION].")
    var ref: String

    @Option(name: .customLong("hf-file"), help: "The GGUF file to download, by its path in the repository.")
    var hfFile: String?

    func run() throws {
        guard let r = ModelReference(parsing: ref) else { throw ValidationError("\(ref) is not OWNER/NAME[:QUANT][@REVISION]") }
        print(try pullWithHubTool(r, hfFile: hfFile))
    }
}

/// `phi4 list`: the models in the Hugging Face cache.
struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the models in the Hugging Face cache, with their sizes.")

    func run() throws {
        let cache = HubCache.fromEnvironment()
        let repos = cache.repositories()
        print("cache: \(cache.root)")
        if repos.isEmpty { print("(no models)") }
        for r in repos {
            let refs = r.refs.keys.sorted().map { "\($0) → \(r.refs[$0]!.prefix(8))" }.joined(separator: ", ")
            print("\(r.repo)  \(fmt(Double(r.size) / 1e9)) GB" + (refs.isEmpty ? "" : "  (\(refs))"))
            for (commit, files) in r.snapshots.sorted(by: { $0.key < $1.key }) {
                for f in files where f.path.hasSuffix(".gguf") || f.path.hasSuffix(".safetensors") {
                    print("  \(f.path)  \(fmt(Double(f.size ?? 0) / 1e9)) GB" + (r.snapshots.count > 1 ? "  @\(commit.prefix(8))" : ""))
                }
            }
        }
    }
}

/// `phi4 rm`: removes a model from the Hugging Face cache.
struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove a model (OWNER/NAME: the whole repository) from the Hugging Face cache.")

    @Argument(help: "OWNER/NAME.")
    var ref: String

    func run() throws {
        guard let r = ModelReference(parsing: ref) else { throw ValidationError("\(ref) is not OWNER/NAME") }
        let cache = HubCache.fromEnvironment()
        let size = cache.repositories().first { $0.repo == r.repo }?.size ?? 0
        guard try runtime({ try cache.remove(repo: r.repo) }) else { throw RuntimeError("\(r.repo) is not in the cache (\(cache.root))") }
        print("removed \(r.repo) (\(fmt(Double(size) / 1e9)) GB)")
    }
}

/// Rewrites llama.cpp's `-hf REF` / `--hf REF` into `--model hf://REF`.
func rewriteHubArguments(_ args: [String]) -> [String] {
    var out: [String] = []
    var i = 0
    while i < args.count {
        let a = args[i]
        if (a == "-hf" || a == "--hf" || a == "--hf-repo" || a == "-hfr") && i + 1 < args.count {
            out += ["--model", "hf://" + args[i + 1]]
            i += 2
            continue
        }
        if a.hasPrefix("--hf=") { out += ["--model", "hf://" + a.dropFirst(5)] } else { out.append(a) }
        i += 1
    }
    return out
}
