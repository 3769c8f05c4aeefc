// A model named the way every other tool names one: `OWNER/NAME[:QUANT][@REVISION]` on the Hugging
// Face Hub, and the choice of the file to run among a repository's files (which GGUF file a quant
// tag picks, the shards of a split file, or a transformers checkpoint). Pure string work: the
// library never touches the network; HubCache finds what a downloader left in the shared cache.

/// A model on the Hugging Face Hub: `OWNER/NAME[:QUANT][@REVISION]`, optionally written
/// `hf://OWNER/NAME…` (or `hf.co/…`, `huggingface.co/…`) to force the Hub over a local path.
///
/// `QUANT` picks a GGUF file by the type tag in its name (`Q4_K_M`, `iq4_xs`; case-insensitive);
/// `REVISION` is a branch, tag or commit (default `main`).
public struct ModelReference: Sendable, Equatable, CustomStringConvertible {
    /// `OWNER/NAME`.
    public var repo: String
    /// The quant tag, as written (nil: none given).
    public var quant: String?
    /// The branch, tag or commit hash.
    public var revision: String
    /// True when the text said `hf://` (or a Hub host): never a local path.
    public var forced: Bool

    /// The reference as `OWNER/NAME[:QUANT][@REVISION]` (the revision only when not `main`).
    public var description: String {
        repo + (quant.map { ":" + $0 } ?? "") + (revision == "main" ? "" : "@" + revision)
    }

    /// Creates a reference from its parts.
    public init(repo: String, quant: String? = nil, revision: String = "main", forced: Bool = false) {
        self.repo = repo
        self.quant = quant
        self.revision = revision
        self.forced = forced
    }

    /// Parses `text`; nil when it is not a Hub reference (then it can only be a path). Paths that
    /// start with `/`, `.` or `~`, or have more than one `/` before a `:` or `@`, are not references.
    public init?(parsing text: String) {
        var s = Substring(text)
        var forced = false
        for prefix in ["hf://", "https://huggingface.co/", "huggingface.co/", "hf.co/"] where s.hasPrefix(prefix) {
            s = s.dropFirst(prefix.count)
            forced = true
            break
        }
        guard let first = s.first, first != "/", first != ".", first != "~" else { return nil }
        var revision = "main"
        if let at = s.firstIndex(of: "@") {
            revision = String(s[s.index(after: at)...])
            s = s[..<at]
            guard !revision.isEmpty, revision.allSatisfy({ Self.isNameCharacter($0) || $0 == "/" }) else { return nil }
        }
        var quant: String?
        if let colon = s.firstIndex(of: ":") {
            let q = s[s.index(after: colon)...]
            s = s[..<colon]
            guard !q.isEmpty, q.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) else {
                return nil
            }
            quant = String(q)
        }
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.count <= 96 && $0.allSatisfy(Self.isNameCharacter) }),
              !parts.contains(where: { $0 == "." || $0 == ".." || $0.hasPrefix("-") })
        else { return nil }
        self.init(repo: String(s), quant: quant, revision: revision, forced: forced)
    }

    private static func isNameCharacter(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_" || c == ".")
    }

    /// The cache folder's name for the repository (`models--OWNER--NAME`), as huggingface_hub
    /// and llama.cpp name it.
    public var cacheFolderName: String { "models--" + repo.split(separator: "/").joined(separator: "--") }
}

/// A file of a repository listing: its path in the repository and its size (nil when unknown).
public struct HubFile: Sendable, Equatable {
    /// The path in the repository (`phi-4-Q4_K_M.gguf`, `Q8_0/phi-4-Q8_0-00001-of-00002.gguf`).
    public var path: String
    /// Its size in bytes, when the listing or the cache says.
    public var size: Int64?
    /// The sha256 of its bytes, for a file stored with Git LFS (as the listing says).
    public var sha256: String?
    /// Creates a listing entry.
    public init(path: String, size: Int64? = nil, sha256: String? = nil) {
        self.path = path
        self.size = size
        self.sha256 = sha256
    }
}

