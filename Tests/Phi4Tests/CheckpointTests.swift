import XCTest
@testable import Phi4

/// Broken checkpoints give specific errors, never a trap.
final class CheckpointTests: XCTestCase {
    var dir = ""
    let source = modelFixtures + "/gqa4"

    override func setUpWithError() throws {
        dir = "/tmp/phi4-ckpt-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(mkdir(dir, 0o755), 0)
        for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "model.safetensors"] {
            try copy(source + "/" + f, dir + "/" + f)
        }
    }

    override func tearDownWithError() throws {
        if let d = opendir(dir) {
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { unlink(dir + "/" + name) }
            }
            closedir(d)
        }
        rmdir(dir)
    }

    func copy(_ from: String, _ to: String) throws {
        try write(to, try FileIO.readAll(from))
    }

    func write(_ path: String, _ bytes: [UInt8]) throws {
        let f = fopen(path, "wb")!
        fwrite(bytes, 1, bytes.count, f)
        fclose(f)
    }

    func writeText(_ path: String, _ text: String) throws { try write(path, Array(text.utf8)) }

    /// Writes a safetensors file from a header text and raw data bytes.
    func writeSafetensors(_ path: String, header: String, data: [UInt8]) throws {
        let h = Array(header.utf8)
        var bytes: [UInt8] = []
        var n = UInt64(h.count)
        withUnsafeBytes(of: &n) { bytes += $0 }
        try write(path, bytes + h + data)
    }

    /// The fixture's tensors, rewritten with `edit` applied to each (name, dtype, shape, bytes).
    func rewriteFixture(_ edit: (inout [(String, String, [Int], [UInt8])]) -> Void) throws {
        let file = try SafeTensorsFile(path: source + "/model.safetensors")
        var tensors = file.tensors.values.sorted { $0.name < $1.name }.map {
            ($0.name, $0.dtype.rawValue, $0.shape, Array($0.data))
        }
        edit(&tensors)
        var entries: [String] = []
        var data: [UInt8] = []
        for (name, dtype, shape, bytes) in tensors {
            entries.append("\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(data.count),\(data.count + bytes.count)]}")
            data += bytes
        }
        try writeSafetensors(dir + "/model.safetensors", header: "{" + entries.joined(separator: ",") + "}", data: data)
    }

    func loadError() -> ModelError? {
        do {
            _ = try Model.load(path: dir)
            return nil
        } catch {
            return error
        }
    }

    func expect(_ check: (ModelError) -> Bool, _ contains: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let e = loadError() else { return XCTFail("loaded without error", file: file, line: line) }
        XCTAssertTrue(check(e), "wrong error kind: \(e)", file: file, line: line)
        XCTAssertTrue(e.description.contains(contains), "\(e.description) lacks \(contains)", file: file, line: line)
    }

    func testCopyLoads() throws {
        XCTAssertNil(loadError())
    }

    func testTruncatedFile() throws {
        let bytes = try FileIO.readAll(source + "/model.safetensors")
        try write(dir + "/model.safetensors", Array(bytes.prefix(bytes.count / 2)))
        expect({ if case .invalidWeights = $0 { return true }; return false }, "lie outside")
        try write(dir + "/model.safetensors", Array(bytes.prefix(5)))
        expect({ if case .invalidWeights = $0 { return true }; return false }, "too short")
        try write(dir + "/model.safetensors", Array(bytes.prefix(100)))
        expect({ if case .invalidWeights = $0 { return true }; return false }, "header length")
    }

    func testOffsetsOutOfRangeAndOverlap() throws {
        try writeSafetensors(dir + "/model.safetensors",
                             header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,1000000000000]}}"#,
                             data: [UInt8](repeating: 0, count: 24))
        expect({ if case .invalidWeights = $0 { return true }; return false }, "outside")
        try writeSafetensors(dir + "/model.safetensors",
                             header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                             data: [UInt8](repeating: 0, count: 12))
        expect({ if case .invalidWeights = $0 { return true }; return false }, "overlap")
        try writeSafetensors(dir + "/model.safetensors",
                             header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                             data: [UInt8](repeating: 0, count: 8))
        expect({ if case .invalidWeights = $0 { return true }; return false }, "needs 12")
        try writeSafetensors(dir + "/model.safetensors",
                             header: #"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#,
                             data: [UInt8](repeating: 0, count: 8))
        expect({ if case .invalidWeights = $0 { return true }; return false }, "shape")
        try writeSafetensors(dir + "/model.safetensors", header: #"{"a": [1, 2"#, data: [])
        expect({ if case .invalidWeights = $0 { return true }; return false }, "not valid JSON")
    }

    func testUnknownDType() throws {
        try rewriteFixture { t in t[0].1 = "I64"; t[0].2 = [t[0].3.count / 8] }
        expect({ if case .invalidWeights = $0 { return true }; return false }, "unsupported dtype I64")
    }

    func testMissingTensor() throws {
        try rewriteFixture { t in t.removeAll { $0.0 == "lm_head.weight" } }
        expect({ if case .missingTensor = $0 { return true }; return false }, "lm_head.weight")
        try rewriteFixture { t in t.removeAll { $0.0 == "model.layers.1.mlp.down_proj.weight" } }
        expect({ if case .missingTensor = $0 { return true }; return false }, "model.layers.1.mlp.down_proj.weight")
    }

    func testShapeMismatchWithConfig() throws {
        var config = String(decoding: try FileIO.readAll(dir + "/config.json"), as: UTF8.self)
        config = config.replacingOccurrences("\"intermediate_size\": 176", "\"intermediate_size\": 160")
        try writeText(dir + "/config.json", config)
        expect({ if case .shapeMismatch = $0 { return true }; return false }, "gate_up_proj")
    }

    func testForeignAndUnsupportedConfigs() throws {
        let original = String(decoding: try FileIO.readAll(dir + "/config.json"), as: UTF8.self)
        try writeText(dir + "/config.json", #"{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64}"#)
        expect({ if case .unsupported = $0 { return true }; return false }, "LlamaForCausalLM")
        // Phi-4-mini's features are read; inconsistent ones are errors: factors that do not fit the
        // rotary dimension, a partial rotary factor out of range, a rope scaling other than LongRoPE.
        try writeText(dir + "/config.json", original.replacingOccurrences("\"sliding_window\": null",
            "\"rope_scaling\": {\"type\": \"longrope\", \"long_factor\": [1.0], \"short_factor\": [1.0]}"))
        expect({ if case .invalidConfig = $0 { return true }; return false }, "short_factor has 1 values")
        try writeText(dir + "/config.json", original.replacingOccurrences("\"partial_rotary_factor\": 1.0", "\"partial_rotary_factor\": 1.5"))
        expect({ if case .invalidConfig = $0 { return true }; return false }, "partial_rotary_factor")
        try writeText(dir + "/config.json", original.replacingOccurrences("\"sliding_window\": null",
            "\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0}"))
        expect({ if case .unsupported = $0 { return true }; return false }, "yarn")
        try writeText(dir + "/config.json", original.replacingOccurrences("\"sliding_window\": null", "\"sliding_window\": 256"))
        expect({ if case .unsupported = $0 { return true }; return false }, "sliding_window")
        try writeText(dir + "/config.json", original.replacingOccurrences("\"num_key_value_heads\": 1", "\"num_key_value_heads\": 3"))
        expect({ if case .invalidConfig = $0 { return true }; return false }, "multiple")
        try writeText(dir + "/config.json", original.replacingOccurrences("\"hidden_size\": 64", "\"hidden_size\": \"64\""))
        expect({ if case .invalidConfig = $0 { return true }; return false }, "hidden_size")
        try writeText(dir + "/config.json", "{")
        expect({ if case .invalidConfig = $0 { return true }; return false }, "invalid JSON")
    }

    /// Full Phi-4 in f32 (58.6 GB) is refused before any weight is read, with the numbers.
    func testFullPhi4InF32IsRefusedBeforeLoading() throws {
        guard let available = MemoryEstimate.availableBytes(), available < 60_000_000_000 else {
            throw XCTSkip("this machine could hold Phi-4 in f32")
        }
        unlink(dir + "/model.safetensors")  // never reached
        try writeText(dir + "/config.json", """
            {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 5120,
             "intermediate_size": 17920, "num_hidden_layers": 40, "num_attention_heads": 40,
             "num_key_value_heads": 10, "vocab_size": 100352, "max_position_embeddings": 16384,
             "rope_theta": 250000, "rms_norm_eps": 1e-05, "rope_scaling": null, "sliding_window": null,
             "tie_word_embeddings": false, "torch_dtype": "bfloat16"}
            """)
        expect({ if case .insufficientMemory = $0 { return true }; return false }, "58.6 GB of f32 weights")
    }

    func testShardIndexProblems() throws {
        unlink(dir + "/model.safetensors")
        expect({ if case .io = $0 { return true }; return false }, "no model.safetensors")
        try writeText(dir + "/model.safetensors.index.json", #"{"weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}"#)
        expect({ if case .io = $0 { return true }; return false }, "model-00002-of-00002.safetensors")
        try writeText(dir + "/model.safetensors.index.json", #"{"weight_map": {"lm_head.weight": "../../etc/passwd"}}"#)
        expect({ if case .invalidWeights = $0 { return true }; return false }, "invalid shard name")
    }
}

extension String {
    /// This string with every occurrence of `a` replaced by `b` (tests only; no Foundation).
    func replacingOccurrences(_ a: String, _ b: String) -> String {
        var out = ""
        var rest = self[...]
        while let r = rest.firstRange(of: a) {
            out += rest[..<r.lowerBound] + b
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}
