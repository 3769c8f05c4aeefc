import CPhi4Kernels
import XCTest
@testable import Phi4

final class GGUFTests: XCTestCase {
    let quantFixtures = fixturesDirectory + "/quant"
    var tmp = ""

    override func setUp() {
        tmp = "/tmp/phi4-gguf-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        mkdir(tmp, 0o755)
    }

    override func tearDown() {
        if let d = opendir(tmp) {
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { unlink(tmp + "/" + name) }
            }
            closedir(d)
        }
        rmdir(tmp)
    }

    func write(_ path: String, _ bytes: [UInt8]) {
        let f = fopen(path, "wb")!
        fwrite(bytes, 1, bytes.count, f)
        fclose(f)
    }

    /// Our quantizers produce the `gguf` package's bytes exactly, and our dequantizers its values.
    func testQuantizersMatchTheGGUFPackageBitForBit() throws {
        let x = try NPY.read(path: quantFixtures + "/input.npy").values
        for (name, format) in [("q8_0", Int32(P4K_Q8_0)), ("q4_0", Int32(P4K_Q4_0))] {
            let expected = try FileIO.readAll(quantFixtures + "/\(name).bin")
            var ours = [UInt8](repeating: 0, count: expected.count)
            if format == Int32(P4K_Q8_0) { p4k_quantize_q8_0(x, &ours, x.count) } else { p4k_quantize_q4_0(x, &ours, x.count) }
            XCTAssertEqual(ours, expected, name)
            let reference = try NPY.read(path: quantFixtures + "/\(name)_dequant.npy").values
            var back = [Float](repeating: 0, count: x.count)
            p4k_dequantize_rows(format, expected, x.count, 1, &back)
            XCTAssertEqual(back, reference, name)
        }
        let q6 = try FileIO.readAll(quantFixtures + "/q6_k.bin")
        let reference = try NPY.read(path: quantFixtures + "/q6_k_dequant.npy").values
        var back = [Float](repeating: 0, count: reference.count)
        p4k_dequantize_q6_k(q6, &back, reference.count)
        XCTAssertEqual(back, reference)
        // The K-quant mixes' fallback types that we write: the package's bytes exactly.
        let mix = try NPY.read(path: quantFixtures + "/mix_input.npy").values
        for (name, quantize) in [("q5_0", p4k_quantize_q5_0), ("q5_1", p4k_quantize_q5_1)] as [(String, (UnsafePointer<Float>?, UnsafeMutableRawPointer?, Int) -> Void)] {
            let expected = try FileIO.readAll(quantFixtures + "/\(name).bin")
            var ours = [UInt8](repeating: 0, count: expected.count)
            quantize(mix, &ours, mix.count)
            XCTAssertEqual(ours, expected, name)
        }
        // The K-quant mixes' other block types: values identical to the package's dequantizers.
        let others: [(String, (UnsafeRawPointer?, UnsafeMutablePointer<Float>?, Int) -> Void)] = [
            ("q4_1", p4k_dequantize_q4_1), ("q5_0", p4k_dequantize_q5_0), ("q5_1", p4k_dequantize_q5_1),
            ("q4_k", p4k_dequantize_q4_k), ("q5_k", p4k_dequantize_q5_k)]
        for (name, dequantize) in others {
            let blocks = try FileIO.readAll(quantFixtures + "/\(name).bin")
            let want = try NPY.read(path: quantFixtures + "/\(name)_dequant.npy").values
            var got = [Float](repeating: .nan, count: want.count)
            dequantize(blocks, &got, want.count)
            XCTAssertEqual(got, want, name)
        }
    }

    /// Q2_K, Q3_K, IQ4_NL and IQ4_XS through the format table's dequantizer: every value's bits equal
    /// the `gguf` package's (NaN where it has NaN), on random blocks with small scales and on blocks
    /// whose every byte is random (tools/make_quant_fixtures.py).
    /// The lattice IQ types too: their first blocks use every entry of the type's grid, so this also
    /// checks the codebooks (iq_grids.c, tools/make_iq_grids.py) against the package's.
    func testLowBitTypesDequantizeAsTheGGUFPackage() throws {
        for type in [GGMLType.q2_K, .q3_K, .iq4_NL, .iq4_XS, .iq2_XXS, .iq2_XS, .iq2_S, .iq3_XXS, .iq3_S, .iq1_S, .iq1_M] {
            for suffix in ["", "_wild"] {
                let name = type.displayName.lowercased() + suffix
                let blocks = try FileIO.readAll(quantFixtures + "/\(name).bin")
                let want = try NPY.read(path: quantFixtures + "/\(name)_dequant.npy").values
                var got = [Float](repeating: 0, count: want.count)
                XCTAssertEqual(p4k_dequantize_rows(Int32(type.rawValue), blocks, 256, want.count / 256, &got), 0, name)
                let differing = zip(got, want).filter { !($0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN)) }.count
                XCTAssertEqual(differing, 0, "\(name): \(differing) of \(want.count) values differ")
            }
        }
    }

    /// Our K-quant writer produces llama.cpp's quantizer's bytes exactly (32 rows of the demo
    /// model's ffn_up, quantized by llama.cpp's `llama_model_quantize` to Q4_K, Q5_K and Q6_K;
    /// `tools/compare_kquant_writer.py` checks every tensor of the three mixes the same way).
    func testKQuantWriterMatchesLlamaCppBitForBit() throws {
        let input = try NPY.read(path: quantFixtures + "/kq_input.npy")
        for (name, format) in [("q4_k", Int32(P4K_Q4_K)), ("q5_k", Int32(P4K_Q5_K)), ("q6_k", Int32(P4K_Q6_K))] {
            let expected = try FileIO.readAll(quantFixtures + "/kq_\(name)_llama.bin")
            var ours = [UInt8](repeating: 0, count: expected.count)
            p4k_quantize_kquant(format, input.values, &ours, input.values.count)
            XCTAssertEqual(ours, expected, name)
            XCTAssertEqual(expected.count, input.values.count / 256 * Int(p4k_kquant_block_bytes(format)))
        }
    }

    /// A GGUF written by the `gguf` package (llama.cpp's reference writer) loads, runs and agrees
    /// exactly with the same model quantized by us at load time; its tokenizer equals tiktoken.
    func testGGUFFromTheGGUFPackageLoadsAndAgrees() throws {
        let theirs = try Model.load(path: quantFixtures + "/gqa8-q8_0-gguf-package.gguf")
        var options = ModelLoadOptions()
        options.weightType = .q8_0
        let ours = try Model.load(path: modelFixtures + "/gqa8", options: options)
        let p = try loadReference("gqa8")[3]
        let a = try Session(model: theirs, contextLength: 512).evaluate(p.ids, allLogits: true)
        let b = try Session(model: ours, contextLength: 512).evaluate(p.ids, allLogits: true)
        XCTAssertEqual(a, b)
        for c in try loadEncodeCases("cases_small.jsonl") {
            XCTAssertEqual(theirs.tokenizer.encode(c.text, allowSpecial: c.special), c.ids)
        }
        XCTAssertEqual(theirs.endOfGenerationIDs, [521, 513])
    }

    /// A model split by llama.cpp's `llama-gguf-split` (three shards of the gqa8 file above,
    /// tools/make_split_fixtures.sh) loads from any of its shards and computes exactly what the
    /// unsplit file computes; a missing shard, or a shard of another position, is an error naming it.
    func testSplitModelLoadsFromAnyShard() throws {
        let whole = try Model.load(path: quantFixtures + "/gqa8-q8_0-gguf-package.gguf")
        let p = try loadReference("gqa8")[3]
        let want = try Session(model: whole, contextLength: 512).evaluate(p.ids, allLogits: true)
        let shards = (1...3).map { quantFixtures + "/split/gqa8-q8_0-0000\($0)-of-00003.gguf" }
        for shard in shards {
            let split = try Model.load(path: shard)
            XCTAssertEqual(try Session(model: split, contextLength: 512).evaluate(p.ids, allLogits: true), want, shard)
        }
        XCTAssertEqual(try GGUFFile(path: shards[1]).tensors.count, try GGUFFile(path: quantFixtures + "/gqa8-q8_0-gguf-package.gguf").tensors.count)
        // Shard 3 missing.
        for i in 0..<2 { write(tmp + "/m-0000\(i + 1)-of-00003.gguf", try FileIO.readAll(shards[i])) }
        func error(_ path: String) -> String {
            do {
                _ = try Model.load(path: path)
                return "loaded"
            } catch {
                return error.description
            }
        }
        XCTAssertTrue(error(tmp + "/m-00001-of-00003.gguf").contains("m-00003-of-00003.gguf: shard 3 of 3"), error(tmp + "/m-00001-of-00003.gguf"))
        // Shard 1's bytes in shard 3's place.
        write(tmp + "/m-00003-of-00003.gguf", try FileIO.readAll(shards[0]))
        XCTAssertTrue(error(tmp + "/m-00002-of-00003.gguf").contains("m-00003-of-00003.gguf: not shard 3 of 3"), error(tmp + "/m-00002-of-00003.gguf"))
        // A forged shard count (the first shard's split.count, a uint16, made 65535 with the
        // file's real name): shard 2 of 65535 is missing, named, with no attempt at the rest.
        var forged = try FileIO.readAll(shards[0])
        let key = Array("split.count".utf8)
        let at = try XCTUnwrap((0..<(forged.count - key.count)).first { forged[$0..<($0 + key.count)].elementsEqual(key) })
        // key, then the value type (4 bytes, uint16 = 2), then the value.
        forged[at + key.count + 4] = 0xFF
        forged[at + key.count + 5] = 0xFF
        write(tmp + "/f-00001-of-65535.gguf", forged)
        XCTAssertTrue(error(tmp + "/f-00001-of-65535.gguf").contains("f-00002-of-65535.gguf: shard 2 of 65535"), error(tmp + "/f-00001-of-65535.gguf"))
        // A shard under a name that is not llama.cpp's.
        write(tmp + "/renamed.gguf", try FileIO.readAll(shards[0]))
        XCTAssertTrue(error(tmp + "/renamed.gguf").contains("not named PREFIX"), error(tmp + "/renamed.gguf"))
    }

    /// The low-bit files of tools/make_quant_fixtures.py (written by llama-quantize).
    static let lowBitFiles = ["q2_k", "q3_k_m", "iq4_xs", "iq4_nl", "q4_1", "q5_0", "q5_1",
                              "iq3_m", "iq3_xxs", "iq2_m", "iq2_xs", "iq2_xxs", "iq1_m", "iq1_s"]

    /// Files llama-quantize wrote in the low-bit mixes (rows of whole 256-blocks): every tensor has
    /// the type llama-quantize gave it (as the gguf package reads it back), runs in place in that
    /// type, and the model generates.
    func testLowBitFilesFromLlamaQuantizeLoadInTheirTypes() throws {
        let expected = try JSONParser.parse(try FileIO.readAll(quantFixtures + "/lowbit/types.json"))
        for name in GGUFTests.lowBitFiles {
            let path = quantFixtures + "/lowbit/\(name).gguf"
            let g = try GGUFFile(path: path)
            XCTAssertEqual(g.tensors.mapValues(\.type.displayName), expected[name]!.objectValue!.mapValues { $0.stringValue! }, name)
            let model = try Model.load(path: path)
            let formats = Set(model.weights.layers.flatMap { [$0.qkv.format, $0.output.format, $0.gateUp.format, $0.down.format] })
            let stored = Set(g.tensors.values.filter { $0.name.hasPrefix("blk.") && $0.dims.count == 2 }.compactMap { WeightFormat(ggmlType: $0.type) })
            XCTAssertEqual(formats, stored, name)
            let out = try Session(model: model, contextLength: 64).evaluate([1, 2, 3, 4], allLogits: true)
            XCTAssertTrue(out.allSatisfy { $0.isFinite }, name)
        }
    }

    /// Blocks llama-quantize wrote (the first 4 rows of a tensor of each type in each low-bit
    /// fixture): the format table's dequantizers give the `gguf` package's values bit for bit.
    func testRealLowBitBlocksDequantizeAsTheGGUFPackage() throws {
        let index = try JSONParser.parse(try FileIO.readAll(quantFixtures + "/lowbit/dequant.json"))
        var checked = Set<String>()
        for file in GGUFTests.lowBitFiles {
            let g = try GGUFFile(path: quantFixtures + "/lowbit/\(file).gguf")
            for type in Set(g.tensors.values.map(\.type)) where type != .f32 {
                let key = "\(file)_\(type.displayName.lowercased())"
                let t = try XCTUnwrap(g.tensors[try XCTUnwrap(index[key]?.stringValue, key)], key)
                let want = try NPY.read(path: quantFixtures + "/lowbit/dequant_\(key).npy").values
                var got = [Float](repeating: .nan, count: want.count)
                XCTAssertEqual(p4k_dequantize_rows(Int32(type.rawValue), t.data.baseAddress!, t.dims[0], 4, &got), 0, key)
                XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), key)
                checked.insert(type.displayName)
            }
        }
        XCTAssertEqual(checked, ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS", "IQ4_NL", "Q4_1", "Q5_0", "Q5_1",
                                 "IQ3_S", "IQ3_XXS", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S"])
    }

    /// The low-bit mixes' recipes (`GGUFExport.FileType.type(for:)`, which `phi4 dev random-model`
    /// writes) give every tensor the type the pinned llama-quantize gave it in the fixture files.
    func testLowBitRecipesMatchLlamaQuantize() throws {
        let expected = try JSONParser.parse(try FileIO.readAll(quantFixtures + "/lowbit/types.json"))
        let types: [String: GGUFExport.FileType] = ["q2_k": .q2_K, "q3_k_m": .q3_K_M, "iq4_xs": .iq4_XS, "iq4_nl": .iq4_NL, "q5_1": .q5_1]
        for (name, type) in types {
            let path = quantFixtures + "/lowbit/\(name).gguf"
            let c = try GGUFModel.config(try GGUFFile(path: path), path: path)
            for t in ModelTensor.all(c, tied: false) {
                let ours = t.role(tied: false).map {
                    type.type(for: $0, cols: t.shape(c).last!, layer: t.layer, layers: c.layerCount, gqa: c.headCount / c.kvHeadCount)
                } ?? .f32
                XCTAssertEqual(ours.displayName, expected[name]![t.ggufName]!.stringValue!, "\(name) \(t.ggufName)")
            }
            XCTAssertTrue(type.writable, name)
        }
    }

    /// `phi4 quantize`'s writer: the file loads and runs exactly like quantizing at load time
    /// (gqa8: every row is whole blocks); rows that are not whole blocks (gqa4's FFN 176) stay f16.
    /// (llama.cpp's Q4_0 mix keeps the output projection in Q6_K, which loading as Q4_0 does not:
    /// that file is checked byte for byte against llama-quantize in QuantizeParityTests.)
    func testExportRoundTrip() throws {
        let p8 = try loadReference("gqa8")[1]
        for type in [GGUFExport.FileType.q8_0, .q4_0Mixed] {
            let path = tmp + "/gqa8-\(type.rawValue).gguf"
            try GGUFExport.write(hfDirectory: modelFixtures + "/gqa8", type: type, output: path)
            let a = try Session(model: try Model.load(path: path), contextLength: 256).evaluate(p8.ids, allLogits: true)
            var options = ModelLoadOptions()
            options.weightType = WeightType(rawValue: type.rawValue)!
            let direct = try Model.load(path: modelFixtures + "/gqa8", options: options)
            let b = try Session(model: direct, contextLength: 256).evaluate(p8.ids, allLogits: true)
            XCTAssertEqual(maxDifference(a, b).0, 0, type.rawValue)
        }
        // The K-quant mixes on a model whose rows (64) are not whole super-blocks: llama.cpp's
        // fallbacks (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0) are written and load; logits stay
        // close to transformers' (5-bit weights of a random model: within 15 % of the max logit).
        for type in [GGUFExport.FileType.q4_K_M, .q5_K_M, .q6_K] {
            let path = tmp + "/gqa8-\(type.rawValue).gguf"
            let written = try GGUFExport.write(hfDirectory: modelFixtures + "/gqa8", type: type, output: path)
            let expected = type == .q4_K_M ? "q5_0" : (type == .q5_K_M ? "q5_1" : "q8_0")
            XCTAssertEqual(written.first { $0.0 == "blk.0.ffn_up.weight" }?.1, expected, type.rawValue)
            let a = try Session(model: try Model.load(path: path), contextLength: 256).evaluate(p8.ids, allLogits: true)
            let (d, s) = maxDifference(a, p8.logits)
            XCTAssertLessThan(d, 0.15 * s, type.rawValue)
        }
        let p4 = try loadReference("gqa4")[1]
        for type in [GGUFExport.FileType.q8_0, .f16] {
            let path = tmp + "/gqa4-\(type.rawValue).gguf"
            let written = try GGUFExport.write(hfDirectory: modelFixtures + "/gqa4", type: type, output: path)
            XCTAssertEqual(written.first { $0.0 == "blk.0.ffn_down.weight" }?.1, "f16")
            XCTAssertEqual(try GGUFFile(path: path).tensors["blk.0.ffn_down.weight"]?.type, .f16)
            let a = try Session(model: try Model.load(path: path), contextLength: 256).evaluate(p4.ids, allLogits: true)
            let (d, s) = maxDifference(a, p4.logits)
            XCTAssertLessThan(d, (type == .f16 ? 2e-2 : 1e-1) * s, type.rawValue)
        }
    }

    /// A float GGUF file (here the demo model widened to F16) converts to llama.cpp's Q4_K_M
    /// recipe two ways that must agree: `phi4 quantize` from the GGUF file, and loading the F16
    /// file with `--weights q4_k_m`. Checked: every metadata entry kept, each matrix's type by the
    /// recipe (Q6_K for lm_head and for qkv/down in the layers llama.cpp gives more bits), the
    /// two paths' logits equal bit for bit, and both close to the Q8_0 original (mean KL < 0.02
    /// nats, same greedy choice at ≥ 90 % of positions; the Q4_K/Q6_K quantizer itself equals
    /// llama.cpp's byte for byte, testKQuantWriterMatchesLlamaCppBitForBit). Quantized inputs are
    /// refused unless requantizing is allowed.
    func testFloatGGUFQuantizesToQ4KMByFileAndAtLoad() throws {
        let demo = fixturesDirectory + "/../../../models/phi4-demo-q8_0.gguf"
        XCTAssertThrowsError(try GGUFExport.write(ggufFile: demo, type: .q4_K_M, output: tmp + "/refused.gguf")) {
            XCTAssertTrue("\($0)".contains("already Q8_0"), "\($0)")
        }
        let f16 = tmp + "/demo-f16.gguf", q4km = tmp + "/demo-q4_k_m.gguf"
        try GGUFExport.write(ggufFile: demo, type: .f16, output: f16, allowRequantize: true)
        XCTAssertThrowsError(try GGUFExport.write(ggufFile: f16, type: .q4_K_M, output: f16))
        let written = try GGUFExport.write(ggufFile: f16, type: .q4_K_M, output: q4km)
        let source = try GGUFFile(path: demo), file = try GGUFFile(path: q4km)
        // llama-quantize's order: the source's, with the quantization version and file type last.
        let moved = ["general.quantization_version", "general.file_type"]
        XCTAssertEqual(file.metadataOrder, source.metadataOrder.filter { !moved.contains($0) } + moved)
        for key in source.metadataOrder where key != "general.file_type" {
            XCTAssertEqual(file.metadata[key], source.metadata[key], key)
        }
        XCTAssertEqual(file.metadata["general.file_type"]?.intValue, 15)
        let layers = 4
        for (name, type) in written {
            let t = file.tensors[name]!
            if t.dims.count == 1 { XCTAssertEqual(t.type, .f32, name); continue }
            let layer = name.hasPrefix("blk.") ? Int(name.split(separator: ".")[1])! : 0
            let more = (name.hasSuffix("attn_qkv.weight") || name.hasSuffix("ffn_down.weight"))
                && (layer == 2 || layer == 3)  // 4 layers: the last eighth and every third from 0
            XCTAssertEqual(WeightType.usesMoreBits(layer: layer, of: layers), layer >= 2)
            let want: GGMLType = name == "output.weight" || more ? .q6_K : .q4_K
            XCTAssertEqual(t.type, want, name)
            XCTAssertEqual(type, "\(want)", name)
        }
        let q8 = try Model.load(path: demo)
        let byFile = try Model.load(path: q4km)
        var options = ModelLoadOptions()
        options.weightType = .q4_K_M
        let atLoad = try Model.load(path: f16, options: options)
        XCTAssertEqual(atLoad.weights.layers[3].down.format, .q6_K)
        XCTAssertEqual(atLoad.weights.layers[1].down.format, .q4_K)
        XCTAssertEqual(atLoad.weights.lmHead.format, .q6_K)
        let ids = q8.tokenizer.encode("The quick brown fox jumps over the lazy dog. def main():\n    return 0\n" + String(repeating: "Once upon a time there was a file. ", count: 4))
        let a = try Session(model: q8, contextLength: 256).evaluate(ids, allLogits: true)
        let b = try Session(model: byFile, contextLength: 256).evaluate(ids, allLogits: true)
        let c = try Session(model: atLoad, contextLength: 256).evaluate(ids, allLogits: true)
        XCTAssertEqual(b, c)
        let vocab = q8.config.vocabSize
        var kl = 0.0, same = 0
        for i in 0..<ids.count {
            let ra = Array(a[(i * vocab)..<((i + 1) * vocab)]), rb = Array(b[(i * vocab)..<((i + 1) * vocab)])
            kl += klDivergenceOfLogits(ra, rb)
            same += Sampler.argmax(ra) == Sampler.argmax(rb) ? 1 : 0
        }
        XCTAssertLessThan(kl / Double(ids.count), 0.02)
        XCTAssertGreaterThanOrEqual(Double(same), 0.9 * Double(ids.count))
    }

    /// The tokenizer written into GGUF metadata (tokens, types, merges) reads back identical to
    /// tokenizer.json: every full-vocabulary fixture case gives tiktoken's ids.
    func testGGUFTokenizerMatchesTokenizerJSON() throws {
        let tok = try Tokenizer.load(path: tokenizerFixtures + "/phi4")
        var w = GGUFWriter()
        w.metadata.append(("general.architecture", .string("phi3")))
        try GGUFExport.addTokenizer(tok, vocabSize: 100352, directory: tokenizerFixtures + "/phi4", to: &w)
        let path = tmp + "/tokenizer.gguf"
        try w.write(path: path)
        let g = try GGUFFile(path: path)
        XCTAssertEqual(g.metadata["tokenizer.ggml.merges"]?.arrayValue?.count, 100256 - 256)
        let back = try GGUFModel.tokenizer(g, path: path)
        XCTAssertEqual(back.vocabularySize, 100352)
        XCTAssertEqual(back.endOfGenerationIDs, tok.endOfGenerationIDs)
        for c in try loadEncodeCases("cases.jsonl") where c.text.utf8.count < 2000 {
            XCTAssertEqual(back.encode(c.text, allowSpecial: c.special), c.ids)
        }
    }

    func testMalformedGGUFGivesSpecificErrors() throws {
        let good = try FileIO.readAll(quantFixtures + "/gqa8-q8_0-gguf-package.gguf")
        func error(_ bytes: [UInt8]) -> String? {
            write(tmp + "/m.gguf", bytes)
            do {
                _ = try Model.load(path: tmp + "/m.gguf")
                return nil
            } catch {
                return error.description
            }
        }
        var b = good
        b[0] = 0x41
        XCTAssertTrue(error(b)?.contains("bad magic") == true)
        b = good
        b[4] = 1
        XCTAssertTrue(error(b)?.contains("version 1") == true)
        XCTAssertTrue(error(Array(good.prefix(20)))?.contains("truncated") == true)
        XCTAssertTrue(error(Array(good.prefix(good.count - 100)))?.contains("outside the file") == true)
        // The first key's length forged to 2^62.
        b = good
        for i in 0..<8 { b[24 + i] = i == 7 ? 0x40 : 0 }
        XCTAssertTrue(error(b)?.contains("past the end") == true, error(b) ?? "loaded")
        XCTAssertTrue(error([])?.contains("truncated") == true)
    }

    /// Seeded mutations of small GGUF and safetensors files: truncations, bit flips and forged
    /// lengths. Every one must load or fail with an error; a crash fails the whole suite.
    /// PHI4_MUTANTS sets the count (1,000 by default; tools/fuzz_files.sh runs 10,000+) and
    /// PHI4_MUTANT_SEED the seed.
    func testMutatedFilesNeverCrash() throws {
        let total = Int(String(cString: getenv("PHI4_MUTANTS") ?? strdup("1000"))) ?? 1000
        let seed = UInt64(String(cString: getenv("PHI4_MUTANT_SEED") ?? strdup("20261125"))) ?? 20261125
        // The gqa8 Q8_0 file and the low-bit files llama-quantize wrote (Q2_K … IQ4_XS, Q4_1, Q5_0, Q5_1,
        // the lattice IQ mixes).
        let ggufs = try ([quantFixtures + "/gqa8-q8_0-gguf-package.gguf"] + GGUFTests.lowBitFiles.map { quantFixtures + "/lowbit/\($0).gguf" })
            .map { try FileIO.readAll($0) }
        let safetensors = try FileIO.readAll(modelFixtures + "/gqa4/model.safetensors")
        for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            write(tmp + "/" + f, try FileIO.readAll(modelFixtures + "/gqa4/" + f))
        }
        var rng = QuantizationTests.LCG(state: seed)
        func random(_ n: Int) -> Int { Int((rng.next() + 1) / 2 * Float(n - 1)) }
        var loaded = 0, refused = 0
        for i in 0..<total {
            let isGGUF = i % 2 == 0
            var b = isGGUF ? ggufs[(i / 2) % ggufs.count] : safetensors
            let headerEnd = isGGUF ? min(b.count, 40_000) : min(b.count, 8 + Int(b[0]) + Int(b[1]) << 8)
            switch i % 5 {
            case 0: b = Array(b.prefix(random(b.count)))
            case 1, 2:
                for _ in 0..<(1 + random(8)) {
                    let at = random(headerEnd)
                    b[at] ^= UInt8(1 << random(8))
                }
            case 3:
                let at = random(headerEnd - 8)
                let forged: UInt64 = [0, 1, 0xFFFF_FFFF, 1 << 40, UInt64.max, UInt64(b.count)][random(6)]
                withUnsafeBytes(of: forged.littleEndian) { for j in 0..<8 { b[at + j] = $0[j] } }
            default:
                b[random(headerEnd)] = UInt8(random(256))
                b = Array(b.prefix(b.count - random(64)))
            }
            let path = isGGUF ? tmp + "/x.gguf" : tmp + "/model.safetensors"
            write(path, b)
            do {
                let model = try Model.load(path: isGGUF ? path : tmp)
                loaded += 1
                // A mutated file that loads also runs: whatever its block bytes say, no read leaves
                // a block or a table.
                if i % 10 == 0 { _ = try? Session(model: model, contextLength: 16).evaluate([1, 2, 3]) }
            } catch {
                refused += 1
            }
        }
        print("mutants: \(loaded) loaded, \(refused) refused with an error")
        XCTAssertEqual(loaded + refused, total)
        XCTAssertGreaterThan(refused, total * 3 / 10)
    }
}