/// A repository's file listing as the Hub's API gives it
/// (`GET /api/models/OWNER/NAME/revision/REVISION?blobs=true`).
public struct HubListing: Sendable {
    /// The commit the revision points at.
    public var commit: String
    /// The files (`siblings`), with sizes and LFS sha256 where given.
    public var files: [HubFile]

    /// Parses the API's JSON: `{"sha": COMMIT, "siblings": [{"rfilename", "size", "lfs": {"sha256", "size"}}]}`.
    public static func parse(_ bytes: [UInt8]) throws(ModelChoiceError) -> HubListing {
        let json: JSONValue
        do { json = try JSONParser.parse(bytes) } catch { throw ModelChoiceError(description: "the file listing is not JSON: \(error)") }
        guard let sha = json["sha"]?.stringValue, HubCache.isCommitHash(sha), let siblings = json["siblings"]?.arrayValue else {
            throw ModelChoiceError(description: "the file listing has no commit (sha) or siblings")
        }
        var files: [HubFile] = []
        for s in siblings {
            guard let path = s["rfilename"]?.stringValue else { continue }
            let lfs = s["lfs"]
            let size = (lfs?["size"]?.intValue ?? s["size"]?.intValue).map(Int64.init)
            files.append(HubFile(path: path, size: size, sha256: lfs?["sha256"]?.stringValue ?? lfs?["oid"]?.stringValue))
        }
        return HubListing(commit: sha, files: files)
    }
}

/// What to fetch and run from a repository's files.
public enum ModelChoice: Sendable, Equatable {
    /// One GGUF model: the files of one model (one file, or every shard of a split file, first
    /// shard first); the model opens from `files[0]`.
    case gguf(files: [String])
    /// A transformers checkpoint: config, tokenizer and safetensors files (all of them needed).
    case transformers(files: [String])
}

/// Why a repository's files give no single model to run.
public struct ModelChoiceError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, with the repository's GGUF files and sizes where they help the choice.
    public let description: String
}

extension ModelReference {
    /// The GGUF type tags llama.cpp's files carry in their names, longest first within a family so
    /// that a file's tag is read whole.
    public static let knownQuantTags: [String] = [
        "F32", "F16", "BF16", "Q8_0", "Q6_K_L", "Q6_K", "Q5_K_L", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_L", "Q4_K_M",
        "Q4_K_S", "Q4_1", "Q4_0", "IQ4_NL", "IQ4_XS", "Q3_K_XL", "Q3_K_L", "Q3_K_M", "Q3_K_S", "IQ3_M", "IQ3_S", "IQ3_XS",
        "IQ3_XXS", "Q2_K_L", "Q2_K_S", "Q2_K", "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S",
    ]

    /// The default quant when a reference names none: what llama.cpp's `-hf` picks.
    public static let defaultQuant = "Q4_K_M"

