import XCTest
@testable import Phi4

#if canImport(Glibc)
import Glibc
#endif

/// Model names (`OWNER/NAME[:QUANT][@REVISION]`), the choice of a file among a repository's, and
/// the Hugging Face cache's layout. The interplay with huggingface_hub itself (a cache written by
/// one, read by the other) is tested in Server/Tests/test_hub.py.
final class HubTests: XCTestCase {
    func testReferences() {
        let r = ModelReference(parsing: "bartowski/phi-4-GGUF:Q4_K_M")
        XCTAssertEqual(r, ModelReference(repo: "bartowski/phi-4-GGUF", quant: "Q4_K_M"))
        XCTAssertEqual(ModelReference(parsing: "microsoft/phi-4@v1.0")?.revision, "v1.0")
        XCTAssertEqual(ModelReference(parsing: "microsoft/phi-4:iq4_xs@0123abc")?.quant, "iq4_xs")
        XCTAssertEqual(ModelReference(parsing: "hf://microsoft/phi-4")?.forced, true)
        XCTAssertEqual(ModelReference(parsing: "microsoft/phi-4")?.forced, false)
        XCTAssertEqual(ModelReference(parsing: "microsoft/phi-4")?.cacheFolderName, "models--microsoft--phi-4")
        // paths, not references
        for text in ["/models/phi-4.gguf", "./phi/4", "~/m/x", "a/b/c", "phi-4.gguf", "a/", "/", "a//b", "../x/y", "a/..",
                     "a/b:", "a/b@", "a/b:q4 k"] {
            XCTAssertNil(ModelReference(parsing: text), text)
        }
    }

    func testQuantTagsAreWholeWords() {
        XCTAssertTrue(ModelReference.name("phi-4-Q4_K_M.gguf", hasTag: "q4_k_m"))
        XCTAssertTrue(ModelReference.name("phi-4.i1-Q4_K_M.gguf", hasTag: "Q4_K_M"))  // mradermacher's names
        XCTAssertFalse(ModelReference.name("phi-4-Q4_K_M.gguf", hasTag: "Q4_K"))
        XCTAssertFalse(ModelReference.name("phi-4-IQ4_XS.gguf", hasTag: "Q4_XS"))
        XCTAssertFalse(ModelReference.name("phi-4-fp16.gguf", hasTag: "F16"))
        XCTAssertTrue(ModelReference.name("phi-4-Q8_0-00001-of-00002.gguf", hasTag: "q8_0"))
    }

    /// The files of bartowski/phi-4-GGUF (as listed on its page), a split f32 among them.
    let bartowski = ["phi-4-f32/phi-4-f32-00001-of-00002.gguf", "phi-4-f32/phi-4-f32-00002-of-00002.gguf", "phi-4-f16.gguf",
                     "phi-4-Q8_0.gguf", "phi-4-Q6_K_L.gguf", "phi-4-Q6_K.gguf", "phi-4-Q5_K_L.gguf", "phi-4-Q5_K_M.gguf",
                     "phi-4-Q5_K_S.gguf", "phi-4-Q4_K_L.gguf", "phi-4-Q4_K_M.gguf", "phi-4-Q4_K_S.gguf", "phi-4-Q4_1.gguf",
                     "phi-4-Q4_0.gguf", "phi-4-IQ4_NL.gguf", "phi-4-IQ4_XS.gguf", "phi-4-Q3_K_XL.gguf", "phi-4-Q3_K_L.gguf",
                     "phi-4-Q3_K_M.gguf", "phi-4-Q3_K_S.gguf", "phi-4-IQ3_M.gguf", "phi-4-IQ3_XS.gguf", "phi-4-Q2_K_L.gguf",
                     "phi-4-Q2_K.gguf", "phi-4-IQ3_XXS.gguf", "phi-4-IQ2_M.gguf", "phi-4-IQ2_S.gguf", "phi-4-IQ2_XS.gguf",
                     "phi-4-IQ2_XXS.gguf", "README.md", ".gitattributes"].map { HubFile(path: $0, size: 1_000_000_000) }

    func testChoosingAFile() {
        func pick(_ ref: String, _ files: [HubFile], file: String? = nil) -> ModelChoice? {
            try? ModelReference(parsing: ref)!.choose(among: files, explicitFile: file).get()
        }
        XCTAssertEqual(pick("bartowski/phi-4-GGUF", bartowski), .gguf(files: ["phi-4-Q4_K_M.gguf"]))  // the default
        for tag in ["q4_k_m", "Q4_K_S", "IQ4_XS", "iq3_xxs", "Q6_K", "Q6_K_L", "Q2_K", "f16"] {
            XCTAssertEqual(pick("bartowski/phi-4-GGUF:" + tag, bartowski), .gguf(files: ["phi-4-\(tag.uppercased() == "F16" ? "f16" : tag.uppercased()).gguf"]), tag)
        }
        XCTAssertEqual(pick("bartowski/phi-4-GGUF:F32", bartowski),
                       .gguf(files: ["phi-4-f32/phi-4-f32-00001-of-00002.gguf", "phi-4-f32/phi-4-f32-00002-of-00002.gguf"]))
        XCTAssertNil(pick("bartowski/phi-4-GGUF:Q1_K", bartowski))  // no such tag: the listing, --hf-file
        // Microsoft's names carry no tag
        let microsoft = [HubFile(path: "phi-4-q4.gguf"), HubFile(path: "phi-4-bf16.gguf")]
        guard case .failure(let e) = ModelReference(parsing: "microsoft/phi-4-gguf")!.choose(among: microsoft) else {
            return XCTFail("a choice without a tag")
        }
        XCTAssertTrue(e.description.contains("--hf-file") && e.description.contains("phi-4-q4.gguf"), e.description)
        XCTAssertEqual(pick("microsoft/phi-4-gguf", microsoft, file: "phi-4-q4.gguf"), .gguf(files: ["phi-4-q4.gguf"]))
        // one GGUF model needs no tag
        XCTAssertEqual(pick("a/b", [HubFile(path: "model.gguf")]), .gguf(files: ["model.gguf"]))
        // a transformers checkpoint
        let hf = ["config.json", "generation_config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                  "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json", "README.md", "LICENSE",
                  "sample/finetune.py"].map { HubFile(path: $0) }
        XCTAssertEqual(pick("microsoft/phi-4", hf), .transformers(files: [
            "config.json", "generation_config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
            "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json"]))
        XCTAssertNil(pick("a/b", [HubFile(path: "README.md")]))
    }

