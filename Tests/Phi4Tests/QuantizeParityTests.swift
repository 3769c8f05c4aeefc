import CPhi4Kernels
import XCTest
@testable import Phi4

/// `phi4 quantize` and `phi4 imatrix` against llama.cpp's `llama-quantize` and `llama-imatrix`
/// (the pinned build), from fixtures that `tools/compare_llama_quantize.py --fixtures` records:
/// llama-imatrix's matrices over `calibration.txt` and a checksum of every file llama-quantize
/// wrote, for the demo model (256-wide rows) and the gqa4 fixture (64-wide rows: fall-backs).
final class QuantizeParityTests: XCTestCase {
    let dir = fixturesDirectory + "/quant/llama_quantize"
    let demo = fixturesDirectory + "/../../../models/phi4-demo-q8_0.gguf"

    /// The checksum the fixture script records: Σ w_i · (2i + 1) mod 2^64 over the file's
    /// little-endian 64-bit words (zero-padded), with the size. Any single changed word changes it.
    static func checksum(_ path: String) throws -> String {
        guard let f = fopen(path, "rb") else { throw ModelError.io(path) }
        defer { fclose(f) }
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        var sum: UInt64 = 0, index: UInt64 = 0, size = 0
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n == 0 { break }
            size += n
            let words = (n + 7) / 8
            for k in n..<(words * 8) { buf[k] = 0 }
            buf.withUnsafeBytes { raw in
                for i in 0..<words {
                    let w = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
                    sum = sum &+ w &* (2 &* index &+ 1)
                    index += 1
                }
            }
        }
        return "\(size):" + String(repeating: "0", count: 16 - String(sum, radix: 16).count) + String(sum, radix: 16)
    }

    struct Fixture {
        let f32: String
        let files: [String: String]
    }

    func fixture(_ source: String) throws -> Fixture {
        let json = try JSONParser.parse(try FileIO.readAll(dir + "/checksums.json"))
        let s = try XCTUnwrap(json["sources"]?[source])
        var files: [String: String] = [:]
        for (k, v) in s["files"]?.objectValue ?? [:] { files[k] = v.stringValue }
        return Fixture(f32: try XCTUnwrap(s["f32"]?.stringValue), files: files)
    }

    func temporary(_ name: String) -> String {
        FileManager.default.temporaryDirectory.path + "/parity-\(getpid())-\(name)"
    }

    /// Quantizes `f32` to every file of the fixture and compares checksums with llama-quantize's.
    func checkEveryType(source: String, f32: String, fixture: Fixture, hf: String? = nil, only: (String) -> Bool = { _ in true }) throws {
        let importance = try ImportanceMatrix.load(path: dir + "/\(source).imatrix.gguf")
        XCTAssertFalse(fixture.files.isEmpty)
        for (key, want) in fixture.files.sorted(by: { $0.key < $1.key }) where only(key) {
            let parts = key.split(separator: "/").map(String.init)
            let type = try XCTUnwrap(GGUFExport.FileType(name: parts[0]), key)
            var options = GGUFExport.Options()
            if parts[1] != "plain" {
                options.importance = importance
                options.importancePath = "\(source).imatrix.gguf"  // the name the fixture's files record
                options.choices.hasImportance = true
            }
            if parts[1].hasSuffix("q8ends") {
                options.choices.tokenEmbedding = .q8_0
                options.choices.output = .q8_0
            }
            let out = temporary("\(source)-\(parts[0])-\(parts[1]).gguf")
            defer { unlink(out) }
            try GGUFExport.write(ggufFile: f32, type: type, output: out, options: options)
            XCTAssertEqual(try Self.checksum(out), want, "\(source) \(key): not llama-quantize's bytes (tools/compare_llama_quantize.py lists the tensors)")
            if let hf, !parts[1].hasSuffix("q8ends") {
                // The same file straight from the HF checkpoint.
                try GGUFExport.write(hfDirectory: hf, type: type, output: out, options: options)
                XCTAssertEqual(try Self.checksum(out), want, "\(source) \(key) from the HF checkpoint")
            }
        }
    }

    /// Every type and mix on the gqa4 fixture (64-wide rows: every K and IQ4_XS tensor falls back
    /// to a 32-block type or F16), with and without an importance matrix, from the f32 GGUF and
    /// straight from the HF checkpoint: llama-quantize's bytes.
    func testEveryTypeMatchesLlamaQuantizeOnRowsThatFallBack() throws {
        let f32 = temporary("gqa4-f32.gguf")
        defer { unlink(f32) }
        try GGUFExport.write(hfDirectory: modelFixtures + "/gqa4", type: .f32, output: f32)
        let fx = try fixture("gqa4")
        XCTAssertEqual(try Self.checksum(f32), fx.f32, "the f32 source is not the one the fixture was made from")
        try checkEveryType(source: "gqa4", f32: f32, fixture: fx, hf: modelFixtures + "/gqa4")
    }

    /// Every type and mix on the trained demo model (256-wide rows): llama-quantize's bytes —
    /// every type with llama-imatrix's matrix and the embedding and output in Q8_0 (the layers'
    /// types; the two big tensors in the mix's types would cost seconds each), and whole files
    /// of each reference rounding without a matrix and of a few mixes with one (the tool checks
    /// every whole file). Q2_K_S without a matrix is refused, as llama-quantize refuses it.
    func testEveryTypeMatchesLlamaQuantizeOnTheDemoModel() throws {
        let f32 = temporary("demo-f32.gguf")
        defer { unlink(f32) }
        var requantize = GGUFExport.Options()
        requantize.allowRequantize = true
        try GGUFExport.write(ggufFile: demo, type: .f32, output: f32, options: requantize)
        let fx = try fixture("demo")
        XCTAssertEqual(try Self.checksum(f32), fx.f32, "the f32 source is not the one the fixture was made from")
        let whole: Set<String> = ["q4_0/plain", "q4_1/plain", "q5_0/plain", "q5_1/plain", "q2_k/plain", "q3_k_m/plain",
                                  "q4_k_m/plain", "q5_k_m/plain", "q6_k/plain", "iq4_nl/plain", "iq4_xs/plain", "iq3_s/plain",
                                  "q4_k_m/imatrix", "iq2_m/imatrix"]
        try checkEveryType(source: "demo", f32: f32, fixture: fx) { $0.hasSuffix("/imatrix-q8ends") || whole.contains($0) }
        XCTAssertThrowsError(try GGUFExport.write(ggufFile: f32, type: .q2_K_S, output: temporary("refused.gguf"))) { error in
            XCTAssertTrue("\(error)".contains("importance matrix"), "\(error)")
        }
    }

    /// Both of llama.cpp's imatrix formats read to the same weights (the .dat stores means times
    /// the chunk count; float rounding only), with the metadata llama-imatrix wrote.
    func testImportanceMatrixFormatsAgree() throws {
        let g = try ImportanceMatrix.load(path: dir + "/demo.imatrix.gguf")
        let d = try ImportanceMatrix.load(path: dir + "/demo.imatrix.dat")
        XCTAssertEqual(Set(g.entries.keys), Set(d.entries.keys))
        XCTAssertEqual(g.entries.count, 16)  // 4 layers × attn_qkv, attn_output, ffn_up, ffn_down
        XCTAssertEqual(g.datasets, ["calibration.txt"])
        XCTAssertEqual(d.datasets, ["calibration.txt"])
        XCTAssertEqual(g.chunkSize, 256)
        XCTAssertEqual(g.chunkCount, d.chunkCount)
        for name in g.entries.keys {
            let a = try XCTUnwrap(g.weights(for: name)), b = try XCTUnwrap(d.weights(for: name))
            XCTAssertEqual(a.count, b.count)
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-6 * max(abs(x), 1e-30), name) }
        }
        // Ours writes what llama.cpp's reader reads back.
        let path = temporary("round.gguf"), dat = temporary("round.dat")
        defer { unlink(path); unlink(dat) }
        try g.writeGGUF(path: path)
        try g.writeLegacy(path: dat)
        let back = try ImportanceMatrix.load(path: path), backDat = try ImportanceMatrix.load(path: dat)
        XCTAssertEqual(back.entries, g.entries)
        XCTAssertEqual(back.chunkCount, g.chunkCount)
        for name in g.entries.keys {
            XCTAssertEqual(try XCTUnwrap(backDat.weights(for: name)), try XCTUnwrap(d.weights(for: name)), name)
        }
    }

    /// `phi4 imatrix`'s collector against llama-imatrix on the gqa4 fixture, the same text and
    /// chunk size: the same tensors, token counts and chunk count; values within 1e-3 relative at
    /// the 99th percentile over entries above 1e-6 × the tensor's largest (the two engines' f32
    /// activations differ in their last bits: different summation orders).
    func testCollectorMatchesLlamaImatrix() throws {
        let f32 = temporary("gqa4-im.gguf")
        defer { unlink(f32) }
        try GGUFExport.write(hfDirectory: modelFixtures + "/gqa4", type: .f32, output: f32)
        let model = try Model.load(path: f32)
        let collector = ImportanceCollector(model: model, chunkSize: 64)
        let text = String(decoding: try FileIO.readAll(dir + "/calibration.txt"), as: UTF8.self)
        try collector.add(text: text)
        let ours = collector.matrix(datasets: ["calibration.txt"])
        let theirs = try ImportanceMatrix.load(path: dir + "/gqa4.imatrix.gguf")
        XCTAssertEqual(Set(ours.entries.keys), Set(theirs.entries.keys))
        XCTAssertEqual(ours.chunkCount, theirs.chunkCount)
        var rel: [Double] = []
        for (name, t) in theirs.entries {
            let o = try XCTUnwrap(ours.entries[name])
            XCTAssertEqual(o.counts, t.counts, name)
            let top = t.sums.max() ?? 0
            for (a, b) in zip(o.sums, t.sums) where b > 1e-6 * top { rel.append(Double(abs(a - b) / b)) }
        }
        rel.sort()
        XCTAssertGreaterThan(rel.count, 500)
        XCTAssertLessThanOrEqual(rel[rel.count * 99 / 100], 1e-3)
    }

    /// Importance matrix files are untrusted input: every truncation and many byte changes of
    /// both formats either load or are errors, never a crash or a read outside the file.
    func testMalformedImportanceMatricesAreErrors() throws {
        for name in ["gqa4.imatrix.dat", "gqa4.imatrix.gguf"] {
            let bytes = try FileIO.readAll(dir + "/" + name)
            let path = temporary("bad-" + name)
            defer { unlink(path) }
            var loaded = 0, refused = 0
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 64)) {
                try FileIO.writeAll(path, Array(bytes[0..<cut]))
                do { _ = try ImportanceMatrix.load(path: path); loaded += 1 } catch { refused += 1 }
            }
            for _ in 0..<200 {
                var b = bytes
                for _ in 0..<4 {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    b[Int(state >> 33) % b.count] = UInt8(truncatingIfNeeded: state >> 17)
                }
                try FileIO.writeAll(path, b)
                do {
                    let m = try ImportanceMatrix.load(path: path)
                    for key in m.entries.keys { _ = m.weights(for: key) }
                    loaded += 1
                } catch { refused += 1 }
            }
            XCTAssertGreaterThan(refused, 0, name)
        }
    }
}