    /// True when `name` (a file name) carries `tag` as a whole word: case-insensitive, not preceded
    /// by a letter or digit, not followed by a letter, digit or `_` (so `Q4_K` is not `Q4_K_M`).
    public static func name(_ name: String, hasTag tag: String) -> Bool {
        let n = Array(name.lowercased().utf8), t = Array(tag.lowercased().utf8)
        guard !t.isEmpty, n.count >= t.count else { return false }
        func alnum(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 97 && c <= 122) }
        for i in 0...(n.count - t.count) where Array(n[i..<(i + t.count)]) == t {
            let before = i == 0 ? nil : n[i - 1], after = i + t.count < n.count ? n[i + t.count] : nil
            if let b = before, alnum(b) { continue }
            if let a = after, alnum(a) || a == 95 { continue }
            return true
        }
        return false
    }

    /// `name` without a `-00001-of-00003` shard suffix, the shard's number and the shard count
    /// (nil, nil: not a shard).
    static func shardBase(_ name: String) -> (base: String, number: Int?, count: Int?) {
        let stem = name.hasSuffix(".gguf") ? String(name.dropLast(5)) : name
        let b = Array(stem.utf8)
        // -NNNNN-of-NNNNN: 15 characters
        guard b.count > 15 else { return (stem, nil, nil) }
        let tail = Array(b[(b.count - 15)...])
        let digits = { (r: Range<Int>) in tail[r].allSatisfy { $0 >= 48 && $0 <= 57 } }
        guard tail[0] == 45, digits(1..<6), String(decoding: tail[6..<10], as: UTF8.self) == "-of-", digits(10..<15),
              let no = Int(String(decoding: tail[1..<6], as: UTF8.self)),
              let count = Int(String(decoding: tail[10..<15], as: UTF8.self))
        else { return (stem, nil, nil) }
        return (String(decoding: b[..<(b.count - 15)], as: UTF8.self), no, count)
    }

    /// Chooses the model to run among a repository's `files`: the GGUF file `explicitFile` names
    /// (with its other shards), else the one GGUF model whose name carries the quant tag (default
    /// Q4_K_M; a repository with one GGUF model needs no tag), else — with no GGUF files — the
    /// transformers checkpoint (config.json, tokenizer files, *.safetensors and their index).
    public func choose(among files: [HubFile], explicitFile: String? = nil) -> Result<ModelChoice, ModelChoiceError> {
        var groups: [String: [(Int, String)]] = [:]  // base path → (shard number, path)
        for f in files where f.path.lowercased().hasSuffix(".gguf") {
            let (base, no, _) = Self.shardBase(f.path)
            groups[base, default: []].append((no ?? 0, f.path))
        }
        let sizes = Dictionary(files.map { ($0.path, $0.size) }, uniquingKeysWith: { a, _ in a })
        func listing() -> String {
            groups.keys.sorted().map { base in
                let paths = groups[base]!.sorted { $0.0 < $1.0 }.map(\.1)
                let total = paths.compactMap { sizes[$0] ?? nil }.reduce(0, +)
                let size = total > 0 ? format1(Double(total) / 1e9) + " GB" : "size unknown"
                return "  \(paths[0])" + (paths.count > 1 ? " (+\(paths.count - 1) more shards)" : "") + "  \(size)"
            }.joined(separator: "\n")
        }
        func group(_ base: String) -> ModelChoice { .gguf(files: groups[base]!.sorted { $0.0 < $1.0 }.map(\.1)) }
        if let explicitFile {
            guard files.contains(where: { $0.path == explicitFile }) else {
                return .failure(ModelChoiceError(description: "\(repo) has no file \(explicitFile); its GGUF files:\n\(listing())"))
            }
            guard explicitFile.lowercased().hasSuffix(".gguf") else {
                return .failure(ModelChoiceError(description: "\(explicitFile) is not a GGUF file"))
            }
            return .success(group(Self.shardBase(explicitFile).base))
        }
        if !groups.isEmpty {
            if quant == nil && groups.count == 1 { return .success(group(groups.keys.first!)) }
            let tag = quant ?? Self.defaultQuant
            let matching = groups.keys.filter { Self.name(lastComponent($0), hasTag: tag) }.sorted()
            if matching.count == 1 { return .success(group(matching[0])) }
            let why = matching.isEmpty ? "no GGUF file of \(repo) carries the tag \(tag)"
                : "several GGUF files of \(repo) carry the tag \(tag)"
            return .failure(ModelChoiceError(description: "\(why); choose one with --hf-file NAME:\n\(listing())"))
        }
        let names = Set(files.map(\.path))
        guard names.contains("config.json"), files.contains(where: { $0.path.hasSuffix(".safetensors") }) else {
            return .failure(ModelChoiceError(description: "\(repo) has neither GGUF files nor a transformers checkpoint (config.json and *.safetensors)"))
        }
        let wanted = files.map(\.path).filter { p in
            !p.contains("/") && (p.hasSuffix(".safetensors") || p.hasSuffix(".json") || p.hasSuffix(".txt")
                || p == "tokenizer.model" || p.hasSuffix(".tiktoken"))
        }.sorted()
        return .success(.transformers(files: wanted))
    }
}

/// The last component of a repository path.
private func lastComponent(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }

/// `x` with one decimal.
func format1(_ x: Double) -> String {
    let tenths = Int((x * 10).rounded())
    return "\(tenths / 10).\(abs(tenths % 10))"
}