    func testListingParse() throws {
        let json = #"{"sha": "0123456789abcdef0123456789abcdef01234567", "siblings": [{"rfilename": "a.gguf", "size": 5, "lfs": {"sha256": "ab", "size": 5}}, {"rfilename": "README.md", "size": 3}]}"#
        let l = try HubListing.parse(Array(json.utf8))
        XCTAssertEqual(l.commit, "0123456789abcdef0123456789abcdef01234567")
        XCTAssertEqual(l.files, [HubFile(path: "a.gguf", size: 5, sha256: "ab"), HubFile(path: "README.md", size: 3)])
        XCTAssertThrowsError(try HubListing.parse(Array(#"{"sha": "main", "siblings": []}"#.utf8)))
        XCTAssertThrowsError(try HubListing.parse(Array("[".utf8)))
    }

    func testCacheLayout() throws {
        var template = Array("/tmp/phi4-hubtest-XXXXXX".utf8CString)
        guard let dir = mkdtemp(&template) else { return XCTFail("mkdtemp") }
        let root = String(cString: dir)
        defer { try? HubCache.removeTree(root) }
        let cache = HubCache(root: root)
        let repo = "tester/phi-4-GGUF", commit = "0123456789abcdef0123456789abcdef01234567"
        let shards = ["split/m-Q8_0-00001-of-00002.gguf", "split/m-Q8_0-00002-of-00002.gguf"]
        try HubCache.makeDirectories(cache.repositoryFolder(repo) + "/blobs")
        for (i, path) in (["m-Q4_K_M.gguf"] + shards).enumerated() {
            let etag = String(repeating: String(i), count: 64)
            try FileIO.writeAll(cache.blobPath(repo: repo, etag: etag), [1, 2, 3])
            if path != shards[1] { try cache.linkSnapshot(repo: repo, commit: commit, path: path, etag: etag) }
        }
        XCTAssertNil(cache.localModel(for: ModelReference(repo: repo)))  // no refs/main yet
        try cache.writeRef(repo: repo, revision: "main", commit: commit)
        let snapshot = cache.snapshotFolder(repo: repo, commit: commit)
        XCTAssertEqual(cache.localModel(for: ModelReference(repo: repo)), snapshot + "/m-Q4_K_M.gguf")
        XCTAssertEqual(cache.localModel(for: ModelReference(repo: repo, revision: commit)), snapshot + "/m-Q4_K_M.gguf")
        XCTAssertNil(cache.localModel(for: ModelReference(repo: repo, quant: "Q8_0")))  // a shard is missing
        try cache.linkSnapshot(repo: repo, commit: commit, path: shards[1], etag: String(repeating: "2", count: 64))
        XCTAssertEqual(cache.localModel(for: ModelReference(repo: repo, quant: "q8_0")), snapshot + "/" + shards[0])
        // relative links, as huggingface_hub makes them
        var buf = [CChar](repeating: 0, count: 256)
        let n = readlink(snapshot + "/" + shards[0], &buf, 255)
        XCTAssertEqual(String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self),
                       "../../../blobs/" + String(repeating: "1", count: 64))
        XCTAssertThrowsError(try cache.linkSnapshot(repo: repo, commit: commit, path: "../escape", etag: "x"))
        let listed = cache.repositories()
        XCTAssertEqual(listed.map(\.repo), [repo])
        XCTAssertEqual(listed.first?.size, 9)
        XCTAssertEqual(listed.first?.refs, ["main": commit])
        XCTAssertTrue(try cache.remove(repo: repo))
        XCTAssertTrue(cache.repositories().isEmpty)
    }

    func testCacheRootFromEnvironment() {
        XCTAssertEqual(HubCache.fromEnvironment(["HF_HUB_CACHE": "/c", "HF_HOME": "/h"]).root, "/c")
        XCTAssertEqual(HubCache.fromEnvironment(["HF_HOME": "/h", "XDG_CACHE_HOME": "/x"]).root, "/h/hub")
        XCTAssertEqual(HubCache.fromEnvironment(["XDG_CACHE_HOME": "/x", "HOME": "/home/u"]).root, "/x/huggingface/hub")
        XCTAssertEqual(HubCache.fromEnvironment(["HOME": "/home/u"]).root, "/home/u/.cache/huggingface/hub")
    }
}
